"""Dropout in training mode with its mask given as an input (inverted dropout, torch's convention), forward and
backward.

x and the mask m have the same shape; m holds 0 (dropped) or 1 (kept), each kept with probability 1 - p; the kept
values are scaled by 1 / (1 - p) so that E[y] = x:

    y_i     = x_i m_i / (1 - p)
    dE/dx_i = dE/dy_i m_i / (1 - p)

The mask is data, not a parameter: it has no gradient (grad_args = ("x",)). p = 1 (everything dropped) has no
scale and is excluded. Evaluation mode is the identity and not modelled.
"""
from __future__ import annotations

import numpy as np


def dropout_forward(x, mask, p=0.5):
    """y_i = x_i m_i / (1 - p)"""
    y = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        y[index] = x[index] * mask[index] / (1.0 - p)
    return y


def dropout_backward(dy, x, mask, p=0.5):
    """dE/dx_i = dE/dy_i m_i / (1 - p). Returns (dx,)."""
    dx = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        dx[index] = dy[index] * mask[index] / (1.0 - p)
    return (dx,)
