"""Convolution with reflect or replicate padding (torch's Conv2d(padding_mode=...))."""
from __future__ import annotations

import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import conv_padding_modes as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import pick
from .conv2d import conv_configs, hyper as conv_hyper, make_arrays, output_shape, reduction_length

MODES = ("reflect", "replicate")


@st.composite
def padded_configs(draw, **fixed):
    """conv2d's configurations plus padding_mode; reflect needs P < H and P < W (a reflection that does not repeat
    the edge has only n - 1 cells to mirror), so under reflect the input grows until it is larger than P."""
    mode = draw(pick(fixed, "padding_mode", st.sampled_from(MODES)))
    smaller = {"C_in": st.integers(1, 2), "C_out": st.integers(1, 2), "Hout": st.integers(1, 3),
               "Wout": st.integers(1, 3)}  # than conv2d's: the gather and fold loops come on top of conv2d's
    c = draw(conv_configs(**{**smaller, **{k: v for k, v in fixed.items() if k != "padding_mode"}}))
    if mode == "reflect":
        c["H"], c["W"] = max(c["H"], c["ph"] + 1), max(c["W"], c["pw"] + 1)
    c["padding_mode"] = mode
    return c


def _torch(x, w, b, stride, padding, dilation, padding_mode):
    """nn.Conv2d's own route for a padding_mode: F.pad, then an unpadded conv2d."""
    (ph, pw) = padding
    return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode=padding_mode), w, b, stride, 0, dilation)


CONV2D_PADDED = OpSpec(
    name="conv2d_padded", arg_names=("x", "w", "b"), configs=padded_configs, make_arrays=make_arrays,
    output_shape=output_shape, hyper=lambda c: {**conv_hyper(c), "padding_mode": c["padding_mode"]},
    torch_forward=_torch,
    reference=Implementation.from_module(ref, "conv2d_padded", "reference.conv_padding_modes.conv2d_padded"),
    # a reflected or replicated cell is read by up to (P + 1) copies' windows: longer sums in dx than conv2d's
    reduction_length=lambda c: reduction_length(c) * (max(c["ph"], c["pw"]) + 1) ** 2,
    linear_args=("x", "w", "b"),
    description="2-D cross-correlation with reflect or replicate padding (torch's Conv2d padding_mode), bias, "
                "stride, dilation")
SPECS = [CONV2D_PADDED]

FORMULAS = [
    Formula("conv with reflect padding", "xp[u] = x[|u - P|] mirrored without repeating the edge; dx = fold(dxp): "
            "each mirrored cell's gradient added to its source", "torch convention", "conv2d_padded",
            ("forward", "x", "w", "b"), {"padding_mode": "reflect"}),
    Formula("conv with replicate padding", "xp[u] = x[clamp(u - P, 0, H - 1)]; the edge cell collects every copy's "
            "gradient", "torch convention", "conv2d_padded", ("forward", "x", "w", "b"),
            {"padding_mode": "replicate"}),
]
