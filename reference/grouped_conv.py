"""Grouped convolution (cross-correlation, torch's conv2d with ``groups``), forward and backward, by the chain rule
written out element by element (a scatter), independently of reference.conv2d's full correlation with rot180(w).

Layouts: x (N, C_in, H, W), w (C_out, C_in / G, kh, kw), b (C_out,), y (N, C_out, Ho, Wo); G groups divide both
C_in and C_out. Output map k belongs to group g = k // (C_out / G) and reads only that group's input channels
g * Cg + c for c < Cg = C_in / G. Depthwise convolution is G = C_in (Cg = 1: each map reads one channel).
Per axis stride S, zero padding P, dilation D as in reference.conv2d; xp is x zero-padded by P.

    y[n, k, i, j] = b[k] + sum_{c < Cg} sum_{s < kh} sum_{t < kw} w[k, c, s, t] xp[n, g Cg + c, i S + s D, j S + t D]

Backward, delta = dE/dy (each product above sends delta to both of its factors):

    dE/dw[k, c, s, t]               = sum_{n,i,j} delta[n, k, i, j] xp[n, g Cg + c, i S + s D, j S + t D]
    dE/db[k]                        = sum_{n,i,j} delta[n, k, i, j]
    dE/dxp[n, g Cg + c, iS+sD, jS+tD] += delta[n, k, i, j] w[k, c, s, t]     over every (k, i, j, s, t)

dE/dx is dE/dxp with the padding cropped. With G = 1 this is the ordinary convolution.
"""
from __future__ import annotations

import numpy as np

from .conv2d import _pair, correlate2d_backward, correlate2d_forward, out_size, zero_pad


def grouped_conv2d_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """y[n, k, i, j] = b[k] + sum_c sum_s sum_t w[k, c, s, t] xp[n, g Cg + c, i*S + s*D, j*S + t*D]"""
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, Cg, kh, kw = w.shape
    Kg = C_out // groups  # output maps per group
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    xp = zero_pad(x, ph, pw)
    y = np.zeros((N, C_out, Ho, Wo))
    for n in range(N):
        for k in range(C_out):
            g = k // Kg
            for i in range(Ho):
                for j in range(Wo):
                    total = b[k]
                    for c in range(Cg):
                        for s in range(kh):
                            for t in range(kw):
                                total += w[k, c, s, t] * xp[n, g * Cg + c, i * sh + s * Dh, j * sw + t * Dw]
                    y[n, k, i, j] = total
    return y


def grouped_conv2d_backward(dy, x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db): the scatter of every product's delta to its two factors (module docstring)."""
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, Cg, kh, kw = w.shape
    Kg = C_out // groups
    _, _, Ho, Wo = dy.shape
    xp = zero_pad(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros((C_out, Cg, kh, kw))
    db = np.zeros(C_out)
    for n in range(N):
        for k in range(C_out):
            g = k // Kg
            for i in range(Ho):
                for j in range(Wo):
                    db[k] += dy[n, k, i, j]
                    for c in range(Cg):
                        for s in range(kh):
                            for t in range(kw):
                                u, v = i * sh + s * Dh, j * sw + t * Dw
                                dw[k, c, s, t] += dy[n, k, i, j] * xp[n, g * Cg + c, u, v]
                                dxp[n, g * Cg + c, u, v] += dy[n, k, i, j] * w[k, c, s, t]
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, db


def grouped_conv2d_via_groups_forward(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """An alternative derivation: G independent convolutions (reference.conv2d), one per group, concatenated:
    y[:, group g's maps] = correlate2d(x[:, group g's channels], w[group g's maps], b[group g's maps])."""
    Cg, Kg = x.shape[1] // groups, w.shape[0] // groups
    return np.concatenate([correlate2d_forward(x[:, g * Cg:(g + 1) * Cg], w[g * Kg:(g + 1) * Kg],
                                               b[g * Kg:(g + 1) * Kg], stride, padding, dilation)
                           for g in range(groups)], axis=1)


def grouped_conv2d_via_groups_backward(dy, x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Each group's (dx, dw, db) from reference.conv2d's backward on its slice; dx, dw, db concatenated."""
    Cg, Kg = x.shape[1] // groups, w.shape[0] // groups
    parts = [correlate2d_backward(dy[:, g * Kg:(g + 1) * Kg], x[:, g * Cg:(g + 1) * Cg], w[g * Kg:(g + 1) * Kg],
                                  b[g * Kg:(g + 1) * Kg], stride, padding, dilation) for g in range(groups)]
    return (np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=0),
            np.concatenate([p[2] for p in parts], axis=0))
