"""Hand-built configurations at a requested number of input elements (Hypothesis generates only small cases).

Each op has a one-parameter family of configurations, growing in the spatial side (or the batch) s; the benchmark
takes the member whose number of input elements (the sum of the differentiable arrays' sizes: what gradcheck
perturbs one by one) is closest to the target.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from checks.spec import OpSpec


def _window(axis: str, k: int, s: int, p: int, n: int) -> dict:
    return {f"k{axis}": k, f"s{axis}": s, f"d{axis}": 1, f"p{axis}": p, axis.upper(): n}


def conv2d(side: int) -> dict:
    """N=2, C_in=3, C_out=2, 3x3 kernel, stride 1, padding 1: y has 2/3 the size of x."""
    return {"N": 2, "C_in": 3, "C_out": 2, **_window("h", 3, 1, 1, side), **_window("w", 3, 1, 1, side)}


#: op name -> family of configurations (side -> config); ops appear in the table in this order
FAMILIES: dict[str, Callable[[int], dict]] = {
    "conv2d": conv2d,
}


def input_elements(spec: OpSpec, config: Mapping[str, Any]) -> int:
    arrays = spec.make_arrays(config, np.random.default_rng(0))
    return int(sum(arrays[name].size for name in spec.differentiable))


def config_near(spec: OpSpec, family: Callable[[int], dict], target: int) -> dict:
    """The family member with the input-element count closest to ``target`` (bisection on the side)."""
    lo, hi = 1, 2
    while input_elements(spec, family(hi)) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if input_elements(spec, family(mid)) < target else (lo, mid)
    return min((family(lo), family(hi)), key=lambda c: abs(input_elements(spec, c) - target))
