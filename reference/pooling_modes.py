"""Pooling modes beyond reference.pooling: average pooling with zero padding (count_include_pad both ways) and
ceil_mode, global average pooling, and max pooling with ceil_mode; forward and backward, torch's conventions.

Output size per axis (window k, stride S, padding P, dilation D; D = 1 for average pooling):

    floor mode: Ho = floor((H + 2P - D(k - 1) - 1) / S) + 1
    ceil mode:  Ho = ceil((H + 2P - D(k - 1) - 1) / S) + 1, minus 1 if the last window would start at or beyond
                H + P (in the right padding or past it): every window starts in the input or the left padding.

Ceil mode's extra window runs past the padded input; the cells beyond it do not exist (they are not padding).

Average pooling, window i along one axis (torch's avg_pool2d): it covers input rows a..b-1 with
    a0 = i S - P,  b0 = min(a0 + k, H + P),  a = max(a0, 0),  b = min(b0, H)
and its divisor is (b0 - a0)(per axis, multiplied over the two axes) with count_include_pad (the padding counts,
what lies past the padded input does not), or (b - a)(...) without (the real cells only):

    y[n, c, i, j]        = 1/div(i, j) sum_{u=a..b-1} sum_{v=a'..b'-1} x[n, c, u, v]
    dE/dx[n, c, u, v]   += dE/dy[n, c, i, j] / div(i, j)        for every window (i, j) covering (u, v)

Global average pooling (AdaptiveAvgPool2d(1)): y[n, c, 0, 0] = 1/(H W) sum_{u,v} x[n, c, u, v];
dE/dx[n, c, u, v] = dE/dy[n, c, 0, 0] / (H W).

Max pooling in ceil mode: floor mode on x extended at the end by rows and columns of -inf (they never win), so
that the extra windows exist; dx is cropped back. y = max over the window's existing cells, dE/dx to the argmax.
"""
from __future__ import annotations

import numpy as np

from . import pooling


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def pooled_size(n: int, k: int, s: int, p: int = 0, d: int = 1, ceil_mode: bool = False) -> int:
    """Ho in floor or ceil mode (module docstring)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def windows_read_input(n: int, k: int, s: int, p: int = 0, d: int = 1, ceil_mode: bool = False) -> bool:
    """Every window i has a cell i*S + t*D inside the real rows [P, P + n) (padded coordinates)."""
    return all(any(p <= i * s + t * d < p + n for t in range(k)) for i in range(pooled_size(n, k, s, p, d, ceil_mode)))


def window_rows(i: int, n: int, k: int, s: int, p: int):
    """(a, b, size with padding): window i of average pooling covers real rows a..b-1; b0 - a0 rows count when the
    padding does (torch's rule: the padded input's end clips the window)."""
    a0 = i * s - p
    b0 = min(a0 + k, n + p)
    return max(a0, 0), min(b0, n), b0 - a0


# ---- average pooling ---------------------------------------------------------------------------------------------

def avgpool2d_forward(x, kernel, stride, padding=0, ceil_mode=False, count_include_pad=True):
    """y[n, c, i, j] = 1/div(i, j) sum_{u=a..b-1} sum_{v=a'..b'-1} x[n, c, u, v]"""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Ho, Wo = pooled_size(H, kh, sh, ph, 1, ceil_mode), pooled_size(W, kw, sw, pw, 1, ceil_mode)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                a, b, rows = window_rows(i, H, kh, sh, ph)
                for j in range(Wo):
                    a2, b2, cols = window_rows(j, W, kw, sw, pw)
                    div = rows * cols if count_include_pad else (b - a) * (b2 - a2)
                    total = 0.0
                    for u in range(a, b):
                        for v in range(a2, b2):
                            total += x[n, c, u, v]
                    y[n, c, i, j] = total / div
    return y


def avgpool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False, count_include_pad=True):
    """dE/dx[n, c, u, v] += dE/dy[n, c, i, j] / div(i, j) for every window covering (u, v). Returns (dx,)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    _, _, Ho, Wo = dy.shape
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                a, b, rows = window_rows(i, H, kh, sh, ph)
                for j in range(Wo):
                    a2, b2, cols = window_rows(j, W, kw, sw, pw)
                    div = rows * cols if count_include_pad else (b - a) * (b2 - a2)
                    for u in range(a, b):
                        for v in range(a2, b2):
                            dx[n, c, u, v] += dy[n, c, i, j] / div
    return (dx,)


# ---- global average pooling --------------------------------------------------------------------------------------

def global_avgpool2d_forward(x):
    """y[n, c, 0, 0] = 1/(H W) sum_u sum_v x[n, c, u, v]"""
    N, C, H, W = x.shape
    y = np.zeros((N, C, 1, 1))
    for n in range(N):
        for c in range(C):
            total = 0.0
            for u in range(H):
                for v in range(W):
                    total += x[n, c, u, v]
            y[n, c, 0, 0] = total / (H * W)
    return y


def global_avgpool2d_backward(dy, x):
    """dE/dx[n, c, u, v] = dE/dy[n, c, 0, 0] / (H W). Returns (dx,)."""
    N, C, H, W = x.shape
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for u in range(H):
                for v in range(W):
                    dx[n, c, u, v] = dy[n, c, 0, 0] / (H * W)
    return (dx,)


# ---- max pooling, ceil mode --------------------------------------------------------------------------------------

def ceil_extension(n: int, k: int, s: int, p: int, d: int) -> int:
    """Rows to add at the end so that floor mode on the extended input has ceil mode's window count."""
    out = pooled_size(n, k, s, p, d, ceil_mode=True)
    return max((out - 1) * s + d * (k - 1) + 1 - 2 * p - n, 0)


def _extended(x, kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (Dh, Dw) = kernel, stride, padding, dilation
    N, C, H, W = x.shape
    for n, k, s, p, d, axis in zip((H, W), kernel, stride, padding, dilation, "hw"):
        if not windows_read_input(n, k, s, p, d, ceil_mode=True):
            raise ValueError(f"max pooling undefined: a window along {axis} reads no real cell "
                             f"(size {n}, kernel {k}, stride {s}, padding {p}, dilation {d}, ceil mode)")
    eh, ew = ceil_extension(H, kh, sh, ph, Dh), ceil_extension(W, kw, sw, pw, Dw)
    xe = np.full((N, C, H + eh, W + ew), -np.inf)
    xe[:, :, :H, :W] = x
    return xe


def maxpool2d_ceil_forward(x, kernel, stride, padding=0, dilation=1):
    """y[n, c, i, j] = max over the existing cells xp[n, c, i*S + s*D, j*S + t*D] (ceil mode's window count)"""
    hyper = (_pair(kernel), _pair(stride), _pair(padding), _pair(dilation))
    return pooling.maxpool2d_forward(_extended(x, *hyper), *hyper)


def maxpool2d_ceil_backward(dy, x, kernel, stride, padding=0, dilation=1):
    """dE/dx to each window's argmax (reference.pooling's backward on the extended input), cropped. Returns (dx,)."""
    hyper = (_pair(kernel), _pair(stride), _pair(padding), _pair(dilation))
    (dx,) = pooling.maxpool2d_backward(dy, _extended(x, *hyper), *hyper)
    return (dx[:, :, :x.shape[2], :x.shape[3]],)
