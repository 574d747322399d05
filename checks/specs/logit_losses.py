"""Log-softmax (N, K) -> (N, K); the NLL loss on log-probabilities with class-index targets; the two chained
(torch's cross_entropy with index targets); binary cross-entropy on logits with soft targets. Targets are data
(not differentiated)."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import logit_losses as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick
from .activations import OFFSETS, batch_configs, shape

REDUCTIONS = ("mean", "sum")
#: logit scales for binary cross-entropy: O(1), and 50 (sigmoid rounds to 1 beyond 37: ln s(z) = -inf)
SCALES = (1.0, 50.0)


@st.composite
def bce_configs(draw, **fixed):
    """N, K, targets "soft" (uniform in [0, 1]) or "hard" (0 or 1), logit scale, reduction. Hard targets only at
    scale 1: at |z| ~ 50 on the target's side the gradient s - t ~ e^-|z| lies far below the rounding of s - t
    (eps), which no implementation computing s - t resolves (torch's included), while finite differences of an
    accurate forward do: a false alarm on the arithmetic, not on the formula."""
    targets = draw(pick(fixed, "targets", st.sampled_from(("soft", "hard"))))
    scale = draw(pick(fixed, "scale", st.sampled_from(SCALES if targets == "soft" else SCALES[:1])))
    return {"N": draw(pick(fixed, "N", st.integers(1, 3))), "K": draw(pick(fixed, "K", st.integers(1, 4))),
            "targets": targets, "scale": scale, "reduction": draw(pick(fixed, "reduction", st.sampled_from(REDUCTIONS)))}


def _sizes(fixed, extra):
    return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)), "K": pick(fixed, "K", st.integers(1, 4)),
                                  **{key: pick(fixed, key, value) for key, value in extra.items()}})


LOG_SOFTMAX = OpSpec(
    name="log_softmax", arg_names=("z",), configs=batch_configs(OFFSETS),
    make_arrays=lambda c, rng: {"z": c["offset"] + normal(rng, shape(c))}, output_shape=shape, hyper=lambda c: {},
    torch_forward=lambda z: F.log_softmax(z, dim=1),
    reference=Implementation.from_module(ref, "log_softmax", "reference.logit_losses.log_softmax"),
    reduction_length=lambda c: c["K"],
    description="log-softmax over axis 1 of (N, K), logits O(1) and in the hundreds")

NLL_LOSS = OpSpec(
    name="nll_loss", arg_names=("y", "t"),
    configs=lambda **fixed: _sizes(fixed, {"reduction": st.sampled_from(REDUCTIONS)}),
    make_arrays=lambda c, rng: {"y": normal(rng, shape(c)),
                                "t": rng.integers(0, c["K"], size=c["N"]).astype(np.float64)},
    output_shape=lambda c: (), hyper=lambda c: {"reduction": c["reduction"]},
    torch_forward=lambda y, t, reduction: F.nll_loss(y, t.long(), reduction=reduction),
    reference=Implementation.from_module(ref, "nll_loss", "reference.logit_losses.nll_loss"),
    reduction_length=lambda c: c["N"], grad_args=("y",), linear_args=("y",),
    description="NLL loss -1/R sum_n y[n, t_n] on log-probabilities y, class indices t (data), mean or sum")

LOG_SOFTMAX_NLL = OpSpec(
    name="log_softmax_nll", arg_names=("z", "t"),
    configs=lambda **fixed: _sizes(fixed, {"offset": st.sampled_from(OFFSETS),
                                           "reduction": st.sampled_from(REDUCTIONS)}),
    make_arrays=lambda c, rng: {"z": c["offset"] + normal(rng, shape(c)),
                                "t": rng.integers(0, c["K"], size=c["N"]).astype(np.float64)},
    output_shape=lambda c: (), hyper=lambda c: {"reduction": c["reduction"]},
    torch_forward=lambda z, t, reduction: F.cross_entropy(z, t.long(), reduction=reduction),
    reference=Implementation.from_module(ref, "log_softmax_nll", "reference.logit_losses.log_softmax_nll"),
    reduction_length=lambda c: c["N"] * c["K"], grad_args=("z",),
    description="log-softmax then NLL on class indices t (data): torch's cross_entropy with index targets")

BCE_WITH_LOGITS = OpSpec(
    name="bce_with_logits", arg_names=("z", "t"),
    configs=bce_configs,
    make_arrays=lambda c, rng: {"z": normal(rng, shape(c), c["scale"]),
                                "t": rng.uniform(0, 1, shape(c)) if c["targets"] == "soft"
                                else rng.integers(0, 2, shape(c)).astype(np.float64)},
    output_shape=lambda c: (), hyper=lambda c: {"reduction": c["reduction"]},
    torch_forward=lambda z, t, reduction: F.binary_cross_entropy_with_logits(z, t, reduction=reduction),
    reference=Implementation.from_module(ref, "bce_with_logits", "reference.logit_losses.bce_with_logits"),
    reduction_length=lambda c: c["N"] * c["K"], grad_args=("z",),
    description="binary cross-entropy on logits, soft targets in [0, 1] or hard 0/1 (data), mean or sum")

SPECS = [LOG_SOFTMAX, NLL_LOSS, LOG_SOFTMAX_NLL, BCE_WITH_LOGITS]

FORMULAS = [
    Formula("log-softmax forward", "y_k = (z_k - m) - ln sum_j e^(z_j - m)", "torch convention", "log_softmax",
            ("forward",), {}),
    Formula("log-softmax backward", "dE/dz_k = dE/dy_k - softmax_k sum_j dE/dy_j", "torch convention",
            "log_softmax", ("z",), {"K": st.integers(2, 4)}),
    Formula("log-softmax, logits in the hundreds", "the same, every exponent <= 0", "torch convention",
            "log_softmax", ("forward", "z"), {"offset": 800.0}),
    Formula("NLL loss on class indices", "E = -1/R sum_n y[n, t_n]; dE/dy[n, k] = -dE/R [k = t_n], R = N (mean) or 1",
            "torch convention", "nll_loss", ("forward", "y"), {}),
    Formula("log-softmax + NLL on class indices (torch's cross_entropy)",
            "E = -1/R sum_n log_softmax(z)[n, t_n]; dE/dz = dE (softmax(z) - onehot(t)) / R", "torch convention",
            "log_softmax_nll", ("forward", "z"), {}),
    Formula("log-softmax + NLL, logits in the hundreds", "the same at offset -800", "torch convention",
            "log_softmax_nll", ("forward", "z"), {"offset": -800.0}),
    Formula("binary cross-entropy on logits, soft targets",
            "E = 1/R sum max(z, 0) - z t + ln(1 + e^-|z|); dE/dz = dE (sigmoid(z) - t) / R", "torch convention",
            "bce_with_logits", ("forward", "z"), {"targets": "soft"}),
    Formula("binary cross-entropy on logits of size 50", "the same where sigmoid(z) rounds to 0 or 1",
            "torch convention", "bce_with_logits", ("forward", "z"), {"scale": 50.0}),
]
