"""Convolution as a matrix product (seed 001): the same op as "conv2d", with the sparse-matrix reference
(vec(y) = M vec(x) + b, dx = M^T dy, dw through im2col). Configurations, arrays and the torch op come from
``cnn_gradcheck.specs.conv2d``, so both references are judged on the same cases by the same oracles."""
from __future__ import annotations

import torch.nn.functional as F

from ..reference import conv_matrix as ref
from ..spec import Formula, Implementation, OpSpec
from ..reference import conv2d as loops
from .conv2d import (CORNERS, EXPLICIT_CORNERS, SPECIALS, PLAIN, conv_configs, hyper, forward_reduction_length, make_arrays, output_shape,
    reduction_length)

CONV2D_MATRIX = OpSpec(
    name="conv2d_matrix", arg_names=("x", "w", "b"), configs=conv_configs, make_arrays=make_arrays,
    output_shape=output_shape, hyper=hyper, torch_forward=F.conv2d,
    reference=Implementation.from_module(ref, "conv_matrix", "reference.conv_matrix.conv_matrix"),
    reduction_length=reduction_length, forward_reduction_length=forward_reduction_length,
    linear_args=("x", "w", "b"), alternatives={"loops": Implementation.from_module(loops, "correlate2d", "reference.conv2d.correlate2d")},
    description="2-D cross-correlation as a sparse matrix product vec(y) = M vec(x) + b; backward dx = M^T dy, "
                "dw through im2col", special_values=SPECIALS, corners=CORNERS, explicit_corners=EXPLICIT_CORNERS)
SPECS = [CONV2D_MATRIX]

SEED_EXAMPLE = {"N": 1, "C_in": 1, "C_out": 1, "Hout": 2, "Wout": 2, "kernel": 2, "remainder": 0, **PLAIN}  # 3x3 image
FORMULAS = [
    Formula("conv as a sparse matrix, 3x3 image, 2x2 kernel", "vec(y) = M vec(x) + b, M 4x9 with 4 shared weights",
            "001", "conv2d_matrix", ("forward",), SEED_EXAMPLE),
    Formula("conv as a sparse matrix, general", "vec(y) = M vec(x) + b, M[(k,i,j),(c,iS+sD-P,jS+tD-P)] = w^kc_st",
            "001", "conv2d_matrix", ("forward",), {}),
    Formula("conv backward dx = M^T dy", "dE/dvec(x) = M^T dE/dvec(y) (per sample)", "001", "conv2d_matrix",
            ("x",), {}),
    Formula("conv backward dw via im2col", "dE/dW_mat = sum_n dy[n] cols(x)[n]^T, db^k = sum_n,i,j dy[n,k,i,j]",
            "001", "conv2d_matrix", ("w", "b"), {}),
]
