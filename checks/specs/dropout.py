"""Dropout (training mode, inverted scaling 1 / (1 - p)) with the mask as a non-differentiable input."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..reference import dropout as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick

#: drop probabilities: none, torch's default 0.5, light and heavy (p = 1 has no scale: excluded)
PROBABILITIES = (0.0, 0.1, 0.5, 0.8)


def dropout_configs(**fixed):
    """(N, K) values and the drop probability p."""
    return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)), "K": pick(fixed, "K", st.integers(1, 4)),
                                  "p": pick(fixed, "p", st.sampled_from(PROBABILITIES))})


def shape(c):
    return (c["N"], c["K"])


def make_arrays(c, rng):
    """x normal; the mask keeps each value with probability 1 - p (0.0 or 1.0, as torch's dropout draws it)."""
    return {"x": normal(rng, shape(c)), "mask": (rng.random(shape(c)) >= c["p"]).astype(np.float64)}


DROPOUT = OpSpec(
    name="dropout", arg_names=("x", "mask"), configs=dropout_configs, make_arrays=make_arrays, output_shape=shape,
    hyper=lambda c: {"p": c["p"]},
    # torch's F.dropout draws its own mask; with the mask given, its training-mode forward is this expression
    torch_forward=lambda x, mask, p: x * mask / (1 - p),
    reference=Implementation.from_module(ref, "dropout", "reference.dropout.dropout"),
    reduction_length=lambda c: 1, grad_args=("x",), linear_args=("x",),
    description="dropout in training mode, y = x m / (1 - p), mask m (0/1) given as data")
SPECS = [DROPOUT]

FORMULAS = [
    Formula("dropout forward and backward (inverted scaling)", "y = x m / (1 - p); dE/dx = dE/dy m / (1 - p)",
            "torch convention", "dropout", ("forward", "x"), {"p": st.sampled_from((0.1, 0.5, 0.8))}),
    Formula("dropout with p = 0 (the identity)", "m = 1: y = x, dE/dx = dE/dy", "torch convention", "dropout",
            ("forward", "x"), {"p": 0.0}),
]
