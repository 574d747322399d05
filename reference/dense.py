"""Fully connected (dense) layer, forward and backward (seed 004, "backprop through the fully connected net").

Layouts: x (N, m) a batch of N row vectors, W (m, n), b (n,), y (N, n):

    y[p, i] = sum_k x[p, k] W[k, i] + b[i]            (004: x^l_i = sum_k' w^l_k'i y^(l-1)_k' + b^l_i)

Backward with delta = dE/dy (N, n):

    dE/dW[k, i] = sum_p x[p, k] delta[p, i]           (dE/dW = x^T delta, (m x n))
    dE/db[i]    = sum_p delta[p, i]                   (004 writes one sample; a batch sums over p)
    dE/dx[p, k] = sum_i delta[p, i] W[k, i]           (dE/dx = delta W^T, (N x m))
"""
from __future__ import annotations

import numpy as np


def dense_forward(x, W, b):
    N, m = x.shape
    n = W.shape[1]
    y = np.zeros((N, n))
    for p in range(N):
        for i in range(n):
            total = b[i]
            for k in range(m):
                total += x[p, k] * W[k, i]
            y[p, i] = total
    return y


def dense_backward(dy, x, W, b):
    """Returns (dE/dx, dE/dW, dE/db); equations in the module docstring."""
    N, m = x.shape
    n = W.shape[1]
    dx = np.zeros((N, m))
    dW = np.zeros((m, n))
    db = np.zeros(n)
    for p in range(N):
        for i in range(n):
            db[i] += dy[p, i]
            for k in range(m):
                dW[k, i] += x[p, k] * dy[p, i]
                dx[p, k] += dy[p, i] * W[k, i]
    return dx, dW, db
