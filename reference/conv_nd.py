"""Convolution (cross-correlation, torch's conv1d / conv3d) over any number of spatial axes, forward and backward.

Layouts: x (N, C_in, *X), w (C_out, C_in, *K), b (C_out,), y (N, C_out, *Y), with one stride S_a, zero padding
P_a and dilation D_a per spatial axis a. Spatial positions are index tuples: o (output), s (kernel); the products
o S + s D - P are taken axis by axis. xp is x zero-padded by P.

    Y_a = floor((X_a + 2 P_a - D_a (K_a - 1) - 1) / S_a) + 1
    y[n, k, o] = b[k] + sum_c sum_s w[k, c, s] xp[n, c, o S + s D]

Backward, delta = dE/dy, every product sending delta to both its factors:

    dE/dw[k, c, s]        = sum_n sum_o delta[n, k, o] xp[n, c, o S + s D]
    dE/db[k]              = sum_n sum_o delta[n, k, o]
    dE/dxp[n, c, o S + s D] += delta[n, k, o] w[k, c, s]            over every (k, o, s); dE/dx = dE/dxp cropped

With one spatial axis this is conv1d, with three conv3d; with two it is reference.conv2d's correlate2d.
"""
from __future__ import annotations

import numpy as np

from .conv2d import correlate2d_backward, correlate2d_forward


def _per_axis(v, rank):
    return (int(v),) * rank if np.isscalar(v) else tuple(int(a) for a in v)


def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _setup(x, w, stride, padding, dilation):
    rank = x.ndim - 2
    S, P, D = (_per_axis(v, rank) for v in (stride, padding, dilation))
    K = w.shape[2:]
    Y = tuple(out_size(n, k, s, p, d) for n, k, s, p, d in zip(x.shape[2:], K, S, P, D))
    xp = np.zeros(x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], P)))
    xp[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(P, x.shape[2:]))] = x
    return S, P, D, K, Y, xp


def _at(o, s, S, D):
    """The padded input position o S + s D (axis by axis)."""
    return tuple(oa * sa + ka * da for oa, ka, sa, da in zip(o, s, S, D))


def convnd_forward(x, w, b, stride=1, padding=0, dilation=1):
    """y[n, k, o] = b[k] + sum_c sum_s w[k, c, s] xp[n, c, o S + s D]"""
    S, P, D, K, Y, xp = _setup(x, w, stride, padding, dilation)
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    y = np.zeros((N, C_out) + Y)
    for n in range(N):
        for k in range(C_out):
            for o in np.ndindex(*Y):
                total = b[k]
                for c in range(C_in):
                    for s in np.ndindex(*K):
                        total += w[(k, c) + s] * xp[(n, c) + _at(o, s, S, D)]
                y[(n, k) + o] = total
    return y


def convnd_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """(dx, dw, db) by the scatter of every product's delta to its two factors (module docstring)."""
    S, P, D, K, Y, xp = _setup(x, w, stride, padding, dilation)
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    dxp, dw, db = np.zeros_like(xp), np.zeros(w.shape), np.zeros(C_out)
    for n in range(N):
        for k in range(C_out):
            for o in np.ndindex(*Y):
                delta = dy[(n, k) + o]
                db[k] += delta
                for c in range(C_in):
                    for s in np.ndindex(*K):
                        u = _at(o, s, S, D)
                        dw[(k, c) + s] += delta * xp[(n, c) + u]
                        dxp[(n, c) + u] += delta * w[(k, c) + s]
    crop = (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(P, x.shape[2:]))
    return dxp[crop], dw, db


# ---- conv1d as conv2d on a one-row image -------------------------------------------------------------------------

def conv1d_via_conv2d_forward(x, w, b, stride=1, padding=0, dilation=1):
    """reference.conv2d's correlate2d on x (N, C, 1, L) with w (C_out, C_in, 1, K), height stride 1, padding 0."""
    (s,), (p,), (d,) = (_per_axis(v, 1) for v in (stride, padding, dilation))
    return correlate2d_forward(x[:, :, None, :], w[:, :, None, :], b, (1, s), (0, p), (1, d))[:, :, 0, :]


def conv1d_via_conv2d_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """reference.conv2d's correlate2d_backward on the one-row image; the row axis dropped from dx and dw."""
    (s,), (p,), (d,) = (_per_axis(v, 1) for v in (stride, padding, dilation))
    dx, dw, db = correlate2d_backward(dy[:, :, None, :], x[:, :, None, :], w[:, :, None, :], b, (1, s), (0, p),
                                      (1, d))
    return dx[:, :, 0, :], dw[:, :, 0, :], db
