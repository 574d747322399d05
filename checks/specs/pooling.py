"""Pooling: max pooling (window, stride, padding), mean pooling (window, stride) and the subsampling layer of
"Notes on CNNs" (sum over scale x scale blocks, multiplicative and additive bias per map, sigmoid)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import pooling as ref
from ..reference import subsampling as sub
from ..spec import Formula, Implementation, OpSpec
from ..strategies import distinct_values, expand_pairs, normal, pick, stride_relative_to_kernel, window_axis

ALIASES = {"kernel": ("kh", "kw"), "stride": ("sh", "sw"), "padding": ("ph", "pw"), "remainder": ("rh", "rw")}


@st.composite
def pool_configs(draw, *, padded=True, stride_vs_kernel=None, square=False, **fixed):
    """N, C, and per axis window k, stride s, padding p (p <= k // 2, torch's rule; 0 when not ``padded``) and the
    input size. ``stride_vs_kernel`` ("equal", "smaller", "larger") relates s to k on both axes; ``square`` makes
    the window square (kw = kh), as cnnbp's scale x scale blocks are. Fixable by field name or by the aliases
    kernel, stride, padding, remainder."""
    fixed = expand_pairs(fixed, ALIASES)
    if not padded:
        fixed["ph"], fixed["pw"] = 0, 0
    config = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C": draw(pick(fixed, "C", st.integers(1, 2)))}
    for axis in "hw":
        if square and axis == "w":
            fixed["kw"] = config["kh"]
        axis_fixed = {**fixed, f"dil{axis}": 1}
        if stride_vs_kernel is not None:
            axis_fixed.update(draw(stride_relative_to_kernel(fixed, axis, stride_vs_kernel)))
        values = draw(window_axis(axis_fixed, axis, max_kernel=3, max_stride=3, max_dilation=1, max_out=3,
                                  padding_rule="half_kernel"))
        values.pop(f"dil{axis}")
        config.update(values)
    return {key: config[key] for key in ("N", "C", "H", "W", "kh", "kw", "sh", "sw", "ph", "pw")}  # report order


def pool_output_shape(c):
    return (c["N"], c["C"], ref.out_size(c["H"], c["kh"], c["sh"], c["ph"]),
            ref.out_size(c["W"], c["kw"], c["sw"], c["pw"]))


def pool_input(c, rng):
    """Pairwise distinct values (gap 2 MARGIN): no ties in any window, by construction."""
    return {"x": distinct_values(rng, (c["N"], c["C"], c["H"], c["W"]))}


def max_hyper(c):
    return {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"])}


def mean_hyper(c):
    return {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"])}


def window_runner_up_gap(c, arrays) -> float:
    """min over windows of (largest - second largest real value): how far the input is from an argmax tie.
    Vectorised (it runs for every case, on sizes up to the benchmark's 1e5 elements)."""
    kh, kw, sh, sw = c["kh"], c["kw"], c["sh"], c["sw"]
    if kh * kw < 2:
        return np.inf
    _, _, Ho, Wo = pool_output_shape(c)
    xp = np.pad(np.asarray(arrays["x"], dtype=np.float64), ((0, 0), (0, 0), (c["ph"],) * 2, (c["pw"],) * 2),
                constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :Ho, :Wo]
    top_two = np.sort(windows.reshape(*windows.shape[:4], kh * kw), axis=-1)[..., -2:]
    with np.errstate(invalid="ignore"):  # a window with one real cell: top - (-inf) = inf, no tie possible
        return float(np.min(top_two[..., 1] - top_two[..., 0]))


MAXPOOL2D = OpSpec(
    name="maxpool2d", arg_names=("x",), configs=pool_configs, make_arrays=pool_input,
    output_shape=pool_output_shape, hyper=max_hyper,
    torch_forward=lambda x, kernel, stride, padding: F.max_pool2d(x, kernel, stride, padding),
    reference=Implementation.from_module(ref, "maxpool2d", "reference.pooling.maxpool2d"),
    reduction_length=lambda c: c["kh"] * c["kw"],  # a cell is the argmax of at most kh*kw windows
    piecewise_linear_args=("x",), kink_distance=window_runner_up_gap,
    nondifferentiable="max pooling where two cells of a window tie for the maximum",
    description="2-D max pooling with window, stride and -inf padding (torch's max_pool2d)")

MEANPOOL2D = OpSpec(
    name="meanpool2d", arg_names=("x",), configs=lambda **fixed: pool_configs(padded=False, **fixed),
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"]))},
    output_shape=pool_output_shape, hyper=mean_hyper,
    torch_forward=lambda x, kernel, stride: F.avg_pool2d(x, kernel, stride),
    reference=Implementation.from_module(ref, "meanpool2d", "reference.pooling.meanpool2d"),
    reduction_length=lambda c: c["kh"] * c["kw"], linear_args=("x",),
    description="2-D mean (average) pooling with window and stride, no padding (torch's avg_pool2d)")


@st.composite
def subsampling_configs(draw, **fixed):
    """N, C, scale, and the input size: Hout whole blocks plus rh < scale rows no block reads (likewise W)."""
    fixed = expand_pairs(fixed, {"remainder": ("rh", "rw")})
    c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C": draw(pick(fixed, "C", st.integers(1, 2))),
         "scale": draw(pick(fixed, "scale", st.integers(1, 3)))}
    for axis in "hw":
        out = draw(pick(fixed, f"{axis.upper()}out", st.integers(1, 3)))
        c[axis.upper()] = out * c["scale"] + draw(pick(fixed, f"r{axis}", st.integers(0, c["scale"] - 1)))
    return c


def _subsampling_torch(x, beta, b, scale):
    block_sum = F.avg_pool2d(x, scale, scale, divisor_override=1)
    return torch.sigmoid(beta.view(1, -1, 1, 1) * block_sum + b.view(1, -1, 1, 1))


SUBSAMPLING = OpSpec(
    name="subsampling", arg_names=("x", "beta", "b"), configs=subsampling_configs,
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"])),
                                "beta": normal(rng, (c["C"],)), "b": normal(rng, (c["C"],))},
    output_shape=lambda c: (c["N"], c["C"], c["H"] // c["scale"], c["W"] // c["scale"]),
    hyper=lambda c: {"scale": c["scale"]}, torch_forward=_subsampling_torch,
    reference=Implementation.from_module(sub, "subsampling", "reference.subsampling.subsampling"),
    reduction_length=lambda c: max(c["scale"] ** 2, c["N"] * (c["H"] // c["scale"]) * (c["W"] // c["scale"])),
    description="Notes on CNNs subsampling: sigmoid(beta * (sum over scale x scale blocks) + b), per map")

SPECS = [MAXPOOL2D, MEANPOOL2D, SUBSAMPLING]

SEED_WINDOWS = {"stride_vs_kernel": "equal", "padding": 0}
FORMULAS = [
    Formula("max pool forward, l x l windows moved by l", "y_ij = max_{s,t < l} x_(li+s)(lj+t)", "000, 002",
            "maxpool2d", ("forward",), SEED_WINDOWS),
    Formula("max pool backward to the argmax",
            "dE/dx_(li+s)(lj+t) = dE/dy_ij if y_ij = x_(li+s)(lj+t), else 0", "000, 002, 004", "maxpool2d",
            ("x",), SEED_WINDOWS),
    Formula("max pool, overlapping windows accumulate (stride < window)",
            "dE/dx_uv = sum over windows (i, j) with argmax (u, v) of dE/dy_ij", "000, 002, 004 generalised",
            "maxpool2d", ("forward", "x"), {"stride_vs_kernel": "smaller", "padding": 0}),
    Formula("max pool, stride > window", "cells between windows get dE/dx = 0", "000, 002, 004 generalised",
            "maxpool2d", ("forward", "x"), {"stride_vs_kernel": "larger", "padding": 0}),
    Formula("max pool with padding (padded cells never win)", "xp = x padded with -inf; dx = dxp cropped",
            "torch convention", "maxpool2d", ("forward", "x"),
            {"kh": st.integers(2, 3), "kw": st.integers(2, 3), "padding": 1}),
    Formula("mean pool forward", "y_ij = 1/(kh kw) sum_{s,t} x_(iS+s)(jS+t)", "003", "meanpool2d", ("forward",), {}),
    Formula("mean pool backward, cnnbp upsample-and-divide", "delta_prev = expand(delta, [scale scale]) / scale^2",
            "003", "meanpool2d", ("x",), {"stride_vs_kernel": "equal", "square": True}),
    Formula("mean pool backward, general window and stride",
            "dE/dx_(iS+s)(jS+t) += dE/dy_ij / (kh kw) over every window", "003 generalised", "meanpool2d",
            ("x",), {}),
    Formula("subsampling forward (Notes on CNNs)", "y = f(beta down(x) + b), down = sum over scale x scale blocks, "
            "f = sigmoid", "003", "subsampling", ("forward",), {}),
    Formula("subsampling dE/dx", "dE/dx = beta up(delta), delta = dE/dy f'(u), up = copy into each block", "003",
            "subsampling", ("x",), {}),
    Formula("subsampling dE/dbeta", "dE/dbeta = sum_ij (delta o down(x))_ij", "003", "subsampling", ("beta",), {}),
    Formula("subsampling dE/db", "dE/db = sum_ij delta_ij", "003", "subsampling", ("b",), {}),
]
