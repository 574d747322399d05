"""Pooling layers, forward and backward, one loop per index of the equation.

Layouts: x (N, C, H, W), y (N, C, Ho, Wo). Per axis: window k, stride S (frameworks' pooling), padding P and
dilation D (max pooling only; D = 1 means none, torch's convention: window cell s sits at i*S + s*D).
Ho = floor((H + 2P - D(k - 1) - 1) / S) + 1, as torch computes it (trailing rows no window reaches get 0).

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
- dilation (max pooling): with P > 0 and D > 1 a window can skip over every real cell and read only padding (H = 1,
  k = 2, P = 1, D = 2 reads padded rows 0 and 2). Its max is over no real value, so the op is not defined there:
  the reference raises ValueError rather than returning -inf (torch 2.13 returns -inf and its backward routes that
  window's gradient into another sample). ``every_window_reads_input`` tells such configurations apart.
- ties: the argmax is the FIRST maximal cell in row-major order inside the window (torch's CPU choice), so each
  upstream value goes to exactly one cell. At a tie the function is not differentiable; any one-cell choice is a
  valid subgradient, routing to several cells is not.
"""
from __future__ import annotations

import numpy as np

from .conv2d import pad_with  # the same padding loop; max pooling pads with -inf so padded cells never win


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def out_size(n: int, k: int, s: int, p: int = 0, d: int = 1) -> int:
    """Ho = floor((H + 2P - D(k - 1) - 1) / S) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def every_window_reads_input(n: int, k: int, s: int, p: int = 0, d: int = 1) -> bool:
    """True when each window i along one axis has a cell i*S + s*D inside the real rows [P, P + n)."""
    return all(any(p <= i * s + t * d < p + n for t in range(k)) for i in range(out_size(n, k, s, p, d)))


# ----------------------------------------------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------------------------------------------

def window_argmax(xp: np.ndarray, n: int, c: int, i: int, j: int, kernel, stride, dilation=(1, 1)
                  ) -> tuple[int, int]:
    """(u, v) in padded coordinates of the first maximal cell of window (i, j): strict '>' keeps the first of
    tied cells, and -inf padding never beats a real value."""
    (kh, kw), (sh, sw), (Dh, Dw) = kernel, stride, dilation
    best, where = -np.inf, None
    for s in range(kh):
        for t in range(kw):
            u, v = i * sh + s * Dh, j * sw + t * Dw
            if where is None or xp[n, c, u, v] > best:
                best, where = xp[n, c, u, v], (u, v)
    return where


def _check_windows(H, W, kernel, stride, padding, dilation):
    for n, k, s, p, d, axis in zip((H, W), kernel, stride, padding, dilation, "hw"):
        if not every_window_reads_input(n, k, s, p, d):
            raise ValueError(f"max pooling undefined: a window along {axis} reads only padding "
                             f"(size {n}, kernel {k}, stride {s}, padding {p}, dilation {d})")


def maxpool2d_forward(x, kernel, stride, padding=0, dilation=1):
    """y[n, c, i, j] = max_{s < kh, t < kw} xp[n, c, i*S + s*D, j*S + t*D]   (000, 002 with k = S = l, D = 1;
    xp: -inf pad)"""
    (kh, kw), (sh, sw), (ph, pw), (Dh, Dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    _check_windows(H, W, (kh, kw), (sh, sw), (ph, pw), (Dh, Dw))
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    xp = pad_with(x, ph, pw, -np.inf)
    y = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u, v = window_argmax(xp, n, c, i, j, (kh, kw), (sh, sw), (Dh, Dw))
                    y[n, c, i, j] = xp[n, c, u, v]
    return y


def maxpool2d_backward(dy, x, kernel, stride, padding=0, dilation=1):
    """dE/dxp[n, c, u, v] = sum over windows (i, j) whose argmax is (u, v) of dE/dy[n, c, i, j]   (000, 002, 004)
    (window (i, j) holds the cells (i*S + s*D, j*S + t*D))

    The seeds' "dE/dx = dE/dy_ij if y_ij = x, else 0" with two generalisations: overlapping windows add up (+=),
    and of tied cells only the first (row-major) gets the value. dx is dxp with the padding cropped. Returns (dx,).
    """
    (kh, kw), (sh, sw), (ph, pw), (Dh, Dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    _check_windows(H, W, (kh, kw), (sh, sw), (ph, pw), (Dh, Dw))
    _, _, Ho, Wo = dy.shape
    xp = pad_with(x, ph, pw, -np.inf)
    dxp = np.zeros_like(xp)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u, v = window_argmax(xp, n, c, i, j, (kh, kw), (sh, sw), (Dh, Dw))
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
