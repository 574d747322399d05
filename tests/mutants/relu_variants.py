"""Wrong backwards of ReLU's variants: the slope forgotten, ELU's derivative written as y, GELU's product rule
half done or its tanh approximation used."""
import math

import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import relu_variants as ref

from . import Mutant

LEAKY, ELU, GELU = (get_spec(name).reference for name in ("leaky_relu", "elu", "gelu"))


def _leaky_as_relu(dy, x, slope=0.01):
    """ReLU's backward: dE/dx = 0 for x < 0, the slope forgotten."""
    return (np.where(x > 0, dy, 0.0),)


def _elu_derivative_as_y(dy, x, alpha=1.0):
    """f'(x) = y for x < 0: the '+ alpha' of alpha e^x = y + alpha forgotten."""
    y = ref.elu_forward(x, alpha)
    return (dy * np.where(x > 0, 1.0, y),)


def _gelu_phi_only(dy, x):
    """dE/dx = dE/dy Phi(x): the x phi(x) term of the product rule forgotten."""
    return (dy * np.vectorize(ref.Phi)(x),)


def _gelu_tanh_backward(dy, x):
    """The derivative of the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (torch's
    approximate='tanh') against the exact forward: off by up to ~1e-3."""
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return (dy * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * c * (1 + 3 * 0.044715 * x ** 2)),)


MUTANTS = [
    Mutant("leaky_relu", "slope forgotten for x < 0 (ReLU's backward)",
           type(LEAKY)("leaky relu backward as relu", LEAKY.forward, _leaky_as_relu), ("dx",),
           minimal={"N": 1}),
    Mutant("elu", "ELU derivative written as y for x < 0 (alpha forgotten)",
           type(ELU)("elu f' = y", ELU.forward, _elu_derivative_as_y), ("dx",), minimal={"N": 1}),
    Mutant("gelu", "GELU derivative Phi(x) only (x phi(x) forgotten)",
           type(GELU)("gelu f' = Phi", GELU.forward, _gelu_phi_only), ("dx",), minimal={"N": 1, "K": 1}),
    Mutant("gelu", "GELU backward of the tanh approximation",
           type(GELU)("gelu tanh backward", GELU.forward, _gelu_tanh_backward), ("dx",), minimal={"N": 1, "K": 1}),
]
