"""Log-softmax, the negative log-likelihood loss on index targets, and binary cross-entropy on logits, forward and
backward (torch's log_softmax, nll_loss and binary_cross_entropy_with_logits). (N, K) arrays: N samples, K classes.

Log-softmax over the K classes of each sample (m = max_k z[n, k]; every exponent <= 0, see reference.losses):

    y[n, k]     = (z[n, k] - m) - ln sum_j e^(z[n, j] - m)
    dE/dz[n, k] = dE/dy[n, k] - softmax(z)[n, k] sum_j dE/dy[n, j]       (dy_j/dz_k = [j = k] - softmax_k)

NLL loss on log-probabilities y with class indices t[n] in 0..K-1 (data, stored as floats; not differentiated),
reduction "sum" (R = 1) or "mean" (R = N):

    E            = -1/R sum_n y[n, t[n]]
    dE/dy[n, k]  = -dE / R  if k = t[n], else 0

log_softmax followed by nll_loss is cross-entropy on logits with index targets (torch's F.cross_entropy):

    E            = -1/R sum_n log_softmax(z)[n, t[n]]
    dE/dz[n, k]  = dE / R (softmax(z)[n, k] - [k = t[n]])

Binary cross-entropy on logits z with soft targets t in [0, 1] (data), element-wise, reduction "sum" (R = 1) or
"mean" (R = N K):

    E            = 1/R sum_{n,k} [ max(z, 0) - z t + ln(1 + e^-|z|) ]     (= -t ln s(z) - (1 - t) ln(1 - s(z)))
    dE/dz[n, k]  = dE / R (s(z[n, k]) - t[n, k]),     s = sigmoid

The max/abs form never takes the log of a probability rounded to 0 (ln s(z) = -inf once s(z) rounds to 0 or 1).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import sigmoid
from .losses import log_softmax_row


def _divisor(reduction: str, count: int) -> int:
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
    return count if reduction == "mean" else 1


# ---- log-softmax --------------------------------------------------------------------------------------------------

def log_softmax_forward(z):
    """y[n, k] = (z[n, k] - m_n) - ln sum_j e^(z[n, j] - m_n)"""
    N, K = z.shape
    y = np.zeros((N, K))
    for n in range(N):
        row = log_softmax_row(z[n])
        for k in range(K):
            y[n, k] = row[k]
    return y


def log_softmax_backward(dy, z):
    """dE/dz[n, k] = dE/dy[n, k] - softmax(z)[n, k] sum_j dE/dy[n, j]. Returns (dz,)."""
    N, K = z.shape
    dz = np.zeros((N, K))
    for n in range(N):
        row = log_softmax_row(z[n])
        total = 0.0
        for j in range(K):
            total += dy[n, j]
        for k in range(K):
            dz[n, k] = dy[n, k] - math.exp(row[k]) * total
    return (dz,)


# ---- NLL loss ----------------------------------------------------------------------------------------------------

def nll_loss_forward(y, t, reduction="mean"):
    """E = -1/R sum_n y[n, t[n]]"""
    N = y.shape[0]
    total = 0.0
    for n in range(N):
        total -= y[n, int(t[n])]
    return np.asarray(total / _divisor(reduction, N), dtype=np.float64).reshape(())


def nll_loss_backward(dE, y, t, reduction="mean"):
    """dE/dy[n, k] = -dE / R at k = t[n], 0 elsewhere. Returns (dy,)."""
    N, K = y.shape
    R = _divisor(reduction, N)
    dy = np.zeros((N, K))
    for n in range(N):
        dy[n, int(t[n])] = -float(dE) / R
    return (dy,)


# ---- log-softmax + NLL (cross-entropy on logits, index targets) -------------------------------------------------

def log_softmax_nll_forward(z, t, reduction="mean"):
    """E = -1/R sum_n log_softmax(z)[n, t[n]]"""
    return nll_loss_forward(log_softmax_forward(z), t, reduction)


def log_softmax_nll_backward(dE, z, t, reduction="mean"):
    """dE/dz[n, k] = dE / R (softmax(z)[n, k] - [k = t[n]]): the chain of nll_loss's and log_softmax's backwards
    collapses, since sum_j dE/dy[n, j] = -dE / R (one nonzero per row). Returns (dz,)."""
    N, K = z.shape
    R = _divisor(reduction, N)
    dz = np.zeros((N, K))
    for n in range(N):
        row = log_softmax_row(z[n])
        for k in range(K):
            dz[n, k] = float(dE) * (math.exp(row[k]) - (1.0 if k == int(t[n]) else 0.0)) / R
    return (dz,)


# ---- binary cross-entropy on logits ----------------------------------------------------------------------------

def bce_with_logits_forward(z, t, reduction="mean"):
    """E = 1/R sum_{n,k} max(z, 0) - z t + ln(1 + e^-|z|)"""
    total = 0.0
    for index in np.ndindex(z.shape):
        v = z[index]
        total += max(v, 0.0) - v * t[index] + math.log1p(math.exp(-abs(v)))
    return np.asarray(total / _divisor(reduction, z.size), dtype=np.float64).reshape(())


def bce_with_logits_backward(dE, z, t, reduction="mean"):
    """dE/dz[n, k] = dE / R (sigmoid(z[n, k]) - t[n, k]). Returns (dz,)."""
    R = _divisor(reduction, z.size)
    s = sigmoid(z)
    dz = np.zeros(z.shape)
    for index in np.ndindex(z.shape):
        dz[index] = float(dE) * (s[index] - t[index]) / R
    return (dz,)
