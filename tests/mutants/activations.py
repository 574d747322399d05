"""Wrong activation backwards, each with the smallest configuration showing it."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import activations as ref

from . import Mutant

RELU, SIGMOID, TANH, SOFTMAX = (get_spec(name).reference for name in ("relu", "sigmoid", "tanh", "softmax"))


def _relu_mask_from_y_nonnegative(dy, x):
    """000 as printed: pass dE/dy where y >= 0 -- always true, so every gradient passes."""
    y = ref.relu_forward(x)
    return (np.where(y >= 0, dy, 0.0),)


def _sigmoid_derivative_of_x(dy, x):
    """f'(x) written as x (1 - x) instead of f(x) (1 - f(x))."""
    return (dy * x * (1 - x),)


def _tanh_derivative_without_square(dy, x):
    return (dy * (1 - np.tanh(x)),)


def _softmax_diagonal_only(dy, x):
    """Only the i = j terms of the Jacobian: dE/dx_i = dE/dy_i y_i (1 - y_i)."""
    y = ref.softmax_forward(x)
    return (dy * y * (1 - y),)


MUTANTS = [
    Mutant("relu", "mask from y >= 0 (000 as printed: passes everything)",
           type(RELU)("relu mask y >= 0", RELU.forward, _relu_mask_from_y_nonnegative), ("dx",),
           minimal={"N": 1}),  # K = 1 exposes it only for a seed that draws x < 0; K = 2 with seed 0 does
    Mutant("sigmoid", "f(1 - f) evaluated at x instead of f(x)",
           type(SIGMOID)("sigmoid x (1 - x)", SIGMOID.forward, _sigmoid_derivative_of_x), ("dx",),
           minimal={"N": 1, "K": 1}),
    Mutant("tanh", "1 - tanh instead of 1 - tanh^2",
           type(TANH)("tanh 1 - y", TANH.forward, _tanh_derivative_without_square), ("dx",),
           minimal={"N": 1, "K": 1}),
    Mutant("softmax", "Jacobian diagonal only (the i != j terms forgotten)",
           type(SOFTMAX)("softmax diagonal Jacobian", SOFTMAX.forward, _softmax_diagonal_only), ("dx",),
           minimal={"N": 1, "K": 2, "offset": 0.0}),
]
