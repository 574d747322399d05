"""Activations, forward and backward applied to an upstream gradient dE/dy (seed 004, "backprop through the
activation functions"; 000 for ReLU).

Element-wise ones work on any shape; softmax works on (N, K), normalising over axis 1 (the classes) per sample.

Erratum (000): the Japanese notes write the ReLU backward as "dE/dx if y_ij >= 0, else 0". Since
y = max(0, x) >= 0 always, that mask passes every gradient; the correct mask is x > 0 (004: "1 if x > 0, 0
otherwise"). At x = 0 ReLU is not differentiable; 0 is the subgradient chosen here (and by torch).
"""
from __future__ import annotations

import numpy as np


def sigmoid(u: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-u), evaluated without overflow: e^u / (1 + e^u) for u < 0."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    for index in np.ndindex(u.shape):
        v = u[index]
        out[index] = 1.0 / (1.0 + np.exp(-v)) if v >= 0 else np.exp(v) / (1.0 + np.exp(v))
    return out


# ---- ReLU -------------------------------------------------------------------------------------------------------

def relu_forward(x):
    """y_i = max(0, x_i)"""
    y = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        y[index] = x[index] if x[index] > 0 else 0.0
    return y


def relu_backward(dy, x):
    """dE/dx_i = dE/dy_i * f'(x_i),  f'(x) = 1 if x > 0 else 0     (004; 000's "y >= 0" is an erratum)"""
    dx = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        dx[index] = dy[index] if x[index] > 0 else 0.0
    return (dx,)


# ---- sigmoid ----------------------------------------------------------------------------------------------------

def sigmoid_forward(x):
    """y_i = 1 / (1 + e^-x_i)"""
    return sigmoid(x)


def sigmoid_backward(dy, x):
    """dE/dx_i = dE/dy_i * f(x_i) (1 - f(x_i))      (004's derivation, ending in f_sigmoid (1 - f_sigmoid))"""
    f = sigmoid(x)
    dx = np.zeros_like(f)
    for index in np.ndindex(f.shape):
        dx[index] = dy[index] * f[index] * (1.0 - f[index])
    return (dx,)


# ---- tanh -------------------------------------------------------------------------------------------------------

def tanh_forward(x):
    """y_i = tanh(x_i)"""
    return np.tanh(np.asarray(x, dtype=np.float64))


def tanh_backward(dy, x):
    """dE/dx_i = dE/dy_i * (1 - tanh(x_i)^2)"""
    y = np.tanh(np.asarray(x, dtype=np.float64))
    dx = np.zeros_like(y)
    for index in np.ndindex(y.shape):
        dx[index] = dy[index] * (1.0 - y[index] * y[index])
    return (dx,)


# ---- softmax ----------------------------------------------------------------------------------------------------

def softmax_forward(x):
    """y[n, i] = e^{x[n, i]} / sum_k e^{x[n, k]}, computed as e^{x[n, i] - m} / sum_k e^{x[n, k] - m} with
    m = max_k x[n, k]: the same value, and no overflow for logits in the hundreds."""
    N, K = x.shape
    y = np.zeros((N, K))
    for n in range(N):
        m = max(x[n, k] for k in range(K))
        total = 0.0
        for k in range(K):
            y[n, k] = np.exp(x[n, k] - m)
            total += y[n, k]
        for k in range(K):
            y[n, k] /= total
    return y


def softmax_backward(dy, x):
    """dE/dx[n, i] = sum_k dE/dy[n, k] * dy_k/dx_i, with the full Jacobian of 004:

        dy_i/dx_i = y_i (1 - y_i)            (i = j)
        dy_k/dx_i = -y_k y_i                 (k != i)

    004 stresses the sum over k: every x_i influences every y_k, so the diagonal alone is wrong. Both cases are
    y_i (delta_ki - y_k), so the sum is evaluated as y_i (dE/dy_i - sum_k y_k dE/dy_k): the i = j term contributes
    y_i dE/dy_i, and every k (i included) contributes -y_i y_k dE/dy_k. This is the order torch evaluates it in; the
    loop-per-(k, i) order rounds differently, and near saturation (a y_i close to 1) both lose relative accuracy
    in the small results, beyond what the rounding tolerance arbitrates.
    """
    y = softmax_forward(x)
    N, K = y.shape
    dx = np.zeros((N, K))
    for n in range(N):
        expected_dy = 0.0                       # sum_k y_k dE/dy_k: the off-diagonal terms' common factor
        for k in range(K):
            expected_dy += y[n, k] * dy[n, k]
        for i in range(K):
            dx[n, i] = y[n, i] * (dy[n, i] - expected_dy)
    return (dx,)
