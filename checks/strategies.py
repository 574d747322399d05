"""Small composable Hypothesis strategies for layer configurations and inputs.

Every strategy here is valid by construction (no ``filter``/``assume``): sizes are derived from the quantities that
must be consistent, so Hypothesis never discards examples, and it shrinks towards the smallest values first
(batch 1, one channel, kernel 1, stride 1, no padding, no dilation, the smallest output).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from hypothesis import strategies as st

from . import tolerance


def pick(fixed: Mapping[str, Any], key: str, default: st.SearchStrategy) -> st.SearchStrategy:
    """The strategy for one field: a fixed value (st.just), a caller's strategy, or the default."""
    if key not in fixed or fixed[key] is None:
        return default
    value = fixed[key]
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def expand_pairs(fixed: Mapping[str, Any], pairs: Mapping[str, tuple[str, str]]) -> dict:
    """Let ``stride=2`` stand for ``sh=2, sw=2`` (and so on for each alias in ``pairs``)."""
    out = dict(fixed)
    for alias, (first, second) in pairs.items():
        if alias in out:
            value = out.pop(alias)
            out.setdefault(first, value)
            out.setdefault(second, value)
    return out


@st.composite
def window_axis(draw, fixed: Mapping[str, Any], axis: str, *, max_kernel=4, max_stride=3, max_dilation=2,
                max_out=4, padding_rule="half_effective_kernel"):
    """One spatial axis of a sliding-window layer: kernel k, stride s, dilation d, padding p, input size n.

    n = (out - 1) s + d (k - 1) + 1 - 2 p + r with r in [0, s - 1]: r > 0 is the case where (n + 2p - d(k-1) - 1)
    is not divisible by s, so that trailing rows no window reaches exist and must get zero gradient.
    padding_rule "half_effective_kernel" keeps p <= d (k - 1) // 2 (so n >= 1, as torch's conv allows);
    "half_kernel" keeps p <= k // 2 (torch's pooling rule).
    Field names are suffixed by axis ("h" or "w"): kh, sh, ph, dilh (dilation: "dh" would read as a
    gradient in reports), Hout.
    """
    k = draw(pick(fixed, f"k{axis}", st.integers(1, max_kernel)))
    s = draw(pick(fixed, f"s{axis}", st.integers(1, max_stride)))
    d = draw(pick(fixed, f"dil{axis}", st.integers(1, max_dilation)))
    limit = d * (k - 1) // 2 if padding_rule == "half_effective_kernel" else k // 2
    p = draw(pick(fixed, f"p{axis}", st.integers(0, limit)))
    out = draw(pick(fixed, f"{axis.upper()}out", st.integers(1, max_out)))
    r = draw(pick(fixed, f"r{axis}", st.integers(0, s - 1)))
    n = (out - 1) * s + d * (k - 1) + 1 - 2 * p + r
    if n < 1:  # only reachable when a caller fixes padding beyond the rule; grow the output instead
        n = 1
    return {f"k{axis}": k, f"s{axis}": s, f"dil{axis}": d, f"p{axis}": p, axis.upper(): n}


def out_size(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Number of window positions along one axis: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def normal(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return scale * rng.standard_normal(shape)


def away_from_zero(rng: np.random.Generator, shape, margin: float = tolerance.MARGIN, scale: float = 1.0):
    """Values with |x| >= margin (for ReLU-like kinks at 0): sign times (margin + |normal|)."""
    magnitude = margin + scale * np.abs(rng.standard_normal(shape))
    return rng.choice([-1.0, 1.0], size=shape) * magnitude


def distinct_values(rng: np.random.Generator, shape, gap: float = 2 * tolerance.MARGIN, scale: float = 1.0):
    """Values that differ pairwise by at least ``gap`` (no ties anywhere, e.g. inside pooling windows):
    a random permutation of an evenly spaced grid, shifted by one common random offset."""
    count = int(np.prod(shape, dtype=np.int64))
    step = max(gap, 2 * scale / max(count, 1))
    grid = (np.arange(count) - (count - 1) / 2) * step
    return (rng.permutation(grid) + rng.uniform(-step / 4, step / 4)).reshape(shape)


@st.composite
def stride_relative_to_kernel(draw, fixed: Mapping[str, Any], axis: str, relation: str, *, max_kernel=3,
                              max_stride=3) -> dict:
    """Kernel and stride of one axis related as ``relation``: "equal" (s = k, non-overlapping windows),
    "smaller" (s < k, overlapping windows) or "larger" (s > k, cells no window reads). Returns
    {"k<axis>": k, "s<axis>": s} to merge into the fixed fields of ``window_axis``."""
    low = 2 if relation == "smaller" else 1
    k = draw(pick(fixed, f"k{axis}", st.integers(low, max(max_kernel, low))))
    if relation == "equal":
        s = k
    elif relation == "smaller":
        s = draw(st.integers(1, k - 1))
    elif relation == "larger":
        s = draw(st.integers(k + 1, max(max_stride, k + 1)))
    else:
        raise ValueError(f"relation must be 'equal', 'smaller' or 'larger', not {relation!r}")
    return {f"k{axis}": k, f"s{axis}": s}


def probability_rows(rng: np.random.Generator, shape, floor: float = 1.0) -> np.ndarray:
    """Rows (last axis) of positive numbers summing to 1, each at least 1 / ((1 + 1/floor) K): u / sum(u) with
    u uniform in [floor, floor + 1]. Probabilities away from 0 keep ln y smooth within the stencil."""
    u = rng.uniform(floor, floor + 1.0, size=shape)
    return u / u.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ cases: corners and special values on purpose

#: fixed keys that relate several fields at once (formula rows): corners, which fix single fields, stay out of them
RELATIONAL = ("stride_vs_kernel", "square")
#: a drawn case is a corner configuration (or carries special values) in a share of about 1/SPECIAL_SHARE of the
#: cases each; shrinking tries the generic case first
SPECIAL_SHARE = 3


def _aliases(spec) -> Mapping[str, tuple[str, str]]:
    import sys
    return getattr(sys.modules.get(spec.configs.__module__), "ALIASES", {}) or {}


def usable_corners(spec, fixed: Mapping[str, Any]) -> tuple:
    """The spec's corners that fix no field the caller fixed (limits and formula restrictions win over corners)."""
    if not spec.corners or any(k in fixed for k in RELATIONAL):
        return ()
    taken = {k for k, v in expand_pairs(fixed, _aliases(spec)).items() if v is not None}
    return tuple((name, fields) for name, fields in spec.corners if not set(fields) & taken)


def _selected(draw, options: tuple):
    """One of ``options`` in a share 1/SPECIAL_SHARE of the draws, else None; shrinks towards None."""
    if not options:
        return None
    # sampled_from draws about uniformly (st.integers favours small values) and shrinks towards the first entry
    return draw(st.sampled_from((None,) * ((SPECIAL_SHARE - 1) * len(options)) + tuple(options)))


@st.composite
def case_configs(draw, spec, fixed: Mapping[str, Any]):
    """The configurations of ``spec.cases``: ``spec.configs(**fixed)``, in a share of the draws with one of the
    spec's corners fixed on top (recorded as config["corner"]), and in an independent share with special values
    (config["values"], applied by ``OpSpec.make_case``). Both keys are absent in generic cases, so their reports
    and replays stay as they were; Hypothesis shrinks towards the generic case and keeps a corner or special
    values only when the failure needs them. ``fixed`` may force both (config["values"], config["corner"]): the
    search for a smaller case like a failing explicit one (``cnn_gradcheck.explicit.like``)."""
    from .spec import CORNER_KEY, GENERIC, VALUES_KEY
    forced_corner, forced_values = fixed.get(CORNER_KEY), fixed.get(VALUES_KEY)  # a search for one kind of case
    fixed = {k: v for k, v in fixed.items() if k not in (VALUES_KEY, CORNER_KEY)}
    corners = usable_corners(spec, fixed)
    if forced_corner is not None:
        corner = next((c for c in corners if c[0] == forced_corner), None)
    else:
        corner = _selected(draw, corners)
    # the generic configuration is drawn always, the corner's after it: when shrinking sets the selector to the
    # generic case, the (meanwhile shrunk) generic draw is there unchanged, so the corner goes unless it is needed
    config = dict(draw(spec.configs(**fixed)))
    if corner is not None:
        config = dict(draw(spec.configs(**fixed, **corner[1])))
    kind = _selected(draw, tuple(spec.special_values)) if forced_values is None else forced_values
    if kind is not None and kind != GENERIC:
        config[VALUES_KEY] = kind
    if corner is not None:
        config[CORNER_KEY] = corner[0]
    return config
