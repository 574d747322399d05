"""Upsampling by integer scale factors: nearest and bilinear (align_corners=False), torch's interpolate."""
from __future__ import annotations

import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import upsampling as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import expand_pairs, normal, pick


def upsample_configs(**fixed):
    """N, C, H, W and an integer scale factor per axis (sh, sw; alias ``scale`` for both). Integer factors only:
    for a fractional factor torch locates source rows as floor(i * (1/s)) in floating point, where i / s is an
    integer and i * (1/s) may round just below it (a convention of the arithmetic, not of the formula)."""
    fixed = expand_pairs(fixed, {"scale": ("sh", "sw")})
    return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 2)), "C": pick(fixed, "C", st.integers(1, 2)),
                                  "H": pick(fixed, "H", st.integers(1, 3)), "W": pick(fixed, "W", st.integers(1, 3)),
                                  "sh": pick(fixed, "sh", st.integers(1, 3)), "sw": pick(fixed, "sw", st.integers(1, 3))})


def output_shape(c):
    return (c["N"], c["C"], c["H"] * c["sh"], c["W"] * c["sw"])


def _spec(mode, torch_forward, reduction_length, description):
    name = f"upsample_{mode}"
    return OpSpec(name=name, arg_names=("x",), configs=upsample_configs,
                  make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["C"], c["H"], c["W"]))},
                  output_shape=output_shape, hyper=lambda c: {"scale": (c["sh"], c["sw"])},
                  torch_forward=torch_forward,
                  reference=Implementation.from_module(ref, name, f"reference.upsampling.{name}"),
                  reduction_length=reduction_length, linear_args=("x",), description=description)


UPSAMPLE_NEAREST = _spec(
    "nearest", lambda x, scale: F.interpolate(x, scale_factor=scale, mode="nearest"),
    lambda c: c["sh"] * c["sw"],  # dx sums one sh x sw block
    "nearest-neighbour upsampling by integer factors (torch's interpolate, mode='nearest')")
UPSAMPLE_BILINEAR = _spec(
    "bilinear", lambda x, scale: F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False),
    lambda c: 4 * (2 * c["sh"] + 1) * (2 * c["sw"] + 1),  # an input cell is a corner of up to (2s + 1)^2 outputs
    "bilinear upsampling by integer factors, align_corners=False (torch's interpolate, mode='bilinear')")
SPECS = [UPSAMPLE_NEAREST, UPSAMPLE_BILINEAR]

FORMULAS = [
    Formula("nearest upsampling", "y_ij = x_(i // sh)(j // sw); dE/dx_uv = sum of dE/dy over the sh x sw block",
            "torch convention", "upsample_nearest", ("forward", "x"), {}),
    Formula("bilinear upsampling, align_corners=False",
            "r = max((i + 1/2)/s - 1/2, 0); y = sum over 4 corners of (1-a or a)(1-b or b) x; dx: the same weights "
            "scattered back", "torch convention", "upsample_bilinear", ("forward", "x"), {}),
    Formula("bilinear upsampling, border rows (H or W = 1)", "u1 = min(u0 + 1, H - 1): a corner counted twice",
            "torch convention", "upsample_bilinear", ("forward", "x"), {"H": 1}),
]
