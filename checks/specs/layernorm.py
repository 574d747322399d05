"""Layer normalisation over the trailing dimensions (torch's LayerNorm): of (N, K) rows, and of (N, C, H, W) maps
over (W), (H, W) or (C, H, W); gamma and beta have the normalised shape."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import layernorm as ref
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick
from .batchnorm import EPSILONS, OFFSETS


def _common(draw, fixed):
    return {"eps": draw(pick(fixed, "eps", st.sampled_from(EPSILONS))),
            "offset": draw(pick(fixed, "offset", st.sampled_from(OFFSETS)))}


@st.composite
def rows_configs(draw, **fixed):
    """N rows of K >= 1 values. One value is normalised to 0: y = beta whatever x is, dx = dgamma = 0 exactly, and
    torch's dx there is a rounding residue (policy 1b's float64 realisations at c dy size it)."""
    return {"N": draw(pick(fixed, "N", st.integers(1, 3))), "K": draw(pick(fixed, "K", st.integers(1, 4))),
            **_common(draw, fixed)}


@st.composite
def maps_configs(draw, **fixed):
    """N, C, H, W and ``dims``, the number of trailing dimensions normalised (1: W, 2: H W, 3: C H W); a row may
    hold one value (D = 1: y = beta, as in ``rows_configs``)."""
    c = {"N": draw(pick(fixed, "N", st.integers(1, 2))), "C": draw(pick(fixed, "C", st.integers(1, 2))),
         "H": draw(pick(fixed, "H", st.integers(1, 2))), "dims": draw(pick(fixed, "dims", st.integers(1, 3)))}
    c["W"] = draw(pick(fixed, "W", st.integers(1, 3)))
    c.update(_common(draw, fixed))
    return {key: c[key] for key in ("N", "C", "H", "W", "dims", "eps", "offset")}


def rows_shape(c):
    return (c["N"], c["K"])


def maps_shape(c):
    return (c["N"], c["C"], c["H"], c["W"])


def _normalized(shape_of):
    def normalized_shape(c):
        shape = shape_of(c)
        return shape[len(shape) - c.get("dims", 1):]
    return normalized_shape


def _arrays(shape_of):
    def make_arrays(c, rng):
        """Each row: offset + its own mean + values with a standard deviation in [0.5, 2] (a row of nearly equal
        values makes sigma ~ sqrt(eps) and the op ill-conditioned, so the spread is set)."""
        shape, norm = shape_of(c), _normalized(shape_of)(c)
        R, D = int(np.prod(shape[:len(shape) - len(norm)])), int(np.prod(norm))
        z = normal(rng, (R, D))
        z -= z.mean(axis=1, keepdims=True)
        z /= np.maximum(z.std(axis=1, keepdims=True), 1e-300)
        x = c["offset"] + normal(rng, (R, 1)) + rng.uniform(0.5, 2.0, size=(R, 1)) * z
        return {"x": x.reshape(shape), "gamma": normal(rng, norm), "beta": normal(rng, norm)}
    return make_arrays


def _one_value_terms(shape_of):
    def one_value_terms(c, arrays, dy):
        """Sizes of dgamma's terms at D = 1 only (policy 1a; nothing declared from D = 2 on): dgamma = sum_r delta xhat
        is exactly 0, and torch's is sum_r delta_r (rstd x_r - rstd mu_r) with mu_r = x_r, a residue of terms of size
        |delta| |x| rstd that does not depend on delta: the realisations at c dy repeat it bit for bit and the float32
        probe's own residue sizes it only by chance (1 false alarm in 9000 cases of D = 1, docs/rounding.md).
        As batch norm's a = (|x| + |mu|) / sigma with sigma = sqrt(eps): sum_r |delta| 2 |x| / sqrt(eps)."""
        norm = _normalized(shape_of)(c)
        if int(np.prod(norm)) > 1:
            return {}
        x, ady = np.abs(arrays["x"]).reshape(-1, 1), np.abs(dy).reshape(-1, 1)
        return {"dgamma": (ady * 2 * x / np.sqrt(c["eps"])).sum(axis=0).reshape(norm)}
    return one_value_terms


def _spec(name, configs, shape_of, description):
    normalized_shape = _normalized(shape_of)
    return OpSpec(
        name=name, arg_names=("x", "gamma", "beta"), configs=configs, make_arrays=_arrays(shape_of),
        output_shape=shape_of,
        hyper=lambda c: {"normalized_shape": normalized_shape(c), "eps": c["eps"]},
        torch_forward=lambda x, gamma, beta, normalized_shape, eps: F.layer_norm(x, normalized_shape, gamma, beta,
                                                                                 eps),
        reference=Implementation.from_module(ref, "layernorm", "reference.layernorm.layernorm"),
        # the row statistics (D terms), then gamma's and beta's sums over the rows (R terms)
        reduction_length=lambda c: 2 * int(np.prod(shape_of(c))),
        linear_args=("gamma", "beta"), description=description,
        # at D = 1 only: torch's dgamma there is a residue independent of dy, which policy 1b cannot size
        magnitudes=_one_value_terms(shape_of))


LAYERNORM = _spec("layernorm", rows_configs, rows_shape,
                  "LayerNorm over the K values of each row of (N, K), gamma and beta (K,), eps")
LAYERNORM2D = _spec("layernorm2d", maps_configs, maps_shape,
                    "LayerNorm of (N, C, H, W) over the last dims (W), (H, W) or (C, H, W), gamma and beta of that "
                    "shape, eps")
SPECS = [LAYERNORM, LAYERNORM2D]

FORMULAS = [
    Formula("layer norm forward, per row", "y = gamma (x - mu_r) / sqrt(var_r + eps) + beta; mu_r, var_r over d",
            "torch convention", "layernorm", ("forward",), {}),
    Formula("layer norm dE/dx through the row statistics",
            "dx = (D g - sum_d g - xhat sum_d g xhat) / (D sigma_r), g = gamma delta", "torch convention",
            "layernorm", ("x",), {}),
    Formula("layer norm dE/dgamma, dE/dbeta (shared by the rows)",
            "dgamma = sum_r delta xhat; dbeta = sum_r delta", "torch convention", "layernorm", ("gamma", "beta"), {}),
    Formula("layer norm of maps over (C, H, W)", "the same with d = (c, i, j), gamma (C, H, W)", "torch convention",
            "layernorm2d", ("forward", "x", "gamma", "beta"), {"dims": 3}),
    Formula("layer norm of maps over (H, W) or (W)", "rows r = (n, c) or (n, c, i)", "torch convention",
            "layernorm2d", ("forward", "x", "gamma", "beta"), {"dims": st.integers(1, 2)}),
    Formula("layer norm with inputs offset by 10", "the same; x - mu computed after the mean (two passes)",
            "torch convention", "layernorm2d", ("forward", "x", "gamma", "beta"), {"offset": 10.0}),
]
