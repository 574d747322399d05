"""Pooling layers, forward and backward, one loop per index of the equation.

Layouts: x (N, C, H, W), y (N, C, Ho, Wo). Per axis: window k, stride S (frameworks' pooling), padding P (max
pooling only). Ho = floor((H + 2P - k) / S) + 1, as torch computes it (trailing rows no window reaches get 0).

Sources (../shared/seeds):
- 000, 002: max pooling with an l x l window moved by l:  y_ij = max_{s,t in 0..l-1} x_(li+s)(lj+t), and the
  backward "passes the error only to the unit that had the largest value":
  dE/dx_(li+s)(lj+t) = dE/dy_ij if y_ij = x_(li+s)(lj+t), else 0.
- 004: the same routing, recording the argmax coordinates in the forward pass.
- 003 (DeepLearnToolbox cnnbp): mean pooling spreads each delta evenly over its window,
  delta_prev = expand(delta, [scale scale 1]) / scale^2, so that the deltas' sum is unchanged.

Generalisations the seeds leave implicit (window and stride independent, as frameworks define them):
- stride < window: windows overlap and a cell can be the argmax of several windows (or lie in several mean
  windows): its gradient is the SUM of the contributions (+=, never =).
- padding (max pooling): padded cells are -inf, so they never win; their gradient is dropped with the padding.
- ties: the argmax is the FIRST maximal cell in row-major order inside the window (torch's CPU choice), so each
  upstream value goes to exactly one cell. At a tie the function is not differentiable; any one-cell choice is a
  valid subgradient, routing to several cells is not.
"""
from __future__ import annotations

import numpy as np

from .conv2d import pad_with  # the same padding loop; max pooling pads with -inf so padded cells never win


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def out_size(n: int, k: int, s: int, p: int = 0) -> int:
    """Ho = floor((H + 2P - k) / S) + 1."""
    return (n + 2 * p - k) // s + 1


# ----------------------------------------------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------------------------------------------

def window_argmax(xp: np.ndarray, n: int, c: int, i: int, j: int, kernel, stride) -> tuple[int, int]:
    """(u, v) in padded coordinates of the first maximal cell of window (i, j): strict '>' keeps the first of
    tied cells, and -inf padding never beats a real value."""
    (kh, kw), (sh, sw) = kernel, stride
    best, where = -np.inf, None
    for s in range(kh):
        for t in range(kw):
            u, v = i * sh + s, j * sw + t
            if where is None or xp[n, c, u, v] > best:
                best, where = xp[n, c, u, v], (u, v)
    return where


def maxpool2d_forward(x, kernel, stride, padding=0):
    """y[n, c, i, j] = max_{s < kh, t < kw} xp[n, c, i*S + s, j*S + t]     (000, 002 with k = S = l; xp: -inf pad)"""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    xp = pad_with(x, ph, pw, -np.inf)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u, v = window_argmax(xp, n, c, i, j, (kh, kw), (sh, sw))
                    y[n, c, i, j] = xp[n, c, u, v]
    return y


def maxpool2d_backward(dy, x, kernel, stride, padding=0):
    """dE/dxp[n, c, u, v] = sum over windows (i, j) whose argmax is (u, v) of dE/dy[n, c, i, j]   (000, 002, 004)

    The seeds' "dE/dx = dE/dy_ij if y_ij = x, else 0" with two generalisations: overlapping windows add up (+=),
    and of tied cells only the first (row-major) gets the value. dx is dxp with the padding cropped. Returns (dx,).
    """
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    _, _, Ho, Wo = dy.shape
    xp = pad_with(x, ph, pw, -np.inf)
    dxp = np.zeros_like(xp)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u, v = window_argmax(xp, n, c, i, j, (kh, kw), (sh, sw))
                    dxp[n, c, u, v] += dy[n, c, i, j]
    return (dxp[:, :, ph:ph + H, pw:pw + W],)


# ----------------------------------------------------------------------------------------------------------------
# Mean pooling
# ----------------------------------------------------------------------------------------------------------------

def meanpool2d_forward(x, kernel, stride):
    """y[n, c, i, j] = 1/(kh kw) sum_{s < kh} sum_{t < kw} x[n, c, i*S + s, j*S + t]"""
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh), out_size(W, kw, sw)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    total = 0.0
                    for s in range(kh):
                        for t in range(kw):
                            total += x[n, c, i * sh + s, j * sw + t]
                    y[n, c, i, j] = total / (kh * kw)
    return y


def meanpool2d_backward(dy, x, kernel, stride):
    """dE/dx[n, c, i*S + s, j*S + t] += dE/dy[n, c, i, j] / (kh kw)      for every window (i, j) and s < kh, t < kw

    With S = k = scale this is cnnbp's upsample-and-divide, expand(delta, [scale scale]) / scale^2 (003): every
    cell of a window gets an equal share, so the total is preserved. With S < k the shares of overlapping windows
    add up; with S > k cells between windows get 0. Returns (dx,).
    """
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    _, _, Ho, Wo = dy.shape
    dx = np.zeros_like(x, dtype=np.float64)
    N, C = x.shape[:2]
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    share = dy[n, c, i, j] / (kh * kw)
                    for s in range(kh):
                        for t in range(kw):
                            dx[n, c, i * sh + s, j * sw + t] += share
    return (dx,)
