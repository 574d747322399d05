"""Hand-built configurations at a requested number of input elements (Hypothesis generates only small cases).

Each op has a one-parameter family of configurations, growing in the spatial side (or the batch) s; the benchmark
takes the member whose number of input elements (the sum of the differentiable arrays' sizes: what gradcheck
perturbs one by one) is closest to the target.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from cnn_gradcheck.spec import OpSpec


def _window(k: int, s: int, p: int, n: int, dilation: bool = True) -> dict:
    """The same window on both axes (field names as in cnn_gradcheck.strategies.window_axis)."""
    out = {}
    for axis in "hw":
        out.update({f"k{axis}": k, f"s{axis}": s, f"p{axis}": p, axis.upper(): n})
        if dilation:
            out[f"dil{axis}"] = 1
    return out


def conv2d(side: int) -> dict:
    """N=2, C_in=3, C_out=2, 3x3 kernel, stride 1, padding 1: y has 2/3 the size of x."""
    return {"N": 2, "C_in": 3, "C_out": 2, **_window(3, 1, 1, side)}


def maxpool2d(side: int) -> dict:
    """N=2, C=3, overlapping 3x3 windows, stride 2, padding 1 (as after a ResNet stem)."""
    return {"N": 2, "C": 3, **_window(3, 2, 1, side, dilation=False)}


def meanpool2d(side: int) -> dict:
    """N=2, C=3, 2x2 windows, stride 2."""
    return {"N": 2, "C": 3, **_window(2, 2, 0, side, dilation=False)}


def dense(side: int) -> dict:
    """Batch 8, a square layer of ``side`` inputs and outputs: most input elements are weights."""
    return {"N": 8, "m": side, "n": side}


def softmax_cross_entropy(side: int) -> dict:
    """``side`` samples of 10 classes, one-hot targets (the targets are constants: not input elements)."""
    return {"N": side, "K": 10, "scale": 1.0, "offset": 0.0, "targets": "one-hot"}


#: op name -> family of configurations (side -> config); ops appear in the table in this order
FAMILIES: dict[str, Callable[[int], dict]] = {
    "conv2d": conv2d,
    "maxpool2d": maxpool2d,
    "meanpool2d": meanpool2d,
    "dense": dense,
    "softmax_cross_entropy": softmax_cross_entropy,
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
