"""Convolution with one and three spatial axes (torch's conv1d, conv3d): cross-correlation with bias, stride, zero
padding and dilation per axis."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import conv_nd as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, out_size, pick, window_axis


def nd_configs(axes, *, max_kernel, max_out):
    """N, C_in, C_out and per spatial axis (named by ``axes``: "w" for conv1d's length W, "dhw" for conv3d's
    depth, height, width) kernel, stride, padding, dilation and size, as conv2d's ``window_axis`` draws them.
    Aliases kernel, stride, padding, dilation fix every axis at once."""
    aliases = {name: tuple(f"{prefix}{a}" for a in axes)
               for name, prefix in (("kernel", "k"), ("stride", "s"), ("padding", "p"), ("dilation", "dil"))}

    @st.composite
    def configs(draw, **fixed):
        for alias, names in aliases.items():  # strategies.expand_pairs handles two axes; here one or three
            if alias in fixed:
                value = fixed.pop(alias)
                for name in names:
                    fixed.setdefault(name, value)
        c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C_in": draw(pick(fixed, "C_in", st.integers(1, 2))),
             "C_out": draw(pick(fixed, "C_out", st.integers(1, 2)))}
        for a in axes:
            c.update(draw(window_axis(fixed, a, max_kernel=max_kernel, max_out=max_out)))
        order = ("N", "C_in", "C_out", *(a.upper() for a in axes), *(f"{p}{a}" for p in ("k", "s", "p", "dil")
                                                                    for a in axes))
        return {key: c[key] for key in order}
    return configs


def _spec(name, axes, torch_forward, description, alternatives=None, max_kernel=3, max_out=3):
    def output_shape(c):
        return (c["N"], c["C_out"]) + tuple(out_size(c[a.upper()], c[f"k{a}"], c[f"s{a}"], c[f"p{a}"], c[f"dil{a}"])
                                            for a in axes)

    def make_arrays(c, rng):
        return {"x": normal(rng, (c["N"], c["C_in"]) + tuple(c[a.upper()] for a in axes)),
                "w": normal(rng, (c["C_out"], c["C_in"]) + tuple(c[f"k{a}"] for a in axes)),
                "b": normal(rng, (c["C_out"],))}

    def hyper(c):
        return {key: tuple(c[f"{prefix}{a}"] for a in axes)
                for key, prefix in (("stride", "s"), ("padding", "p"), ("dilation", "dil"))}

    def reduction_length(c):
        window = int(np.prod([c[f"k{a}"] for a in axes]))
        return max(c["C_in"] * window + 1, c["N"] * int(np.prod(output_shape(c)[2:])), c["C_out"] * window)

    return OpSpec(name=name, arg_names=("x", "w", "b"), configs=nd_configs(axes, max_kernel=max_kernel,
                                                                            max_out=max_out),
                  make_arrays=make_arrays, output_shape=output_shape, hyper=hyper, torch_forward=torch_forward,
                  reference=Implementation.from_module(ref, "convnd", "reference.conv_nd.convnd"),
                  reduction_length=reduction_length, linear_args=("x", "w", "b"), description=description,
                  alternatives=alternatives or {})


CONV1D = _spec("conv1d", "w", F.conv1d, "1-D cross-correlation with bias, stride, zero padding, dilation (torch's "
               "conv1d)", {"conv2d on a one-row image": Implementation.from_module(
                   ref, "conv1d_via_conv2d", "reference.conv_nd.conv1d_via_conv2d")}, max_kernel=4, max_out=4)
CONV3D = _spec("conv3d", "dhw", F.conv3d, "3-D cross-correlation with bias, stride, zero padding, dilation (torch's "
               "conv3d); small sizes (the loop reference is slow)", max_kernel=2, max_out=2)
SPECS = [CONV1D, CONV3D]

FORMULAS = [
    Formula("1-D conv", "y[k, o] = b[k] + sum_c sum_s w[k, c, s] xp[c, o S + s D]; dw, db, dx by the scatter",
            "torch convention", "conv1d", ("forward", "x", "w", "b"), {}),
    Formula("3-D conv", "y[k, o] = b[k] + sum_c sum_s w[k, c, s] xp[c, o S + s D], o and s index triples",
            "torch convention", "conv3d", ("forward", "x", "w", "b"), {}),
]
