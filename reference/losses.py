"""Losses E(y, t), forward and backward, on (N, K) arrays: N samples, K outputs (classes). The targets t are data,
not differentiated. Convention: forward(y, t) -> 0-d array E; backward(dE, y, t) -> (dE/dy,) scaled by the
upstream scalar dE (1 when E is the final loss).

Sources: 004 (1/2 sum (t - y)^2 with gradient y - t; cross-entropy -sum t ln y with gradient -t/y),
003 (DeepLearnToolbox cnnbp: e = o - y, L = 1/2 sum(e(:).^2) / size(e, 2), the batch being the toolbox's
second axis, here N).

Softmax fused with cross-entropy (on logits z, soft targets t, each row of t a probability distribution):

    E = -sum_n sum_k t[n, k] ln softmax(z)[n, k] = sum_n ( (sum_k t[n, k]) lse(z[n]) - sum_k t[n, k] z[n, k] )
    dE/dz[n, k] = (sum_j t[n, j]) softmax(z)[n, k] - t[n, k]      (= softmax - t for rows of t summing to 1)

computed as log-softmax, ln softmax(z)_k = (z_k - m) - ln sum_j e^{z_j - m} with m = max_j z_j: every exponent is
<= 0, so logits in the hundreds (where e^z overflows beyond 709, or underflows to 0/0 below -745) stay finite, and
z_k - m is exact for neighbouring logits (no rounding at the logits' magnitude: m + ln(...) would lose eps * |m|).
"""
from __future__ import annotations

import numpy as np

from .activations import softmax_forward


def _scalar(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(())


# ---- 1/2 sum (t - y)^2 ------------------------------------------------------------------------------------------

def mse_forward(y, t):
    """E = 1/2 sum_n sum_k (t[n, k] - y[n, k])^2      (004)"""
    total = 0.0
    for index in np.ndindex(y.shape):
        total += 0.5 * (t[index] - y[index]) ** 2
    return _scalar(total)


def mse_backward(dE, y, t):
    """dE/dy[n, k] = y[n, k] - t[n, k]                (004: (t - y) * (-1))"""
    dy = np.zeros_like(y, dtype=np.float64)
    for index in np.ndindex(y.shape):
        dy[index] = float(dE) * (y[index] - t[index])
    return (dy,)


# ---- -sum t ln y ------------------------------------------------------------------------------------------------

def cross_entropy_forward(y, t):
    """E = -sum_n sum_k t[n, k] ln y[n, k]             (004; y are probabilities, y > 0)"""
    total = 0.0
    for index in np.ndindex(y.shape):
        total -= t[index] * np.log(y[index])
    return _scalar(total)


def cross_entropy_backward(dE, y, t):
    """dE/dy[n, k] = -t[n, k] / y[n, k]               (004)"""
    dy = np.zeros_like(y, dtype=np.float64)
    for index in np.ndindex(y.shape):
        dy[index] = -float(dE) * t[index] / y[index]
    return (dy,)


# ---- softmax + cross-entropy on logits --------------------------------------------------------------------------

def log_softmax_row(row) -> list[float]:
    """ln softmax(z)_k = (z_k - m) - ln sum_j e^{z_j - m},  m = max_j z_j."""
    m = max(row)
    log_total = np.log(sum(np.exp(v - m) for v in row))
    return [(v - m) - log_total for v in row]


def softmax_cross_entropy_forward(z, t):
    """E = -sum_n sum_k t[n, k] ln softmax(z[n])_k      (never ln of a probability rounded to 0)"""
    N, K = z.shape
    total = 0.0
    for n in range(N):
        log_p = log_softmax_row(z[n])
        for k in range(K):
            total -= t[n, k] * log_p[k]
    return _scalar(total)


def softmax_cross_entropy_backward(dE, z, t):
    """dE/dz[n, k] = (sum_j t[n, j]) softmax(z)[n, k] - t[n, k]   (soft targets included)"""
    p = softmax_forward(z)
    N, K = z.shape
    dz = np.zeros((N, K))
    for n in range(N):
        mass = sum(t[n, j] for j in range(K))
        for k in range(K):
            dz[n, k] = float(dE) * (mass * p[n, k] - t[n, k])
    return (dz,)


# ---- DeepLearnToolbox: 1/2 sum e^2 / batch ----------------------------------------------------------------------

def toolbox_mse_forward(y, t):
    """L = 1/2 sum_n sum_k e[n, k]^2 / N,  e = y - t     (003: net.L = 1/2 * sum(net.e(:).^2) / size(net.e, 2))"""
    N = y.shape[0]
    total = 0.0
    for index in np.ndindex(y.shape):
        total += 0.5 * (y[index] - t[index]) ** 2
    return _scalar(total / N)


def toolbox_mse_backward(dE, y, t):
    """dL/dy[n, k] = e[n, k] / N     (the toolbox's output delta before the sigmoid factor, divided by the batch)"""
    N = y.shape[0]
    dy = np.zeros_like(y, dtype=np.float64)
    for index in np.ndindex(y.shape):
        dy[index] = float(dE) * (y[index] - t[index]) / N
    return (dy,)
