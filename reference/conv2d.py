"""Convolution layer, forward and backward, as the derivations write it: one loop per index of the equation.

Layouts: x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,), y (N, C_out, Ho, Wo). Hyperparameters per axis:
stride S, zero padding P, dilation D (torch's convention: D = 1 means none). xp is x zero-padded by P.

Sources (../shared/seeds): 000 (one kernel: forward, dE/dw, dE/db, dE/dx with out-of-range terms = 0),
002 (one channel, then many; the bias does not depend on the input channel; dE/dx is a convolution with the kernel
flipped by 180 degrees), 004 (stride s in every index; convolution versus cross-correlation).

Two conventions (004): cross-correlation, what frameworks call "conv", slides w as it is; true convolution flips it
in the forward pass. Each has its own backward: cross-correlation flips the kernel going back (the "full" correlation
with rot180(w)), convolution does not.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    """Ho = floor((H + 2P - D(kh - 1) - 1) / S) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pad_with(x: np.ndarray, ph: int, pw: int, value: float) -> np.ndarray:
    """xp[n, c, i + ph, j + pw] = x[n, c, i, j]; ``value`` elsewhere (0 for convolution, -inf for max pooling)."""
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    xp[n, c, i + ph, j + pw] = x[n, c, i, j]
    return xp


def zero_pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """xp[n, c, i + ph, j + pw] = x[n, c, i, j]; zeros elsewhere."""
    return pad_with(x, ph, pw, 0.0)


def rot180(w: np.ndarray) -> np.ndarray:
    """rot180(w)[k, c, s, t] = w[k, c, kh - 1 - s, kw - 1 - t]   (both spatial axes flipped)."""
    C_out, C_in, kh, kw = w.shape
    r = np.zeros_like(w)
    for k in range(C_out):
        for c in range(C_in):
            for s in range(kh):
                for t in range(kw):
                    r[k, c, s, t] = w[k, c, kh - 1 - s, kw - 1 - t]
    return r


# ----------------------------------------------------------------------------------------------------------------
# Cross-correlation ("conv" in frameworks)
# ----------------------------------------------------------------------------------------------------------------

def correlate2d_forward(x, w, b, stride=1, padding=0, dilation=1):
    """y[n, k, i, j] = b[k] + sum_c sum_s sum_t w[k, c, s, t] * xp[n, c, i*S + s*D, j*S + t*D]

    One channel, stride 1, no padding (000, 002):  y_ij = sum_{s=0}^{m-1} sum_{t=0}^{n-1} w_st x_(i+s)(j+t) + b.
    Many channels (002): the sum runs over input channels c too; one bias b^k per output map.
    Stride (004): the window of output (i, j) starts at (i*S, j*S).
    """
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    xp = zero_pad(x, ph, pw)
    y = np.zeros((N, C_out, Ho, Wo))
    for n in range(N):
        for k in range(C_out):
            for i in range(Ho):
                for j in range(Wo):
                    total = b[k]
                    for c in range(C_in):
                        for s in range(kh):
                            for t in range(kw):
                                total += w[k, c, s, t] * xp[n, c, i * sh + s * Dh, j * sw + t * Dw]
                    y[n, k, i, j] = total
    return y


def correlate2d_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """Gradients of E given delta = dE/dy (returns dx, dw, db).

    dE/dw[k, c, s, t] = sum_n sum_i sum_j delta[n, k, i, j] * xp[n, c, i*S + s*D, j*S + t*D]      (000, 002, 004)
    dE/db[k]          = sum_n sum_i sum_j delta[n, k, i, j]                                      (000, 002, 004)
    dE/dx: a "full" correlation of delta with the kernel rotated by 180 degrees (000, 002):

        dxp[n, c, u, v] = sum_k sum_s sum_t  delta_full[n, k, u + s*D, v + t*D] * rot180(w)[k, c, s, t]

    where delta_full is delta with S - 1 zeros inserted between neighbours (the stride, 004) and D(k - 1) zeros
    around it ("out-of-range terms are 0", 000). dx is dxp with the padding cropped; rows and columns of x that no
    window reaches (H + 2P - D(kh-1) - 1 not divisible by S) stay 0.
    """
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    _, _, Ho, Wo = dy.shape
    xp = zero_pad(x, ph, pw)

    dw = np.zeros_like(w, dtype=np.float64)
    for k in range(C_out):
        for c in range(C_in):
            for s in range(kh):
                for t in range(kw):
                    for n in range(N):
                        for i in range(Ho):
                            for j in range(Wo):
                                dw[k, c, s, t] += dy[n, k, i, j] * xp[n, c, i * sh + s * Dh, j * sw + t * Dw]

    db = np.zeros(C_out)
    for k in range(C_out):
        for n in range(N):
            for i in range(Ho):
                for j in range(Wo):
                    db[k] += dy[n, k, i, j]

    # delta_full: strided delta placed at (i*S + D(kh-1), j*S + D(kw-1)) in a zero frame
    eh, ew = Dh * (kh - 1), Dw * (kw - 1)
    reach_h, reach_w = (Ho - 1) * sh + 1, (Wo - 1) * sw + 1
    delta_full = np.zeros((N, C_out, reach_h + 2 * eh, reach_w + 2 * ew))
    for n in range(N):
        for k in range(C_out):
            for i in range(Ho):
                for j in range(Wo):
                    delta_full[n, k, i * sh + eh, j * sw + ew] = dy[n, k, i, j]
    w_rot = rot180(w)
    dxp = np.zeros_like(xp)
    for n in range(N):
        for c in range(C_in):
            for u in range(min(reach_h + eh, xp.shape[2])):      # rows beyond the last window's reach stay 0
                for v in range(min(reach_w + ew, xp.shape[3])):
                    for k in range(C_out):
                        for s in range(kh):
                            for t in range(kw):
                                dxp[n, c, u, v] += delta_full[n, k, u + s * Dh, v + t * Dw] * w_rot[k, c, s, t]
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    return dx, dw, db


# ----------------------------------------------------------------------------------------------------------------
# True convolution (kernel flipped in the forward pass)
# ----------------------------------------------------------------------------------------------------------------

def convolve2d_forward(x, w, b, stride=1, padding=0, dilation=1):
    """y[n, k, i, j] = b[k] + sum_c sum_a sum_b' w[k, c, a, b'] * xp[n, c, i*S + (kh-1-a)*D, j*S + (kw-1-b')*D]

    The Russian article (004) writes x_ij = sum_a sum_b w_ab y_(is-a)(js-b): the input index decreases as the kernel
    index increases. With the kernel's support placed at a = 0..kh-1, output (i, j) reads the window starting at
    (i*S, j*S), as cross-correlation does, with the kernel flipped: convolve(x, w) = correlate(x, rot180(w)).
    """
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    xp = zero_pad(x, ph, pw)
    y = np.zeros((N, C_out, Ho, Wo))
    for n in range(N):
        for k in range(C_out):
            for i in range(Ho):
                for j in range(Wo):
                    total = b[k]
                    for c in range(C_in):
                        for a in range(kh):
                            for bb in range(kw):
                                total += w[k, c, a, bb] * xp[n, c, i * sh + (kh - 1 - a) * Dh,
                                                             j * sw + (kw - 1 - bb) * Dw]
                    y[n, k, i, j] = total
    return y


def convolve2d_via_correlation_forward(x, w, b, stride=1, padding=0, dilation=1):
    """convolve(x, w) = correlate(x, rot180(w)): the flip moved out of the index arithmetic (004's remark that
    convolution flips the kernel in the forward pass and cross-correlation in the backward)."""
    return correlate2d_forward(x, rot180(w), b, stride, padding, dilation)


def convolve2d_via_correlation_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """By the chain rule through w' = rot180(w): dE/dw = rot180(dE/dw'); dx and db as for the correlation."""
    dx, dw_rotated, db = correlate2d_backward(dy, x, rot180(w), b, stride, padding, dilation)
    return dx, rot180(dw_rotated), db


def convolve2d_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """Gradients of the true convolution (returns dx, dw, db).

    dE/dw[k, c, a, b'] = sum_n sum_i sum_j delta[n, k, i, j] * xp[n, c, i*S + (kh-1-a)*D, j*S + (kw-1-b')*D]   (004)
    dE/db[k]           = sum_n sum_i sum_j delta[n, k, i, j]
    dE/dxp[n, c, u, v] = sum_k sum_i sum_j delta[n, k, i, j] * w[k, c, a, b']
                         over the (i, a) with u = i*S + (kh-1-a)*D (and likewise v): 004's w_(i's-i)(j's-j),
                         a correlation with the kernel as it is -- the flip happened in the forward pass.
    """
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    _, _, Ho, Wo = dy.shape
    xp = zero_pad(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w, dtype=np.float64)
    db = np.zeros(C_out)
    for n in range(N):
        for k in range(C_out):
            for i in range(Ho):
                for j in range(Wo):
                    db[k] += dy[n, k, i, j]
                    for c in range(C_in):
                        for a in range(kh):
                            for bb in range(kw):
                                u, v = i * sh + (kh - 1 - a) * Dh, j * sw + (kw - 1 - bb) * Dw
                                dw[k, c, a, bb] += dy[n, k, i, j] * xp[n, c, u, v]
                                dxp[n, c, u, v] += dy[n, k, i, j] * w[k, c, a, bb]
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    return dx, dw, db
