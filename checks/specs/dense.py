"""Fully connected layer y = x W + b on a batch: x (N, m), W (m, n), b (n,)."""
from __future__ import annotations

from hypothesis import strategies as st

from ..reference import dense as ref
from ..spec import Formula, Implementation, OpSpec
from ..special import HUGE_SCALE, TINY_SCALE, exact_zeros, repeated, scaled
from ..strategies import normal, pick


def dense_configs(**fixed):
    """Batch N (1 and more), inputs m and outputs n (1 and more; m == n and m != n both drawn)."""
    return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)), "m": pick(fixed, "m", st.integers(1, 4)),
                                  "n": pick(fixed, "n", st.integers(1, 4))})


DENSE = OpSpec(
    name="dense", arg_names=("x", "W", "b"), configs=dense_configs,
    make_arrays=lambda c, rng: {"x": normal(rng, (c["N"], c["m"])), "W": normal(rng, (c["m"], c["n"])),
                                "b": normal(rng, (c["n"],))},
    output_shape=lambda c: (c["N"], c["n"]), hyper=lambda c: {}, torch_forward=lambda x, W, b: x @ W + b,
    reference=Implementation.from_module(ref, "dense", "reference.dense.dense"),
    reduction_length=lambda c: max(c["m"] + 1, c["N"], c["n"]), forward_reduction_length=lambda c: c["m"] + 1,
    linear_args=("x", "W", "b"),
    description="fully connected layer y = x W + b",
    special_values={"zeros": exact_zeros("x"), "repeated": repeated("W"), "tiny": scaled("x", TINY_SCALE),
                    "huge": scaled("x", HUGE_SCALE)},
    corners=(("one sample, one input, one output", {"N": 1, "m": 1, "n": 1}),))

SPECS = [DENSE]

FORMULAS = [
    Formula("dense forward", "y_i = sum_k w_ki x_k + b_i", "004", "dense", ("forward",), {}),
    Formula("dense dE/dW = x^T delta", "dE/dw_ki = delta_i x_k", "004", "dense", ("W",), {}),
    Formula("dense dE/db = delta, summed over the batch", "dE/db_i = sum_p delta_pi", "004", "dense", ("b",), {}),
    Formula("dense dE/dx = delta W^T", "dE/dx_k = sum_i delta_i w_ki", "004", "dense", ("x",), {}),
    Formula("dense, one sample as 004 writes it", "dE/dW = x^T delta, dE/db = delta, dE/dx = delta W^T", "004",
            "dense", ("forward", "x", "W", "b"), {"N": 1}),
]
