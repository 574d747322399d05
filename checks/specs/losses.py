"""Losses E(y, t) on (N, K) batches; the targets t are data (not differentiated): grad_args = ("y",) or ("z",)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import losses as ref
from ..spec import Formula, Implementation, OpSpec
from ..special import exact_zeros, unnormalised_rows
from ..strategies import normal, pick, probability_rows

#: magnitudes of regression outputs and targets: O(1), and hundreds
SCALES = (1.0, 300.0)
#: common offsets of a sample's logits: 0 and hundreds beyond e^z's range (see cnn_gradcheck.specs.activations.OFFSETS
#: for why the spread around the offset stays O(1))
OFFSETS = (0.0, -800.0, 800.0)
TARGETS = ("one-hot", "soft")


def loss_configs(scales=(1.0,), offsets=(0.0,), targets=("one-hot",)):
    """N samples (batch 1 and more), K outputs (1 and more), an input ``scale`` (regression) or logit ``offset``
    (classification), and the kind of targets."""
    def configs(**fixed):
        return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)),
                                      "K": pick(fixed, "K", st.integers(1, 4)),
                                      "scale": pick(fixed, "scale", st.sampled_from(scales)),
                                      "offset": pick(fixed, "offset", st.sampled_from(offsets)),
                                      "targets": pick(fixed, "targets", st.sampled_from(targets))})
    return configs


def make_targets(c, rng):
    """One-hot rows, or soft rows (probabilities, each row summing to 1)."""
    if c["targets"] == "soft":
        return probability_rows(rng, (c["N"], c["K"]))
    return np.eye(c["K"])[rng.integers(0, c["K"], size=c["N"])]


def _spec(name, args, torch_forward, make_arrays, description, scales=(1.0,), offsets=(0.0,), targets=("one-hot",),
          magnitudes=None, special_values=None):
    return OpSpec(name=name, arg_names=args, configs=loss_configs(scales, offsets, targets), make_arrays=make_arrays,
                  output_shape=lambda c: (), hyper=lambda c: {}, torch_forward=torch_forward,
                  reference=Implementation.from_module(ref, name, f"reference.losses.{name}"),
                  reduction_length=lambda c: c["N"] * c["K"] + c["K"], grad_args=args[:1],
                  description=description, magnitudes=magnitudes, special_values=special_values or {})


def _regression(c, rng):
    return {"y": normal(rng, (c["N"], c["K"]), c["scale"]), "t": normal(rng, (c["N"], c["K"]), c["scale"])}


#: special values of the regression losses: exact zeros in y, and y equal to t (e = 0: a zero gradient)
REGRESSION_SPECIALS = {"zeros": exact_zeros("y"), "y equals t": lambda c, arrays, rng: {**arrays, "y": arrays["t"]}}
#: targets: cross-entropy and softmax cross-entropy are defined for any t >= 0 (-sum t ln y, -sum t log softmax z);
#: "unnormalised targets" (rows not summing to 1, a row of zeros) catch a backward that assumes sum t = 1

MSE = _spec("mse", ("y", "t"), lambda y, t: 0.5 * ((t - y) ** 2).sum(), _regression,
            "1/2 sum (t - y)^2 over batch and outputs", scales=SCALES, special_values=REGRESSION_SPECIALS)
CROSS_ENTROPY = _spec(
    "cross_entropy", ("y", "t"), lambda y, t: -(t * torch.log(y)).sum(),
    lambda c, rng: {"y": probability_rows(rng, (c["N"], c["K"])), "t": make_targets(c, rng)},
    "-sum t ln y on probabilities y (rows of y >= 1/(2K): ln stays smooth within the stencil)", targets=TARGETS,
    special_values={"unnormalised targets": unnormalised_rows("t")})
SOFTMAX_CROSS_ENTROPY = _spec(
    "softmax_cross_entropy", ("z", "t"), lambda z, t: F.cross_entropy(z, t, reduction="sum"),
    lambda c, rng: {"z": c["offset"] + normal(rng, (c["N"], c["K"])), "t": make_targets(c, rng)},
    "softmax fused with cross-entropy on logits z (log-softmax), one-hot or soft targets", offsets=OFFSETS,
    targets=TARGETS,
    special_values={"unnormalised targets": unnormalised_rows("t"), "zeros": exact_zeros("z"),
                    "repeated": lambda c, arrays, rng: {**arrays, "z": np.full_like(arrays["z"], c["offset"])}})
TOOLBOX_MSE = _spec("toolbox_mse", ("y", "t"), lambda y, t: 0.5 * ((y - t) ** 2).sum() / y.shape[0], _regression,
                    "DeepLearnToolbox cnnbp loss 1/2 sum e^2 / batch, e = y - t", scales=SCALES,
                    special_values=REGRESSION_SPECIALS)

SPECS = [MSE, CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY, TOOLBOX_MSE]

FORMULAS = [
    Formula("squared error 1/2 sum (t - y)^2", "E = 1/2 sum (t - y)^2; dE/dy = y - t", "004", "mse",
            ("forward", "y"), {}),
    Formula("squared error, values in the hundreds", "same at |y|, |t| ~ 300", "004", "mse", ("forward", "y"),
            {"scale": 300.0}),
    Formula("cross-entropy -sum t ln y", "E = -sum t ln y; dE/dy = -t / y", "004", "cross_entropy",
            ("forward", "y"), {}),
    Formula("softmax + cross-entropy on logits", "E = -sum t ln softmax(z); dE/dz = softmax(z) - t", "004",
            "softmax_cross_entropy", ("forward", "z"), {"targets": "one-hot"}),
    Formula("softmax + cross-entropy, soft targets", "dE/dz = (sum_j t_j) softmax(z) - t", "004",
            "softmax_cross_entropy", ("forward", "z"), {"targets": "soft"}),
    Formula("softmax + cross-entropy, logits in the hundreds", "ln softmax(z)_k = (z_k - m) - ln sum_j e^(z_j - m)",
            "004", "softmax_cross_entropy", ("forward", "z"), {"offset": -800.0}),
    Formula("DeepLearnToolbox loss 1/2 sum e^2 / batch", "L = 1/2 sum e^2 / N, e = y - t; dL/dy = e / N", "003",
            "toolbox_mse", ("forward", "y"), {}),
]
