"""Convolution with reflect or replicate padding (torch's Conv2d padding_mode), forward and backward.

The padded image is a gather from x: padded position (u, v) reads x[src(u - P, H), src(v - P, W)], with

    reflect:    src(r, n) = -r if r < 0;  2 (n - 1) - r if r >= n;  r otherwise      (the edge is not repeated; P < n)
    replicate:  src(r, n) = min(max(r, 0), n - 1)                                    (the edge is repeated)

Then an unpadded cross-correlation (reference.conv2d, padding 0):

    y[n, k, i, j] = b[k] + sum_c sum_s sum_t w[k, c, s, t] xp[n, c, i S + s D, j S + t D]

Backward by the chain rule through the gather: conv2d's backward on xp gives dE/dw, dE/db and dE/dxp; every padded
cell's gradient goes back to the cell it copied (a fold, +=: an edge cell under replicate, or a cell next to the
edge under reflect, is copied several times and collects all of them):

    dE/dx[n, c, src(u - P, H), src(v - P, W)] += dE/dxp[n, c, u, v]      over every padded (u, v)
"""
from __future__ import annotations

import numpy as np

from .conv2d import _pair, correlate2d_backward, correlate2d_forward


def source(r: int, n: int, mode: str) -> int:
    """The input row a padded row reads, r = u - P (module docstring)."""
    if mode == "reflect":
        return -r if r < 0 else (2 * (n - 1) - r if r >= n else r)
    if mode == "replicate":
        return min(max(r, 0), n - 1)
    raise ValueError(f"padding_mode must be 'reflect' or 'replicate', not {mode!r}")


def pad(x, padding, mode):
    """xp[n, c, u, v] = x[n, c, src(u - P), src(v - P)]"""
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for n in range(N):
        for c in range(C):
            for u in range(H + 2 * ph):
                for v in range(W + 2 * pw):
                    xp[n, c, u, v] = x[n, c, source(u - ph, H, mode), source(v - pw, W, mode)]
    return xp


def fold(dxp, shape, padding, mode):
    """dx[n, c, src(u - P), src(v - P)] += dxp[n, c, u, v]: the adjoint of ``pad``."""
    ph, pw = _pair(padding)
    N, C, H, W = shape
    dx = np.zeros(shape)
    for n in range(N):
        for c in range(C):
            for u in range(H + 2 * ph):
                for v in range(W + 2 * pw):
                    dx[n, c, source(u - ph, H, mode), source(v - pw, W, mode)] += dxp[n, c, u, v]
    return dx


def conv2d_padded_forward(x, w, b, stride=1, padding=0, dilation=1, padding_mode="reflect"):
    """y = correlate2d(pad(x, P, mode), w, b, stride, padding 0, dilation)"""
    return correlate2d_forward(pad(x, padding, padding_mode), w, b, stride, 0, dilation)


def conv2d_padded_backward(dy, x, w, b, stride=1, padding=0, dilation=1, padding_mode="reflect"):
    """(fold(dE/dxp), dE/dw, dE/db) with conv2d's backward on the padded image."""
    dxp, dw, db = correlate2d_backward(dy, pad(x, padding, padding_mode), w, b, stride, 0, dilation)
    return fold(dxp, x.shape, padding, padding_mode), dw, db
