"""Activations on (N, K) batches: ReLU, sigmoid, tanh (element-wise) and softmax over the K classes of a sample."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import activations as ref
from ..spec import Formula, Implementation, OpSpec
from ..special import TINY_SCALE, VERY_HUGE_SCALE, exact_zeros, repeated, saturated, scaled
from ..strategies import away_from_zero, normal, pick

#: common offsets of a sample's logits: 0, and hundreds beyond e^x's range (e^800 overflows, e^-800 underflows, so
#: only a softmax that subtracts the maximum stays finite). The spread around the offset stays O(1): that is what a
#: large offset tests; a spread of hundreds only saturates y to one-hot, whose tiny gradients say nothing more.
OFFSETS = (0.0, -800.0, 800.0)


def batch_configs(offsets=(0.0,)):
    """N samples (batch 1 and more) of K values (width 1 and more); ``offset`` is added to every generated input."""
    def configs(**fixed):
        return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)),
                                      "K": pick(fixed, "K", st.integers(1, 4)),
                                      "offset": pick(fixed, "offset", st.sampled_from(offsets))})
    return configs


def shape(c):
    return (c["N"], c["K"])


def _spec(name, torch_forward, make_arrays, description, offsets=(0.0,), **extra):
    return OpSpec(name=name, arg_names=("x",), configs=batch_configs(offsets), make_arrays=make_arrays,
                  output_shape=shape, hyper=lambda c: {}, torch_forward=torch_forward,
                  reference=Implementation.from_module(ref, name, f"reference.activations.{name}"),
                  reduction_length=lambda c: c["K"], description=description, **extra)


def relu_subgradient(c, arrays, dy, grads):
    """{"x": dy where x > 0, 0 where x < 0, and at the exact zeros s dy with one s in {0, 1} for all of them}: the
    choice of s nearest to the returned gradient (ReLU'(0) may be 0 or 1, but one value, consistently)."""
    x, g = np.asarray(arrays["x"]), np.asarray(grads["x"], dtype=np.float64)
    smooth = np.where(x > 0, dy, 0.0)
    candidates = (smooth, np.where(x == 0, dy, smooth))
    return {"x": min(candidates, key=lambda e: float(np.max(np.abs(g - e), initial=0.0)))}


def _relu_repeated(c, arrays, rng):
    """One value, MARGIN or more from 0, everywhere."""
    return {**arrays, "x": np.full(shape(c), away_from_zero(rng, ()))}


def _large_spread(c, arrays, rng):
    """Logits spread 30 times wider around the sample's offset: softmax saturated to nearly one-hot."""
    return {**arrays, "x": c["offset"] + 30.0 * (arrays["x"] - c["offset"])}


#: special values of the smooth element-wise activations: exact zeros (f' is defined there), one value everywhere,
#: saturated inputs (f' ~ e^-30) and tiny ones
def sigmoid_terms(c, arrays, dy):
    """Sizes of the terms of dE/dx = dy f (1 - f): f's rounding enters 1 - f unreduced, so |dy| f ((1 - f) + f)
    = |dy| f (policy 1a). Declared because policy 1b's float32 probe cannot see it where the input saturates:
    there f rounds to exactly 1 in float32 and the probe's 1 - f is 0, while float64's carries eps / (1 - f)."""
    return {"dx": np.abs(dy) / (1 + np.exp(-arrays["x"]))}


def tanh_terms(c, arrays, dy):
    """Sizes of the terms of dE/dx = dy (1 - y^2): |dy| (1 + y^2) (policy 1a; 1 - y^2 cancels for |x| > 1, and
    saturated inputs round y to exactly +-1 in float32, where policy 1b's probe sees nothing)."""
    return {"dx": np.abs(dy) * (1 + np.tanh(arrays["x"]) ** 2)}


SMOOTH_SPECIALS = {"zeros": exact_zeros("x"), "repeated": repeated("x"), "saturated": saturated("x"),
                   "tiny": scaled("x", TINY_SCALE)}

RELU = _spec("relu", F.relu, lambda c, rng: {"x": away_from_zero(rng, shape(c))},
             "ReLU, max(0, x); inputs keep MARGIN from 0", piecewise_linear_args=("x",),
             kink_distance=lambda c, arrays: float(np.min(np.abs(arrays["x"]))),
             nondifferentiable="ReLU at x = 0",
             special_values={"zeros": exact_zeros("x"), "repeated": _relu_repeated, "huge": scaled("x", VERY_HUGE_SCALE)},
             kink_values=("zeros",), subgradient=relu_subgradient)
SIGMOID = _spec("sigmoid", torch.sigmoid, lambda c, rng: {"x": normal(rng, shape(c), 2.0)},
                "logistic sigmoid 1 / (1 + e^-x)", magnitudes=sigmoid_terms, special_values=SMOOTH_SPECIALS)
TANH = _spec("tanh", torch.tanh, lambda c, rng: {"x": normal(rng, shape(c), 2.0)},
             "hyperbolic tangent", magnitudes=tanh_terms, special_values=SMOOTH_SPECIALS)
SOFTMAX = _spec("softmax", lambda x: F.softmax(x, dim=1),
                lambda c, rng: {"x": c["offset"] + normal(rng, shape(c))},
                "softmax over axis 1 of (N, K), logits O(1) and in the hundreds", offsets=OFFSETS,
                special_values={"zeros": exact_zeros("x"), "repeated": repeated("x"), "large spread": _large_spread},
                corners=(("one class", {"K": 1}),))

SPECS = [RELU, SIGMOID, TANH, SOFTMAX]

FORMULAS = [
    Formula("ReLU forward and backward", "y = max(0, x); dE/dx = dE/dy if x > 0 else 0 (000's 'y >= 0' is an "
            "erratum)", "004, 000", "relu", ("forward", "x"), {}),
    Formula("sigmoid derivative f (1 - f)", "dE/dx = dE/dy f(x) (1 - f(x))", "004", "sigmoid", ("forward", "x"),
            {}),
    Formula("tanh derivative 1 - tanh^2", "dE/dx = dE/dy (1 - tanh(x)^2)", "002 (named)", "tanh",
            ("forward", "x"), {}),
    Formula("softmax forward", "y_i = e^x_i / sum_k e^x_k", "004", "softmax", ("forward",), {}),
    Formula("softmax full Jacobian applied to dE/dy",
            "dE/dx_i = sum_k dE/dy_k dy_k/dx_i; dy_i/dx_i = y_i (1 - y_i), dy_k/dx_i = -y_k y_i", "004", "softmax",
            ("x",), {"K": st.integers(2, 4)}),
    Formula("softmax with logits in the hundreds", "same, computed with e^(x - max x)", "004", "softmax",
            ("forward", "x"), {"offset": -800.0}),
]
