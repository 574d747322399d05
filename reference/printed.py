"""The seeds' formulas transcribed literally, as printed: indices, bounds and conditions exactly as the text has them,
mistakes included. Nothing here is trusted; checks/errata.py runs each through the harness and reports which are
right (confirmed) and which are wrong (with the minimal counterexample and the corrected formula).

Reading conventions (stated once, used everywhere):
- A sum's upper bound is inclusive, as in sum_{i=0}^{U}.
- "2(m/2)" in 000 is read with integer halving, 2*(m//2) (with exact division 2(m/2) = m and the author would have
  written m); errata.py also checks the exact reading.
- An index the printed formula reaches outside its array raises PrintedIndexError, naming the element, unless the
  text says what such a term is (000: "dE/dy_(i-s)(j-t) = 0 when i-s < 0 or j-t < 0"; 004 sums a over all integers,
  so kernel taps outside the kernel are 0 there).
- Functions take the canonical layouts of the op they transcribe (x (N, C, H, W) and so on) and apply a per-sample,
  per-channel formula to every sample and channel; checks restrict configurations to the formula's scope.
"""
from __future__ import annotations

import numpy as np


class PrintedIndexError(IndexError):
    """A printed formula reads an element that does not exist."""


def read(array: np.ndarray, index: tuple, what: str) -> float:
    """array[index], refusing negative (wrap-around) and too-large indices: the printed formula reached outside."""
    if any(i < 0 or i >= n for i, n in zip(index, array.shape)):
        raise PrintedIndexError(f"reads {what}[{', '.join(map(str, index))}], outside its shape {array.shape}")
    return float(array[index])


# ----------------------------------------------------------------------------------------------------------------
# 000 (Japanese, "CNNの伝搬と逆伝搬"): one kernel, stride 1, no padding. x is M x N, the kernel m x n.
# ----------------------------------------------------------------------------------------------------------------

def conv_forward_000(x, w, b, **_):
    """y_ij = sum_{s=0}^{m-1} sum_{t=0}^{n-1} w^k_st x_(i+s)(j+t) + b^k   (i, j over the M-m+1 by N-n+1 outputs)"""
    N_, C_out = x.shape[0], w.shape[0]
    M, N = x.shape[2:]
    m, n = w.shape[2:]
    y = np.zeros((N_, C_out, M - m + 1, N - n + 1))
    for p in range(N_):
        for k in range(C_out):
            for i in range(M - m + 1):
                for j in range(N - n + 1):
                    y[p, k, i, j] = sum(w[k, 0, s, t] * read(x[p, 0], (i + s, j + t), "x")
                                        for s in range(m) for t in range(n)) + b[k]
    return y


def conv_dw_000(dy, x, w, b, half=lambda m: m // 2, **_):
    """dE/dw^k_st = sum_{i=0}^{M-2(m/2)} sum_{j=0}^{N-2(n/2)} dE/dy^k_ij x_(i+s)(j+t)"""
    M, N = x.shape[2:]
    m, n = w.shape[2:]
    dw = np.zeros_like(w)
    for k in range(w.shape[0]):
        for s in range(m):
            for t in range(n):
                dw[k, 0, s, t] = sum(read(dy[p, k], (i, j), "dE/dy") * read(x[p, 0], (i + s, j + t), "x")
                                     for p in range(x.shape[0])
                                     for i in range(M - 2 * half(m) + 1) for j in range(N - 2 * half(n) + 1))
    return dw


def conv_db_000(dy, x, w, b, half=lambda m: m // 2, **_):
    """dE/db^k = sum_{i=0}^{M-2(m/2)} sum_{j=0}^{N-2(m/2)} dE/dy^k_ij   (first line as printed: m in the j bound)"""
    M, N = x.shape[2:]
    m, _n = w.shape[2:]
    return np.array([sum(read(dy[p, k], (i, j), "dE/dy") for p in range(x.shape[0])
                         for i in range(M - 2 * half(m) + 1) for j in range(N - 2 * half(m) + 1))
                     for k in range(w.shape[0])])


def conv_dx_000(dy, x, w, b, **_):
    """dE/dx_ij = sum_{s=0}^{m-1} sum_{t=0}^{n-1} dE/dy^k_(i-s)(j-t) w^k_st,
    with dE/dy^k_(i-s)(j-t) = 0 when i - s < 0 or j - t < 0 (the only out-of-range case the text names)."""
    M, N = x.shape[2:]
    m, n = w.shape[2:]
    dx = np.zeros_like(x)
    for p in range(x.shape[0]):
        for i in range(M):
            for j in range(N):
                total = 0.0
                for k in range(w.shape[0]):
                    for s in range(m):
                        for t in range(n):
                            if i - s < 0 or j - t < 0:
                                continue
                            total += read(dy[p, k], (i - s, j - t), "dE/dy") * w[k, 0, s, t]
                dx[p, 0, i, j] = total
    return dx


def maxpool_backward_000(dy, x, kernel, stride, padding=0):
    """dE/dx_(li+s)(lj+t) = dE/dy_ij if y_ij = x_(li+s)(lj+t), 0 otherwise   (window l = stride l)"""
    l = kernel[0]
    dx = np.zeros_like(x)
    for p in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    y_ij = max(x[p, c, l * i + s, l * j + t] for s in range(l) for t in range(l))
                    for s in range(l):
                        for t in range(l):
                            if y_ij == x[p, c, l * i + s, l * j + t]:
                                dx[p, c, l * i + s, l * j + t] = dy[p, c, i, j]
    return (dx,)


def relu_backward_000(dy, x):
    """dE/dx_ij = dE/dx_ij if y_ij >= 0, 0 otherwise   (the right side's dE/dx can only be the incoming gradient,
    dE/dy: the one the layer receives; read so)"""
    y = np.maximum(0.0, x)
    return (np.where(y >= 0, dy, 0.0),)


# ----------------------------------------------------------------------------------------------------------------
# 004 (Russian, "Сверточная сеть на python, часть 2")
# ----------------------------------------------------------------------------------------------------------------

def relu_backward_004(dy, x):
    """f'_ReLU = 1 if x_i > 0, 0 otherwise; dE/dx = dE/dy f'"""
    return (np.where(x > 0, 1.0, 0.0) * dy,)


def sigmoid_backward_004(dy, x):
    """f'_sigmoid = f_sigmoid (1 - f_sigmoid)"""
    f = 1.0 / (1.0 + np.exp(-x))
    return (dy * f * (1 - f),)


def mse_backward_004(dE, y, t):
    """dE/dy_i = y_i - y^truth_i     for E = 1/2 sum_i (y^truth_i - y_i)^2"""
    return (dE * (y - t),)


def cross_entropy_backward_004(dE, y, t):
    """dE/dy_i = -y^truth_i / y_i     for E = -sum_i y^truth_i ln(y_i)"""
    return (dE * (-t / y),)


def _softmax(row):
    e = np.exp(row - np.max(row))
    return e / e.sum()


def softmax_jacobian_004(x_row, off_diagonal: str):
    """J[k][i] = dy_k/dx_i as the matrix expansion prints it (rows: outputs y_k, columns: inputs x_i).
    Diagonal: y_i (1 - y_i). Off-diagonal: "final" -y_i y_j, or "intermediate" e^x_i e^x_j / (sum e^x)^2, the
    step before it as printed (the minus sign of (0 * sum - e^x_i e^x_j) dropped)."""
    y = _softmax(x_row)
    e = np.exp(x_row - np.max(x_row))
    total = e.sum()
    K = len(x_row)
    J = np.zeros((K, K))
    for k in range(K):
        for i in range(K):
            if k == i:
                J[k, i] = y[i] * (1 - y[i])
            elif off_diagonal == "final":
                J[k, i] = -y[k] * y[i]
            else:
                J[k, i] = e[k] * e[i] / (total * total)
    return J


def softmax_backward_004(dy, x, off_diagonal="final"):
    """[dE/dx_0 ... dE/dx_n] = [dE/dy_0 ... dE/dy_n] J,  i.e. dE/dx_i = sum_k dE/dy_k dy_k/dx_i"""
    dx = np.zeros_like(x)
    for p in range(x.shape[0]):
        J = softmax_jacobian_004(x[p], off_diagonal)
        dx[p] = dy[p] @ J
    return (dx,)


def softmax_backward_004_intermediate(dy, x):
    return softmax_backward_004(dy, x, "intermediate")


def dense_dx_004_expanded(dy, x, W, b):
    """dE/dy^(l-1)_k = (delta_1 w_k0 + delta_2 w_k1 + ... + delta_n w_kn), the expanded row as printed: delta's
    index runs one ahead of w's column, delta_(i+1) w_ki for i = 0 .. n-1 (the first terms' pattern)."""
    N, m = x.shape
    n_outputs = W.shape[1]
    dx = np.zeros((N, m))
    for p in range(N):
        for k in range(m):
            dx[p, k] = sum(read(dy[p], (i + 1,), "delta") * W[k, i] for i in range(n_outputs - 1))
    return dx


def dense_dx_004_matrix(dy, x, W, b):
    """dE/dy^(l-1) = delta . (w^l)^T   (1 x m) = (1 x n)(n x m)"""
    return dy @ W.T


def dense_dw_004(dy, x, W, b):
    """dE/dw = (y^(l-1))^T . delta   (m x n) = (m x 1)(1 x n), summed over the batch's rows"""
    return x.T @ dy


def conv_dw_004_correlation(dy, x, w, b, stride, **_):
    """dE/dw_ab = sum_i sum_j dE/dy_ij dy_ij/dx_ij . y^(l-1)_(is+a)(j+b)   (cross-correlation; stride s in i only,
    as printed). The activation factor is taken as 1 (the op under check is the conv alone)."""
    s = stride[0]
    Ho, Wo = dy.shape[2:]
    dw = np.zeros_like(w)
    for k in range(w.shape[0]):
        for a in range(w.shape[2]):
            for bb in range(w.shape[3]):
                dw[k, 0, a, bb] = sum(read(dy[p, k], (i, j), "delta") * read(x[p, 0], (i * s + a, j + bb), "y^(l-1)")
                                      for p in range(x.shape[0]) for i in range(Ho) for j in range(Wo))
    return dw


def conv_dx_004_correlation(dy, x, w, b, stride, **_):
    """dE/dy^(l-1)_ij = sum_i' sum_j' delta_i'j' w_(i-i's)(j-j's)   (cross-correlation; w is 0 outside its support,
    the article's a, b run over all integers)"""
    sh, sw = stride
    Ho, Wo = dy.shape[2:]
    kh, kw = w.shape[2:]
    dx = np.zeros_like(x)
    for p in range(x.shape[0]):
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                dx[p, 0, i, j] = sum(dy[p, k, i_, j_] * w[k, 0, i - i_ * sh, j - j_ * sw]
                                     for k in range(w.shape[0]) for i_ in range(Ho) for j_ in range(Wo)
                                     if 0 <= i - i_ * sh < kh and 0 <= j - j_ * sw < kw)
    return dx


def conv_db_004(dy, x, w, b, **_):
    """dE/db = sum_i sum_j delta_ij   (one bias per feature map)"""
    return dy.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------------------------------------------
# 003 (Chinese, DeepLearnToolbox cnnbp)
# ----------------------------------------------------------------------------------------------------------------

def meanpool_backward_003(dy, x, kernel, stride):
    """d = expand(d_next, [scale scale 1]) / scale^2   (mean pooling, scale x scale blocks)"""
    scale = kernel[0]
    return (np.kron(dy, np.ones((1, 1, scale, scale))) / scale ** 2,)
