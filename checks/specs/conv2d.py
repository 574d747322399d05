"""Convolution: cross-correlation ("conv2d", what frameworks call conv) and true convolution ("convolve2d")."""
from __future__ import annotations

import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import conv2d as ref
from ..reference import conv_matrix
from ..spec import Formula, Implementation, OpSpec
from ..special import HUGE_SCALE, TINY_SCALE, exact_zeros, repeated, scaled
from ..strategies import expand_pairs, normal, out_size, pick, resolve_ties, window_axis

ALIASES = {"stride": ("sh", "sw"), "padding": ("ph", "pw"), "dilation": ("dilh", "dilw"), "kernel": ("kh", "kw"),
           "remainder": ("rh", "rw"), "size": ("H", "W"), "out": ("Hout", "Wout")}


@st.composite
def conv_configs(draw, **fixed):
    """N, C_in, C_out, H, W, kh, kw and per-axis stride/padding/dilation. Fixable by name (``C_in=1``) or by the
    aliases ``stride``, ``padding``, ``dilation``, ``kernel``, ``remainder``, ``size`` (H, W), ``out`` (Hout, Wout)
    (both axes at once)."""
    fixed = expand_pairs(fixed, ALIASES)
    config = {"N": draw(pick(fixed, "N", st.integers(1, 2))),
              "C_in": draw(pick(fixed, "C_in", st.integers(1, 3))),
              "C_out": draw(pick(fixed, "C_out", st.integers(1, 3)))}
    config.update(draw(window_axis(fixed, "h")))
    config.update(draw(window_axis(resolve_ties(fixed, config), "w")))  # tied axes: w as drawn for h
    return {key: config[key] for key in ORDER}  # reports list the fields in this order


#: sizes first, then the kernel, stride, padding and dilation, each as (height, width)
ORDER = ("N", "C_in", "C_out", "H", "W", "kh", "kw", "sh", "sw", "ph", "pw", "dilh", "dilw")


def hyper(c):
    return {"stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"]), "dilation": (c["dilh"], c["dilw"])}


def output_shape(c):
    return (c["N"], c["C_out"], out_size(c["H"], c["kh"], c["sh"], c["ph"], c["dilh"]),
            out_size(c["W"], c["kw"], c["sw"], c["pw"], c["dilw"]))


def make_arrays(c, rng):
    return {"x": normal(rng, (c["N"], c["C_in"], c["H"], c["W"])),
            "w": normal(rng, (c["C_out"], c["C_in"], c["kh"], c["kw"])),
            "b": normal(rng, (c["C_out"],))}


def reduction_length(c):
    _, _, Ho, Wo = output_shape(c)
    return max(c["C_in"] * c["kh"] * c["kw"] + 1, c["N"] * Ho * Wo, c["C_out"] * c["kh"] * c["kw"])


def forward_reduction_length(c):
    """The terms of one output: C_in kh kw products and the bias."""
    return c["C_in"] * c["kh"] * c["kw"] + 1


#: corner configurations along the height axis (the width axis is drawn freely), within torch's rules for conv
CORNERS = (
    ("every tap of a window in padding", {"kh": 1, "ph": 1, "sh": 1, "Hout": st.integers(3, 4)}),
    ("dilated kernel extent larger than the input", {"kh": 2, "dilh": 2, "ph": 1, "Hout": 1, "rh": 0}),
    ("output of size 1", {"Hout": 1}),
    ("stride larger than the kernel extent", {"kh": 2, "dilh": 1, "sh": 3, "Hout": st.integers(2, 4)}),
    ("kernel as large as the padded input", {"kh": st.integers(2, 4), "Hout": 1, "rh": 0}),
    ("largest padding of the rule p <= d (k - 1) // 2", {"kh": 3, "dilh": 2, "ph": 2}),
    # both axes: along the width every window reads only padding (stride and dilation beyond the input); where
    # PyTorch 2.13's oneDNN conv2d (float32, channels_last) writes out of bounds and crashes the process
    ("every window of an axis in padding, dilated past the input",
     {"N": 2, "H": 1, "kh": 1, "ph": 0, "W": 2, "kw": 1, "pw": 1, "sw": 3, "dilw": 3}),
)
#: run as explicit cases only (every check, plain and unusual layout), not drawn: it fixes a whole configuration
EXPLICIT_CORNERS = ("every window of an axis in padding, dilated past the input",)
#: special values: exact zeros in x, one value in the whole kernel, tiny and huge inputs
SPECIALS = {"zeros": exact_zeros("x"), "repeated": repeated("w"), "tiny": scaled("x", TINY_SCALE),
            "huge": scaled("x", HUGE_SCALE)}


def _spec(name, prefix, torch_forward, description, alternatives):
    return OpSpec(
        name=name, arg_names=("x", "w", "b"), configs=conv_configs, make_arrays=make_arrays,
        output_shape=output_shape, hyper=hyper, torch_forward=torch_forward,
        reference=Implementation.from_module(ref, prefix, f"reference.conv2d.{prefix}"),
        reduction_length=reduction_length, forward_reduction_length=forward_reduction_length,
        linear_args=("x", "w", "b"), description=description, alternatives=alternatives, special_values=SPECIALS, corners=CORNERS, explicit_corners=EXPLICIT_CORNERS)


CONV2D = _spec("conv2d", "correlate2d", F.conv2d,
               "2-D cross-correlation with bias, stride, zero padding and dilation (torch's conv2d)",
               {"sparse matrix": Implementation.from_module(conv_matrix, "conv_matrix",
                                                            "reference.conv_matrix.conv_matrix")})
CONVOLVE2D = _spec("convolve2d", "convolve2d",
                   lambda x, w, b, **h: F.conv2d(x, w.flip(-2, -1), b, **h),
                   "2-D true convolution (kernel flipped in the forward pass) with bias, stride, padding, dilation",
                   {"correlation with rot180(w)": Implementation.from_module(
                       ref, "convolve2d_via_correlation", "reference.conv2d.convolve2d_via_correlation")})
SPECS = [CONV2D, CONVOLVE2D]

PLAIN = {"stride": 1, "padding": 0, "dilation": 1}
ONE_CHANNEL = {"N": 1, "C_in": 1, "C_out": 1, **PLAIN}
FORMULAS = [
    Formula("conv forward, one channel", "y_ij = sum_s sum_t w_st x_(i+s)(j+t) + b", "000, 002", "conv2d",
            ("forward",), ONE_CHANNEL),
    Formula("conv forward, many channels", "y^k_ij = sum_c sum_s sum_t w^kc_st x^c_(i+s)(j+t) + b^k", "002",
            "conv2d", ("forward",), PLAIN),
    Formula("conv dE/dw", "dE/dw^kc_st = sum_n sum_i sum_j delta^k_ij x^c_(i+s)(j+t)", "000, 002", "conv2d",
            ("w",), PLAIN),
    Formula("conv dE/db", "dE/db^k = sum_n sum_i sum_j delta^k_ij (independent of c)", "000, 002", "conv2d",
            ("b",), PLAIN),
    Formula("conv dE/dx, full correlation with rot180(w)",
            "dE/dx^c_ij = sum_k sum_s sum_t delta^k_(i-s)(j-t) w^kc_st, out-of-range delta = 0", "000, 002",
            "conv2d", ("x",), PLAIN),
    Formula("conv with stride and zero padding", "y_ij = sum w_ab xp_(is+a)(js+b) + b; trailing rows get 0",
            "004", "conv2d", ("forward", "x", "w", "b"), {"dilation": 1}),
    Formula("conv with dilation", "y_ij = sum w_st xp_(iS+sD)(jS+tD) + b", "torch convention", "conv2d",
            ("forward", "x", "w", "b"), {}),
    Formula("true convolution forward", "x_ij = sum_a sum_b w_ab y_(is-a)(js-b) + b", "004", "convolve2d",
            ("forward",), {}),
    Formula("true convolution backward", "dE/dy_ij = sum delta_i'j' w_(i's-i)(j's-j); dE/dw_ab likewise",
            "004", "convolve2d", ("x", "w", "b"), {}),
]
