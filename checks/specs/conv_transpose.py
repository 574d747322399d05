"""Transposed convolution (torch's conv_transpose2d): stride, padding, output_padding, dilation, bias."""
from __future__ import annotations

import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import conv_transpose as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import expand_pairs, normal, pick

ALIASES = {"stride": ("sh", "sw"), "padding": ("ph", "pw"), "output_padding": ("oh", "ow"),
           "dilation": ("dilh", "dilw"), "kernel": ("kh", "kw")}
ORDER = ("N", "C_in", "C_out", "H", "W", "kh", "kw", "sh", "sw", "ph", "pw", "oh", "ow", "dilh", "dilw")


@st.composite
def transpose_axis(draw, fixed, axis):
    """Kernel k, stride s, dilation d, output_padding o < max(s, d) (torch's rule: o only picks among the outputs
    a strided or dilated conv maps to the same input size), input size n, and padding p <= 2 small enough that the
    output has a row: (n - 1) s + d (k - 1) + o - 2 p >= 0."""
    k = draw(pick(fixed, f"k{axis}", st.integers(1, 3)))
    s = draw(pick(fixed, f"s{axis}", st.integers(1, 3)))
    d = draw(pick(fixed, f"dil{axis}", st.integers(1, 2)))
    o = draw(pick(fixed, f"o{axis}", st.integers(0, max(s, d) - 1)))
    n = draw(pick(fixed, axis.upper(), st.integers(1, 3)))
    p = draw(pick(fixed, f"p{axis}", st.integers(0, min(2, ((n - 1) * s + d * (k - 1) + o) // 2))))
    while (n - 1) * s + d * (k - 1) + o - 2 * p < 0:  # only when a caller fixes the padding: grow the input
        n += 1
    return {f"k{axis}": k, f"s{axis}": s, f"dil{axis}": d, f"o{axis}": o, axis.upper(): n, f"p{axis}": p}


@st.composite
def transpose_configs(draw, **fixed):
    fixed = expand_pairs(fixed, ALIASES)
    c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C_in": draw(pick(fixed, "C_in", st.integers(1, 2))),
         "C_out": draw(pick(fixed, "C_out", st.integers(1, 2)))}
    for axis in "hw":
        c.update(draw(transpose_axis(fixed, axis)))
    return {key: c[key] for key in ORDER}


def output_shape(c):
    return (c["N"], c["C_out"], ref.out_size(c["H"], c["kh"], c["sh"], c["ph"], c["oh"], c["dilh"]),
            ref.out_size(c["W"], c["kw"], c["sw"], c["pw"], c["ow"], c["dilw"]))


def hyper(c):
    return {"stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"]), "output_padding": (c["oh"], c["ow"]),
            "dilation": (c["dilh"], c["dilw"])}


def reduction_length(c):
    _, _, Ho, Wo = output_shape(c)
    return max(c["C_in"] * c["kh"] * c["kw"] + 1, c["C_out"] * c["kh"] * c["kw"], c["N"] * c["H"] * c["W"],
               c["N"] * Ho * Wo)


CONV_TRANSPOSE2D = OpSpec(
    name="conv_transpose2d", arg_names=("x", "w", "b"), configs=transpose_configs,
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C_in"], c["H"], c["W"])),
                                "w": normal(rng, (c["C_in"], c["C_out"], c["kh"], c["kw"])),
                                "b": normal(rng, (c["C_out"],))},
    output_shape=output_shape, hyper=hyper,
    torch_forward=lambda x, w, b, stride, padding, output_padding, dilation: F.conv_transpose2d(
        x, w, b, stride, padding, output_padding, 1, dilation),
    reference=Implementation.from_module(ref, "conv_transpose2d", "reference.conv_transpose.conv_transpose2d"),
    reduction_length=reduction_length, linear_args=("x", "w", "b"),
    description="2-D transposed convolution with bias, stride, padding, output_padding, dilation "
                "(torch's conv_transpose2d; w is (C_in, C_out, kh, kw))",
    alternatives={"adjoint of conv2d": Implementation.from_module(
        ref, "conv_transpose2d_via_conv", "reference.conv_transpose.conv_transpose2d_via_conv")})
SPECS = [CONV_TRANSPOSE2D]

PLAIN = {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1}
FORMULAS = [
    Formula("transposed conv forward (scatter)", "y[k, iS + sD - P, jS + tD - P] += x[c, i, j] w[c, k, s, t]; + b",
            "torch convention", "conv_transpose2d", ("forward",), {}),
    Formula("transposed conv backward", "dx[c, i, j] = sum w[c, k, s, t] dfull[k, iS + sD, jS + tD] (a strided "
            "conv of delta); dw = sum x dfull; db = sum delta", "torch convention", "conv_transpose2d",
            ("x", "w", "b"), {}),
    Formula("transposed conv, stride 1, no padding", "the full correlation: Ho = H + kh - 1", "torch convention",
            "conv_transpose2d", ("forward", "x", "w", "b"), PLAIN),
    Formula("transposed conv with output_padding", "O extra rows at the end get bias only; dE/d of them reaches b",
            "torch convention", "conv_transpose2d", ("forward", "x", "w", "b"), {"sh": 2, "oh": 1}),
]
