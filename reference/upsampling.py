"""Upsampling of (N, C, H, W) maps by integer scale factors (sh, sw): nearest and bilinear (align_corners=False),
torch's interpolate conventions; forward and backward. Output Ho = H sh, Wo = W sw.

Nearest: output row i reads input row i // sh (likewise columns):

    y[n, c, i, j]        = x[n, c, i // sh, j // sw]
    dE/dx[n, c, u, v]    = sum over the sh x sw block (i // sh = u, j // sw = v) of dE/dy[n, c, i, j]

Bilinear, align_corners=False: output row i sits at source coordinate
    r = max((i + 0.5) / sh - 0.5, 0),  u0 = floor(r),  u1 = min(u0 + 1, H - 1),  a = r - u0      (likewise v0, v1, b)

    y[n, c, i, j]     = (1-a)(1-b) x[u0, v0] + (1-a) b x[u0, v1] + a (1-b) x[u1, v0] + a b x[u1, v1]
    dE/dx[n, c, u, v] += dE/dy[n, c, i, j] times the weight (i, j) gave (u, v), over the four corners of every (i, j)

(1/sh as a factor, (i + 0.5) * (1/sh) - 0.5, as torch evaluates it.) At the border r is clamped to 0 and u1 to
H - 1, so the edge rows copy the edge; a corner counted twice (u0 = u1) gets both weights.
"""
from __future__ import annotations

import math

import numpy as np


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def source(i: int, scale: int, size: int):
    """(u0, u1, a): the two input rows output row i interpolates between and the weight of u1."""
    r = max((1.0 / scale) * (i + 0.5) - 0.5, 0.0)
    u0 = min(int(math.floor(r)), size - 1)
    return u0, min(u0 + 1, size - 1), r - u0


# ---- nearest -----------------------------------------------------------------------------------------------------

def upsample_nearest_forward(x, scale):
    """y[n, c, i, j] = x[n, c, i // sh, j // sw]"""
    sh, sw = _pair(scale)
    N, C, H, W = x.shape
    y = np.zeros((N, C, H * sh, W * sw))
    for n in range(N):
        for c in range(C):
            for i in range(H * sh):
                for j in range(W * sw):
                    y[n, c, i, j] = x[n, c, i // sh, j // sw]
    return y


def upsample_nearest_backward(dy, x, scale):
    """dE/dx[n, c, i // sh, j // sw] += dE/dy[n, c, i, j]. Returns (dx,)."""
    sh, sw = _pair(scale)
    N, C, H, W = x.shape
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H * sh):
                for j in range(W * sw):
                    dx[n, c, i // sh, j // sw] += dy[n, c, i, j]
    return (dx,)


# ---- bilinear ----------------------------------------------------------------------------------------------------

def _corners(i, j, scale, H, W):
    (u0, u1, a), (v0, v1, b) = source(i, scale[0], H), source(j, scale[1], W)
    return ((u0, v0, (1 - a) * (1 - b)), (u0, v1, (1 - a) * b), (u1, v0, a * (1 - b)), (u1, v1, a * b))


def upsample_bilinear_forward(x, scale):
    """y[n, c, i, j] = sum over the four corners (u, v) of weight(i, j; u, v) x[n, c, u, v]"""
    sh, sw = _pair(scale)
    N, C, H, W = x.shape
    y = np.zeros((N, C, H * sh, W * sw))
    for n in range(N):
        for c in range(C):
            for i in range(H * sh):
                for j in range(W * sw):
                    total = 0.0
                    for u, v, weight in _corners(i, j, (sh, sw), H, W):
                        total += weight * x[n, c, u, v]
                    y[n, c, i, j] = total
    return y


def upsample_bilinear_backward(dy, x, scale):
    """dE/dx[n, c, u, v] += weight(i, j; u, v) dE/dy[n, c, i, j] over every (i, j) and its corners. Returns (dx,)."""
    sh, sw = _pair(scale)
    N, C, H, W = x.shape
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(H * sh):
                for j in range(W * sw):
                    for u, v, weight in _corners(i, j, (sh, sw), H, W):
                        dx[n, c, u, v] += weight * dy[n, c, i, j]
    return (dx,)
