"""Pooling: max pooling (window, stride, padding, dilation), mean pooling (window, stride) and the subsampling layer of
"Notes on CNNs" (sum over scale x scale blocks, multiplicative and additive bias per map, sigmoid)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import pooling as ref
from ..reference import subsampling as sub
from ..spec import Formula, Implementation, OpSpec
from .pool_ties import maxpool_subgradient, tied_maxima
from ..special import HUGE_SCALE, TINY_SCALE, VERY_HUGE_SCALE, exact_zeros, repeated, scaled
from ..strategies import (distinct_values, expand_pairs, normal, pick, resolve_ties, stride_relative_to_kernel,
                          window_axis, within)

ALIASES = {"kernel": ("kh", "kw"), "stride": ("sh", "sw"), "padding": ("ph", "pw"), "dilation": ("dilh", "dilw"),
           "remainder": ("rh", "rw"), "size": ("H", "W"), "out": ("Hout", "Wout")}


@st.composite
def pool_configs(draw, *, padded=True, dilated=False, stride_vs_kernel=None, square=False, **fixed):
    """N, C, and per axis window k, stride s, padding p (p <= k // 2, torch's rule; 0 when not ``padded``),
    dilation (1 or 2 when ``dilated``, else no field) and the input size. ``stride_vs_kernel`` ("equal", "smaller",
    "larger") relates s to k on both axes; ``square`` makes the window square (kw = kh), as cnnbp's scale x scale
    blocks are. Fixable by field name or by the aliases kernel, stride, padding, dilation, remainder.

    With dilation and padding a window can skip over every real cell (H = 1, k = 2, p = 1, D = 2 reads padded rows
    0 and 2): max pooling is undefined there (torch 2.13 returns -inf and misroutes the gradient), so the input
    grows until every window reads a real cell (n >= D suffices, given p <= k // 2)."""
    fixed = expand_pairs(fixed, ALIASES)
    if not padded:
        fixed["ph"], fixed["pw"] = 0, 0
    config = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C": draw(pick(fixed, "C", st.integers(1, 2)))}
    for axis in "hw":
        fixed = resolve_ties(fixed, config)  # tied axes: w as drawn for h
        if square and axis == "w":
            fixed["kw"] = config["kh"]
        axis_fixed = dict(fixed) if dilated else {**fixed, f"dil{axis}": 1}
        if stride_vs_kernel is not None:
            axis_fixed.update(draw(stride_relative_to_kernel(fixed, axis, stride_vs_kernel)))
        values = draw(window_axis(axis_fixed, axis, max_kernel=3, max_stride=3, max_dilation=2, max_out=3,
                                  padding_rule="half_kernel"))
        n, k, s, p, d = (values[key] for key in (axis.upper(), f"k{axis}", f"s{axis}", f"p{axis}", f"dil{axis}"))
        while not ref.every_window_reads_input(n, k, s, p, d):
            n += 1
        values[axis.upper()] = n
        if not dilated:
            values.pop(f"dil{axis}")
        config.update(values)
    order = ("N", "C", "H", "W", "kh", "kw", "sh", "sw", "ph", "pw") + (("dilh", "dilw") if dilated else ())
    return {key: config[key] for key in order}  # report order


def pool_output_shape(c):
    return (c["N"], c["C"], ref.out_size(c["H"], c["kh"], c["sh"], c["ph"], c.get("dilh", 1)),
            ref.out_size(c["W"], c["kw"], c["sw"], c["pw"], c.get("dilw", 1)))


def pool_input(c, rng):
    """Pairwise distinct values (gap 2 MARGIN): no ties in any window, by construction."""
    return {"x": distinct_values(rng, (c["N"], c["C"], c["H"], c["W"]))}


def max_hyper(c):
    """dilation is passed only where it is not 1, so that max-pooling plug-ins written without it keep working on
    the configurations they support (a plug-in without dilation declares limits={"dilation": 1})."""
    hyper = {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"]), "padding": (c["ph"], c["pw"])}
    dilation = (c.get("dilh", 1), c.get("dilw", 1))
    if dilation != (1, 1):
        hyper["dilation"] = dilation
    return hyper


def mean_hyper(c):
    return {"kernel": (c["kh"], c["kw"]), "stride": (c["sh"], c["sw"])}


def window_runner_up_gap(c, arrays) -> float:
    """min over windows of (largest - second largest real value): how far the input is from an argmax tie.
    Vectorised (it runs for every case, on sizes up to the benchmark's 1e6 elements): one step per window tap over
    that tap's output-sized view of x, keeping the largest m1 and the second largest m2 of every window so far
    (m2 <- max(m2, min(m1, cell)), then m1 <- max(m1, cell); a tie makes m2 = m1, a gap of 0). A tap in the
    padding (-inf) changes neither, so each tap reads only the windows whose cell lies inside x."""
    kh, kw, sh, sw, Dh, Dw = c["kh"], c["kw"], c["sh"], c["sw"], c.get("dilh", 1), c.get("dilw", 1)
    if kh * kw < 2:
        return np.inf
    N, C, Ho, Wo = pool_output_shape(c)
    x = np.asarray(arrays["x"], dtype=np.float64)
    largest, second, low = (np.full((N, C, Ho, Wo), -np.inf) for _ in range(3))

    def inside(tap, pad, stride, n_in, n_out):  # the outputs p whose cell tap + p stride - pad lies in [0, n_in)
        first = max(0, -((tap - pad) // stride))
        last = min(n_out, (n_in - 1 - tap + pad) // stride + 1)
        return slice(first, max(first, last)), slice(tap - pad + first * stride,
                                                     tap - pad + max(first, last - 1) * stride + 1, stride)

    for i in range(kh):
        rows, x_rows = inside(i * Dh, c["ph"], sh, c["H"], Ho)
        for j in range(kw):  # the tap (i, j) of every window: x rows i Dh + p sh - ph, columns j Dw + q sw - pw
            cols, x_cols = inside(j * Dw, c["pw"], sw, c["W"], Wo)
            if rows.stop == rows.start or cols.stop == cols.start:
                continue
            cell, m1, m2, lo = x[:, :, x_rows, x_cols], largest[..., rows, cols], second[..., rows, cols], \
                low[..., rows, cols]
            np.maximum(m2, np.minimum(m1, cell, out=lo), out=m2)
            np.maximum(m1, cell, out=m1)
    with np.errstate(invalid="ignore"):  # a window with one real cell: top - (-inf) = inf, no tie possible
        return float(np.min(largest - second, initial=np.inf))


#: corner configurations of a pooling window along the height axis (p <= k // 2, torch's rule: no window lies
#: wholly in the padding)
POOL_CORNERS = (("output of size 1", {"Hout": 1}),
                ("stride larger than the window", {"kh": st.integers(1, 2), "sh": 3, "Hout": st.integers(2, 3)}),
                ("window as large as the padded input", {"kh": st.integers(2, 3), "Hout": 1, "rh": 0}))
LARGEST_PADDING = ("largest legal padding, k // 2", {"kh": st.integers(2, 3), "ph": 1})
#: special values of ops linear in x: exact zeros, one value everywhere, tiny and huge magnitudes
LINEAR_SPECIALS = {"zeros": exact_zeros("x"), "repeated": repeated("x"), "tiny": scaled("x", TINY_SCALE),
                   "huge": scaled("x", HUGE_SCALE)}

MAXPOOL2D = OpSpec(
    name="maxpool2d", arg_names=("x",), configs=lambda **fixed: pool_configs(dilated=True, **fixed),
    make_arrays=pool_input, output_shape=pool_output_shape, hyper=max_hyper,
    torch_forward=lambda x, kernel, stride, padding, dilation=1: F.max_pool2d(x, kernel, stride, padding, dilation),
    reference=Implementation.from_module(ref, "maxpool2d", "reference.pooling.maxpool2d"),
    reduction_length=lambda c: c["kh"] * c["kw"],  # a cell is the argmax of at most kh*kw windows
    piecewise_linear_args=("x",), kink_distance=window_runner_up_gap,
    nondifferentiable="max pooling where two cells of a window tie for the maximum",
    description="2-D max pooling with window, stride, -inf padding and dilation (torch's max_pool2d); every "
                "window reads a real cell; dilation= is passed only where it is not (1, 1)",
    special_values={"ties": tied_maxima, "huge": scaled("x", VERY_HUGE_SCALE)}, kink_values=("ties",),
    subgradient=maxpool_subgradient, corners=(*POOL_CORNERS, LARGEST_PADDING),
    optional_hyper={"dilation": {"dilation": 1}})

MEANPOOL2D = OpSpec(
    name="meanpool2d", arg_names=("x",), configs=lambda **fixed: pool_configs(padded=False, **fixed),
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"]))},
    output_shape=pool_output_shape, hyper=mean_hyper,
    torch_forward=lambda x, kernel, stride: F.avg_pool2d(x, kernel, stride),
    reference=Implementation.from_module(ref, "meanpool2d", "reference.pooling.meanpool2d"),
    reduction_length=lambda c: c["kh"] * c["kw"], linear_args=("x",),
    description="2-D mean (average) pooling with window and stride, no padding (torch's avg_pool2d)",
    special_values=LINEAR_SPECIALS, corners=POOL_CORNERS)


@st.composite
def subsampling_configs(draw, **fixed):
    """N, C, scale, and the input size: Hout whole blocks plus rh < scale rows no block reads (likewise W)."""
    fixed = expand_pairs(fixed, SUBSAMPLING_ALIASES)
    c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C": draw(pick(fixed, "C", st.integers(1, 2))),
         "scale": draw(within(fixed, "scale", st.integers(1, 3)))}
    for axis in "hw":
        fixed, size = resolve_ties(fixed, c), axis.upper()
        if size in fixed:  # an input size given (raised or restricted): whole blocks and the rest follow from it
            c[size] = draw(within(fixed, size, st.nothing(), low=c["scale"]))
            continue
        out = draw(within(fixed, f"{size}out", st.integers(1, 3)))
        c[size] = out * c["scale"] + draw(within(fixed, f"r{axis}", st.integers(0, c["scale"] - 1), floor=0,
                                                 high=c["scale"] - 1))
    return c


SUBSAMPLING_ALIASES = {"remainder": ("rh", "rw"), "size": ("H", "W"), "out": ("Hout", "Wout")}


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
    description="Notes on CNNs subsampling: sigmoid(beta * (sum over scale x scale blocks) + b), per map",
    special_values={"zeros": exact_zeros("x"), "repeated": repeated("x")},
    corners=(("one block", {"Hout": 1, "Wout": 1}), ("largest remainder", {"scale": 3, "rh": 2, "rw": 2})))

SPECS = [MAXPOOL2D, MEANPOOL2D, SUBSAMPLING]

SEED_WINDOWS = {"stride_vs_kernel": "equal", "padding": 0, "dilation": 1}
FORMULAS = [
    Formula("max pool forward, l x l windows moved by l", "y_ij = max_{s,t < l} x_(li+s)(lj+t)", "000, 002",
            "maxpool2d", ("forward",), SEED_WINDOWS),
    Formula("max pool backward to the argmax",
            "dE/dx_(li+s)(lj+t) = dE/dy_ij if y_ij = x_(li+s)(lj+t), else 0", "000, 002, 004", "maxpool2d",
            ("x",), SEED_WINDOWS),
    Formula("max pool, overlapping windows accumulate (stride < window)",
            "dE/dx_uv = sum over windows (i, j) with argmax (u, v) of dE/dy_ij", "000, 002, 004 generalised",
            "maxpool2d", ("forward", "x"), {"stride_vs_kernel": "smaller", "padding": 0, "dilation": 1}),
    Formula("max pool, stride > window", "cells between windows get dE/dx = 0", "000, 002, 004 generalised",
            "maxpool2d", ("forward", "x"), {"stride_vs_kernel": "larger", "padding": 0, "dilation": 1}),
    Formula("max pool with padding (padded cells never win)", "xp = x padded with -inf; dx = dxp cropped",
            "torch convention", "maxpool2d", ("forward", "x"),
            {"kh": st.integers(2, 3), "kw": st.integers(2, 3), "padding": 1, "dilation": 1}),
    Formula("max pool with dilation", "y_ij = max_{s,t} xp_(iS+sD)(jS+tD); dE/dx to the argmax, windows that "
            "skip every real cell excluded", "torch convention", "maxpool2d", ("forward", "x"), {"dilation": 2}),
    Formula("max pool with dilation and padding", "the same with xp padded by -inf (P <= k // 2)",
            "torch convention", "maxpool2d", ("forward", "x"),
            {"kh": st.integers(2, 3), "kw": st.integers(2, 3), "padding": 1, "dilation": 2}),
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
