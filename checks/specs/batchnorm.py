"""Batch normalisation in training mode (BatchNorm2d with batch statistics): y = gamma (x - mu) / sigma + beta."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import batchnorm as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick

#: eps of torch's default, and a large one (it then dominates a small variance: sigma != sqrt(var))
EPSILONS = (1e-5, 0.1)
#: common offset of the inputs: 0, and 10 (x - mu cancels). 100 reaches 0.8 of the finite-difference tolerance: in
#: float64 its rounding term uses |y| = O(1), not the size of x - mu (~100), which the forward rounds at
OFFSETS = (0.0, 10.0)


@st.composite
def batchnorm_configs(draw, **fixed):
    """N, C, H, W with M = N H W >= 2 values per channel (torch refuses M = 1: var = 0, y = beta), eps, offset."""
    c = {"N": draw(pick(fixed, "N", st.integers(1, 3))), "C": draw(pick(fixed, "C", st.integers(1, 2))),
         "H": draw(pick(fixed, "H", st.integers(1, 2)))}
    c["W"] = draw(pick(fixed, "W", st.integers(2 if c["N"] * c["H"] == 1 else 1, 3)))
    c["eps"] = draw(pick(fixed, "eps", st.sampled_from(EPSILONS)))
    c["offset"] = draw(pick(fixed, "offset", st.sampled_from(OFFSETS)))
    return c


def shape(c):
    return (c["N"], c["C"], c["H"], c["W"])


def make_arrays(c, rng):
    """Each channel: offset + its own mean + values with a standard deviation in [0.5, 2] (a channel of nearly
    equal values would make sigma tiny and the op ill-conditioned, so the spread is set, not left to chance)."""
    z = normal(rng, shape(c))
    z -= z.mean(axis=(0, 2, 3), keepdims=True)
    z /= np.maximum(z.std(axis=(0, 2, 3), keepdims=True), 1e-300)
    spread = rng.uniform(0.5, 2.0, size=(1, c["C"], 1, 1))
    x = c["offset"] + normal(rng, (1, c["C"], 1, 1)) + spread * z
    return {"x": x, "gamma": normal(rng, (c["C"],)), "beta": normal(rng, (c["C"],))}


BATCHNORM2D = OpSpec(
    name="batchnorm2d", arg_names=("x", "gamma", "beta"), configs=batchnorm_configs, make_arrays=make_arrays,
    output_shape=shape, hyper=lambda c: {"eps": c["eps"]},
    torch_forward=lambda x, gamma, beta, eps: F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps),
    reference=Implementation.from_module(ref, "batchnorm2d", "reference.batchnorm.batchnorm2d"),
    reduction_length=lambda c: 2 * c["N"] * c["H"] * c["W"],  # the mean, then the sums of the backward over it
    linear_args=("gamma", "beta"),
    description="BatchNorm2d in training mode: per-channel batch mean and biased variance, gamma, beta, eps")

SPECS = [BATCHNORM2D]

FORMULAS = [
    Formula("batch norm forward (training, batch statistics)",
            "y = gamma (x - mu) / sqrt(var + eps) + beta; mu, var (1/M) over n, i, j per channel",
            "torch convention", "batchnorm2d", ("forward",), {}),
    Formula("batch norm dE/dgamma, dE/dbeta", "dgamma = sum delta xhat; dbeta = sum delta (over n, i, j)",
            "torch convention", "batchnorm2d", ("gamma", "beta"), {}),
    Formula("batch norm dE/dx through the batch statistics",
            "dx = gamma / (M sigma) (M delta - sum delta - xhat sum delta xhat)", "torch convention",
            "batchnorm2d", ("x",), {}),
    Formula("batch norm with inputs offset by 10", "the same; x - mu computed after the mean (two passes)",
            "torch convention", "batchnorm2d", ("forward", "x", "gamma", "beta"), {"offset": 10.0}),
    Formula("batch norm, batch of one (statistics over H, W only)", "M = H W", "torch convention", "batchnorm2d",
            ("forward", "x", "gamma", "beta"), {"N": 1}),
]
