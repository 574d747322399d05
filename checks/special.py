"""Special values placed in a case's arrays on purpose (``OpSpec.special_values``): exact zeros, one value repeated
across a tensor, very small and very large magnitudes. Each maker returns a transform
(config, arrays, rng) -> arrays that changes one argument and leaves the others as drawn; the spec lists the kinds
its op allows (a ReLU gets no tiny values: they would sit within the stencil's reach of its kink)."""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

Transform = Callable[[Mapping, Mapping[str, np.ndarray], np.random.Generator], dict]

#: magnitudes of the "tiny" and "huge" kinds: far from O(1), well inside float64's range, and within what the
#: oracles resolve. For arguments the adjoint test perturbs by O(1) (linear ops: conv, dense, mean pooling) the
#: forward's rounding, relative to |A u|, grows with |f(a)| / |A u|: at 1e6 apart the references' own rounding
#: reaches 1e-11 relative, above ADJOINT_RTOL (measured on conv and dense), at 1e3 apart it stays far below it.
TINY_SCALE, HUGE_SCALE = 1e-3, 1e3
#: for ops the adjoint test perturbs only within MARGIN (piecewise-linear: ReLU, max pooling) or not at all
VERY_HUGE_SCALE = 1e6
#: the size of saturated inputs of sigmoid and tanh: f' ~ e^-30 ~ 1e-13, still a normal number
SATURATED = 30.0


def _with(arrays, name, value) -> dict:
    return {**arrays, name: np.asarray(value, dtype=np.float64)}


def exact_zeros(name: str) -> Transform:
    """About half of ``name``'s elements set to exactly 0.0 (at least one): a derivative at 0 computed as 0 by a
    ``where(x > 0, ...)``/``x != 0`` slip shows."""
    def transform(config, arrays, rng):
        a = np.array(arrays[name], dtype=np.float64)
        mask = rng.random(a.shape) < 0.5
        mask.reshape(-1)[rng.integers(a.size)] = True
        return _with(arrays, name, np.where(mask, 0.0, a))
    return transform


def all_zeros(name: str) -> Transform:
    """Every element of ``name`` exactly 0.0 (e.g. logits: a uniform softmax)."""
    return lambda config, arrays, rng: _with(arrays, name, np.zeros_like(arrays[name]))


def repeated(name: str) -> Transform:
    """One value repeated across the whole of ``name``: code that indexes by value, sorts or deduplicates shows."""
    def transform(config, arrays, rng):
        return _with(arrays, name, np.full(np.shape(arrays[name]), rng.standard_normal()))
    return transform


def scaled(name: str, factor: float) -> Transform:
    """``name`` times ``factor`` (TINY_SCALE, HUGE_SCALE): magnitudes far from O(1), spacing kept proportionally."""
    return lambda config, arrays, rng: _with(arrays, name, factor * np.asarray(arrays[name], dtype=np.float64))


def saturated(name: str, size: float = SATURATED) -> Transform:
    """Every element of ``name`` at +-(size + |normal|): saturated sigmoid/tanh, f' ~ e^-size."""
    def transform(config, arrays, rng):
        shape = np.shape(arrays[name])
        return _with(arrays, name, rng.choice([-1.0, 1.0], size=shape) * (size + np.abs(rng.standard_normal(shape))))
    return transform


def unnormalised_rows(name: str) -> Transform:
    """Non-negative target rows that do not sum to 1: each row times a factor in [0.25, 3], one row set to 0 when
    there are several (losses defined for any t >= 0, such as -sum t log softmax(z))."""
    def transform(config, arrays, rng):
        t = np.array(arrays[name], dtype=np.float64)
        factors = rng.uniform(0.25, 3.0, size=t.shape[:-1] + (1,))
        if t.shape[0] > 1:
            factors[rng.integers(t.shape[0])] = 0.0
        return _with(arrays, name, t * factors)
    return transform
