"""Grouped and depthwise convolution: torch's conv2d with ``groups`` (cross-correlation, bias, stride, zero padding,
dilation); depthwise is groups == C_in."""
from __future__ import annotations

import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import grouped_conv as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import expand_pairs, normal, out_size, pick, window_axis
from .conv2d import ALIASES, hyper as conv_hyper

ORDER = ("N", "groups", "C_in", "C_out", "H", "W", "kh", "kw", "sh", "sw", "ph", "pw", "dilh", "dilw")


@st.composite
def grouped_configs(draw, *, depthwise=False, **fixed):
    """N, groups G, C_in = G x (1 or 2), C_out = G x (1 or 2) (valid by construction: G divides both), and per axis
    kernel, stride, padding, dilation as conv2d's. ``depthwise`` makes C_in = G (one input channel per group).
    Sizes stay small: the loop reference runs N C_out Ho Wo (C_in/G) kh kw products."""
    fixed = expand_pairs(fixed, ALIASES)
    c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "groups": draw(pick(fixed, "groups", st.integers(1, 3)))}
    c["C_in"] = c["groups"] * (1 if depthwise else draw(st.integers(1, 2)))
    c["C_out"] = c["groups"] * draw(st.integers(1, 2))
    for axis in "hw":
        c.update(draw(window_axis(fixed, axis, max_kernel=3, max_out=3)))
    return {key: c[key] for key in ORDER}


def output_shape(c):
    return (c["N"], c["C_out"], out_size(c["H"], c["kh"], c["sh"], c["ph"], c["dilh"]),
            out_size(c["W"], c["kw"], c["sw"], c["pw"], c["dilw"]))


def make_arrays(c, rng):
    return {"x": normal(rng, (c["N"], c["C_in"], c["H"], c["W"])),
            "w": normal(rng, (c["C_out"], c["C_in"] // c["groups"], c["kh"], c["kw"])),
            "b": normal(rng, (c["C_out"],))}


def reduction_length(c):
    _, _, Ho, Wo = output_shape(c)
    per_group = c["C_in"] // c["groups"]
    return max(per_group * c["kh"] * c["kw"] + 1, c["N"] * Ho * Wo, (c["C_out"] // c["groups"]) * c["kh"] * c["kw"])


GROUPED_CONV2D = OpSpec(
    name="grouped_conv2d", arg_names=("x", "w", "b"), configs=grouped_configs, make_arrays=make_arrays,
    output_shape=output_shape, hyper=lambda c: {**conv_hyper(c), "groups": c["groups"]}, torch_forward=F.conv2d,
    reference=Implementation.from_module(ref, "grouped_conv2d", "reference.grouped_conv.grouped_conv2d"),
    reduction_length=reduction_length, linear_args=("x", "w", "b"),
    description="2-D grouped cross-correlation (torch's conv2d with groups; depthwise when groups == C_in), "
                "bias, stride, zero padding, dilation",
    alternatives={"one convolution per group": Implementation.from_module(
        ref, "grouped_conv2d_via_groups", "reference.grouped_conv.grouped_conv2d_via_groups")})
SPECS = [GROUPED_CONV2D]

FORMULAS = [
    Formula("grouped conv forward", "y^k_ij = b^k + sum_{c < C_in/G} sum_s sum_t w^kc_st xp^(g Cg + c)_(iS+sD)(jS+tD), "
            "g = k // (C_out/G)", "torch convention", "grouped_conv2d", ("forward",), {"groups": st.integers(2, 3)}),
    Formula("grouped conv backward, each group its own channels",
            "dE/dw^kc_st = sum delta^k_ij xp^(g Cg + c); dE/dxp^(g Cg + c) += delta^k_ij w^kc_st; db^k = sum delta^k",
            "torch convention", "grouped_conv2d", ("x", "w", "b"), {"groups": st.integers(2, 3)}),
    Formula("depthwise conv (groups = C_in)", "each output map reads one input channel: Cg = 1", "torch convention",
            "grouped_conv2d", ("forward", "x", "w", "b"), {"depthwise": True, "groups": st.integers(2, 3)}),
]
