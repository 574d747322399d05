"""ReLU's variants on (N, K) batches: leaky ReLU (slope a hyperparameter), ELU (alpha) and exact GELU."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import relu_variants as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import away_from_zero, normal, pick
from .activations import shape

#: leaky ReLU slopes: torch's default, a large one, a negative one (torch accepts any float), and 1 (the identity)
SLOPES = (0.01, 0.3, -0.5, 1.0)
#: ELU scales: torch's default 1 (differentiable at 0, f'' jumps) and two with a kink at 0
ALPHAS = (1.0, 0.5, 2.0)


def configs_with(name=None, values=()):
    """N samples of K values, and one hyperparameter ``name`` drawn from ``values`` (none for GELU)."""
    def configs(**fixed):
        fields = {"N": pick(fixed, "N", st.integers(1, 3)), "K": pick(fixed, "K", st.integers(1, 4))}
        if name:
            fields[name] = pick(fixed, name, st.sampled_from(values))
        return st.fixed_dictionaries(fields)
    return configs


def min_abs_x(c, arrays):
    return float(np.min(np.abs(arrays["x"])))


def _spec(name, configs, hyper, torch_forward, make_arrays, description, **extra):
    return OpSpec(name=name, arg_names=("x",), configs=configs, make_arrays=make_arrays, output_shape=shape,
                  hyper=hyper, torch_forward=torch_forward,
                  reference=Implementation.from_module(ref, name, f"reference.relu_variants.{name}"),
                  reduction_length=lambda c: 1, description=description, **extra)


LEAKY_RELU = _spec(
    "leaky_relu", configs_with("slope", SLOPES), lambda c: {"slope": c["slope"]},
    lambda x, slope: F.leaky_relu(x, slope), lambda c, rng: {"x": away_from_zero(rng, shape(c))},
    "leaky ReLU, x if x > 0 else slope x; inputs keep MARGIN from 0", piecewise_linear_args=("x",),
    kink_distance=min_abs_x, nondifferentiable="leaky ReLU at x = 0 (slope != 1)")
ELU = _spec(
    "elu", configs_with("alpha", ALPHAS), lambda c: {"alpha": c["alpha"]},
    lambda x, alpha: F.elu(x, alpha), lambda c, rng: {"x": away_from_zero(rng, shape(c), scale=2.0)},
    "ELU, x if x > 0 else alpha (e^x - 1); inputs keep MARGIN from 0", kink_distance=min_abs_x,
    nondifferentiable="ELU at x = 0 (alpha != 1; with alpha = 1 its second derivative jumps)")
GELU = _spec(
    "gelu", configs_with(), lambda c: {}, lambda x: F.gelu(x),
    lambda c, rng: {"x": normal(rng, shape(c), 3.0)}, "GELU, exact form x Phi(x) (torch's approximate='none')")

SPECS = [LEAKY_RELU, ELU, GELU]

FORMULAS = [
    Formula("leaky ReLU forward and backward", "y = x if x > 0 else a x; dE/dx = dE/dy (1 if x > 0 else a)",
            "torch convention", "leaky_relu", ("forward", "x"), {}),
    Formula("leaky ReLU with a negative slope", "the same with a = -0.5", "torch convention", "leaky_relu",
            ("forward", "x"), {"slope": -0.5}),
    Formula("ELU forward and backward",
            "y = x if x > 0 else alpha (e^x - 1); dE/dx = dE/dy (1 if x > 0 else alpha e^x = y + alpha)",
            "torch convention", "elu", ("forward", "x"), {}),
    Formula("GELU (exact, erf)", "y = x Phi(x); dE/dx = dE/dy (Phi(x) + x phi(x))", "torch convention", "gelu",
            ("forward", "x"), {}),
]
