"""Pooling modes: average pooling with zero padding (count_include_pad both ways) and ceil_mode, global average
pooling (AdaptiveAvgPool2d(1)), max pooling with ceil_mode."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import pooling_modes as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick
from .pooling import pool_configs, pool_input, window_runner_up_gap


@st.composite
def avg_configs(draw, **fixed):
    """pooling's window configurations (padding <= k // 2), plus ceil_mode and count_include_pad."""
    c = draw(pool_configs(**fixed))
    c["ceil_mode"] = draw(pick(fixed, "ceil_mode", st.booleans()))
    c["count_include_pad"] = draw(pick(fixed, "count_include_pad", st.booleans()))
    return c


def avg_output_shape(c):
    return (c["N"], c["C"], ref.pooled_size(c["H"], c["kh"], c["sh"], c["ph"], 1, c["ceil_mode"]),
            ref.pooled_size(c["W"], c["kw"], c["sw"], c["pw"], 1, c["ceil_mode"]))


AVGPOOL2D = OpSpec(
    name="avgpool2d", arg_names=("x",), configs=avg_configs,
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"]))},
    output_shape=avg_output_shape,
    hyper=lambda c: {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"]),
                     "ceil_mode": c["ceil_mode"], "count_include_pad": c["count_include_pad"]},
    torch_forward=lambda x, kernel, stride, padding, ceil_mode, count_include_pad: F.avg_pool2d(
        x, kernel, stride, padding, ceil_mode, count_include_pad),
    reference=Implementation.from_module(ref, "avgpool2d", "reference.pooling_modes.avgpool2d"),
    reduction_length=lambda c: c["kh"] * c["kw"], linear_args=("x",),
    description="2-D average pooling with zero padding, count_include_pad and ceil_mode (torch's avg_pool2d)")


@st.composite
def ceil_configs(draw, **fixed):
    """pooling's max-pool configurations (dilation included); the input grows until every window of ceil mode
    reads a real cell (as in floor mode, a dilated window can skip over the whole input)."""
    c = draw(pool_configs(dilated=True, **fixed))
    for axis in "hw":
        size = axis.upper()
        while not ref.windows_read_input(c[size], c[f"k{axis}"], c[f"s{axis}"], c[f"p{axis}"], c[f"dil{axis}"],
                                         ceil_mode=True):
            c[size] += 1
    return c


def ceil_output_shape(c):
    return (c["N"], c["C"], ref.pooled_size(c["H"], c["kh"], c["sh"], c["ph"], c["dilh"], True),
            ref.pooled_size(c["W"], c["kw"], c["sw"], c["pw"], c["dilw"], True))


def ceil_runner_up_gap(c, arrays) -> float:
    """pooling's tie distance on x extended by -inf rows and columns (the floor-mode view of ceil mode)."""
    eh = ref.ceil_extension(c["H"], c["kh"], c["sh"], c["ph"], c["dilh"])
    ew = ref.ceil_extension(c["W"], c["kw"], c["sw"], c["pw"], c["dilw"])
    x = np.pad(arrays["x"], ((0, 0), (0, 0), (0, eh), (0, ew)), constant_values=-np.inf)
    return window_runner_up_gap({**c, "H": c["H"] + eh, "W": c["W"] + ew}, {"x": x})


MAXPOOL2D_CEIL = OpSpec(
    name="maxpool2d_ceil", arg_names=("x",), configs=ceil_configs, make_arrays=pool_input,
    output_shape=ceil_output_shape,
    hyper=lambda c: {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"]),
                     "dilation": (c["dilh"], c["dilw"])},
    torch_forward=lambda x, kernel, stride, padding, dilation: F.max_pool2d(x, kernel, stride, padding, dilation,
                                                                            ceil_mode=True),
    reference=Implementation.from_module(ref, "maxpool2d_ceil", "reference.pooling_modes.maxpool2d_ceil"),
    reduction_length=lambda c: c["kh"] * c["kw"], piecewise_linear_args=("x",), kink_distance=ceil_runner_up_gap,
    nondifferentiable="max pooling where two cells of a window tie for the maximum",
    description="2-D max pooling in ceil mode (torch's max_pool2d(ceil_mode=True)), padding and dilation")

GLOBAL_AVGPOOL2D = OpSpec(
    name="global_avgpool2d", arg_names=("x",),
    configs=lambda **fixed: st.fixed_dictionaries({key: pick(fixed, key, st.integers(1, top)) for key, top in
                                                   (("N", 2), ("C", 2), ("H", 3), ("W", 3))}),
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"]))},
    output_shape=lambda c: (c["N"], c["C"], 1, 1), hyper=lambda c: {},
    torch_forward=lambda x: F.adaptive_avg_pool2d(x, 1),
    reference=Implementation.from_module(ref, "global_avgpool2d", "reference.pooling_modes.global_avgpool2d"),
    reduction_length=lambda c: c["H"] * c["W"], linear_args=("x",),
    description="global average pooling to (N, C, 1, 1) (torch's adaptive_avg_pool2d(x, 1))")

SPECS = [AVGPOOL2D, MAXPOOL2D_CEIL, GLOBAL_AVGPOOL2D]

FORMULAS = [
    Formula("avg pool with padding, padding counted", "y = 1/(kh kw) sum over the window, zeros included; "
            "dE/dx += dE/dy / (kh kw)", "torch convention", "avgpool2d", ("forward", "x"),
            {"padding": 1, "kh": st.integers(2, 3), "kw": st.integers(2, 3), "count_include_pad": True,
             "ceil_mode": False}),
    Formula("avg pool with padding, real cells only", "divisor = number of real cells in the window",
            "torch convention", "avgpool2d", ("forward", "x"),
            {"padding": 1, "kh": st.integers(2, 3), "kw": st.integers(2, 3), "count_include_pad": False,
             "ceil_mode": False}),
    Formula("avg pool, ceil mode", "extra windows clipped at the padded input's end; divisor counts padding, not "
            "what lies past it", "torch convention", "avgpool2d", ("forward", "x"), {"ceil_mode": True}),
    Formula("global average pooling", "y_nc = 1/(H W) sum_uv x_ncuv; dE/dx_ncuv = dE/dy_nc / (H W)",
            "torch convention", "global_avgpool2d", ("forward", "x"), {}),
    Formula("max pool, ceil mode", "extra windows over the existing cells only; dE/dx to the argmax",
            "torch convention", "maxpool2d_ceil", ("forward", "x"), {}),
]
