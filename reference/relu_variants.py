"""ReLU's variants, element-wise on any shape, forward and backward applied to an upstream gradient dE/dy:
leaky ReLU (slope a), ELU (scale alpha) and GELU in its exact (erf) form, as torch defines them.

    leaky ReLU:  y_i = x_i if x_i > 0 else a x_i;             f'(x) = 1 if x > 0 else a
    ELU:         y_i = x_i if x_i > 0 else alpha (e^x_i - 1);  f'(x) = 1 if x > 0 else alpha e^x  (= y + alpha)
    GELU:        y_i = x_i Phi(x_i), Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2
                 f'(x) = Phi(x) + x phi(x),  phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
    dE/dx_i = dE/dy_i f'(x_i)

At x = 0 leaky ReLU (a != 1) and ELU (alpha != 1) have a kink; the subgradient chosen there is the left one (a,
alpha), as torch's "x > 0" test gives. Phi is evaluated as erfc(-x / sqrt 2) / 2, which keeps its relative accuracy
for x << 0 where 1 + erf cancels; e^x - 1 as expm1.
"""
from __future__ import annotations

import math

import numpy as np


def _elementwise(f, x):
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        out[index] = f(float(x[index]))
    return out


# ---- leaky ReLU --------------------------------------------------------------------------------------------------

def leaky_relu_forward(x, slope=0.01):
    """y_i = x_i if x_i > 0 else slope x_i"""
    return _elementwise(lambda v: v if v > 0 else slope * v, x)


def leaky_relu_backward(dy, x, slope=0.01):
    """dE/dx_i = dE/dy_i (1 if x_i > 0 else slope)"""
    return (np.asarray(dy, dtype=np.float64) * _elementwise(lambda v: 1.0 if v > 0 else slope, x),)


# ---- ELU ---------------------------------------------------------------------------------------------------------

def elu_forward(x, alpha=1.0):
    """y_i = x_i if x_i > 0 else alpha (e^x_i - 1)"""
    return _elementwise(lambda v: v if v > 0 else alpha * math.expm1(v), x)


def elu_backward(dy, x, alpha=1.0):
    """dE/dx_i = dE/dy_i (1 if x_i > 0 else alpha e^x_i)"""
    return (np.asarray(dy, dtype=np.float64) * _elementwise(lambda v: 1.0 if v > 0 else alpha * math.exp(v), x),)


# ---- GELU (exact) ------------------------------------------------------------------------------------------------

def Phi(v: float) -> float:
    """Standard normal CDF, (1 + erf(v / sqrt 2)) / 2, as erfc(-v / sqrt 2) / 2."""
    return 0.5 * math.erfc(-v / math.sqrt(2.0))


def phi(v: float) -> float:
    """Standard normal density e^(-v^2 / 2) / sqrt(2 pi)."""
    return math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)


def gelu_forward(x):
    """y_i = x_i Phi(x_i)"""
    return _elementwise(lambda v: v * Phi(v), x)


def gelu_backward(dy, x):
    """dE/dx_i = dE/dy_i (Phi(x_i) + x_i phi(x_i))"""
    return (np.asarray(dy, dtype=np.float64) * _elementwise(lambda v: Phi(v) + v * phi(v), x),)
