"""Small composable Hypothesis strategies for layer configurations and inputs.

Every default strategy here is valid by construction (no ``filter``/``assume``): sizes are derived from the
quantities that must be consistent, so Hypothesis never discards examples, and it shrinks towards the smallest values
first (batch 1, one channel, kernel 1, stride 1, no padding, no dilation, the smallest output).

A caller (a formula row, a plug-in's limits) may fix or bound any field by a value, a set of values (set, list,
range) or a strategy. The fields' validity rules still hold then: what depends on a limited field is drawn from the
values that keep the rules (a padding limit draws kernels wide enough for it), and a draw of a caller's set or
strategy that breaks a rule is rejected, never handed to a layer (``within``).
"""
from __future__ import annotations

from numbers import Integral
from typing import Any, Mapping

import numpy as np
from hypothesis import assume, strategies as st

from . import tolerance


#: what a limit may be besides a value or a strategy: several values, one of which is drawn
VALUE_SETS = (set, frozenset, list, range)


def as_strategy(value: Any) -> st.SearchStrategy:
    """A limit as a strategy: a strategy as given, a set of values sampled (smallest first), a value as st.just."""
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, VALUE_SETS):
        return st.sampled_from(sorted(int(v) if isinstance(v, Integral) else v for v in value))
    return st.just(int(value) if isinstance(value, Integral) and not isinstance(value, bool) else value)


def pick(fixed: Mapping[str, Any], key: str, default: st.SearchStrategy) -> st.SearchStrategy:
    """The strategy for one field: a fixed value (st.just), a set of values, a caller's strategy, or the default."""
    if key not in fixed or fixed[key] is None:
        return default
    return as_strategy(fixed[key])


def within(fixed: Mapping[str, Any], key: str, default: st.SearchStrategy, *, floor: int = 1,
           low: int | None = None, high: int | None = None) -> st.SearchStrategy:
    """The strategy for a field with validity rules: the default, or the caller's limit kept inside the rules.

    floor:     the smallest value the field can ever take (1 for a stride, 0 for a padding); a fixed value below it
               is the caller's mistake, said at once (InvalidArgument names the field and the rule).
    low, high: the bounds the other fields drawn so far allow (a kernel at least as wide as the padding needs);
               a limit's draw outside them is rejected, so such a draw never reaches a layer.
    """
    if key not in fixed or fixed[key] is None:
        return default
    value = fixed[key]
    if not isinstance(value, (st.SearchStrategy, *VALUE_SETS)) and (not isinstance(value, Integral)
                                                                    or value < floor):
        from hypothesis.errors import InvalidArgument
        raise InvalidArgument(f"{key}={value!r}: {key} is an integer of at least {floor}")
    low = floor if low is None else max(low, floor)
    return as_strategy(value).filter(lambda v: low <= v and (high is None or v <= high))


class Tied:
    """A limit on an alias (stride, padding, ...) that sets both axes to one draw: ``Tied(limit)`` or ``Tied()``
    (both axes drawn as the first axis is by default)."""

    def __init__(self, limit: Any = None):
        self.limit = limit

    def __repr__(self) -> str:  # how reports show the limit: "stride=tied", "stride=tied to {1, 2}"
        return "tied" if self.limit is None else f"tied to {self.limit!r}"


class SameAs:
    """Stands for the value drawn for another field (the first axis of a tied pair); ``resolve_ties`` replaces it."""

    def __init__(self, field: str):
        self.field = field

    def __repr__(self) -> str:
        return f"SameAs({self.field!r})"


def expand_pairs(fixed: Mapping[str, Any], pairs: Mapping[str, tuple[str, str]]) -> dict:
    """Let an alias stand for both axes: ``stride=2`` for ``sh=2, sw=2``; ``stride=(1, 2)`` for ``sh=1, sw=2``; a
    set, a strategy or ``Tied(...)`` for one draw used on both axes (the second axis ``SameAs`` the first). A field
    given by its own name wins over the alias."""
    out = dict(fixed)
    for alias, (first, second) in pairs.items():
        if alias not in out:
            continue
        value = out.pop(alias)
        if isinstance(value, tuple):
            if len(value) != 2:
                from hypothesis.errors import InvalidArgument
                raise InvalidArgument(f"{alias}={value!r}: a tuple gives ({first}, {second}), two values")
            out.setdefault(first, value[0])
            out.setdefault(second, value[1])
            continue
        if isinstance(value, Tied):
            value = value.limit
        if value is not None:
            out.setdefault(first, value)
        out.setdefault(second, SameAs(first) if isinstance(value, (type(None), st.SearchStrategy, *VALUE_SETS))
                       else value)
    return out


def resolve_ties(fixed: Mapping[str, Any], drawn: Mapping[str, Any]) -> dict:
    """``fixed`` with each ``SameAs(field)`` replaced by the value drawn for that field (call between the axes)."""
    return {k: drawn[v.field] if isinstance(v, SameAs) and v.field in drawn else v for k, v in fixed.items()}


@st.composite
def window_axis(draw, fixed: Mapping[str, Any], axis: str, *, max_kernel=4, max_stride=3, max_dilation=2,
                max_out=4, padding_rule="half_effective_kernel"):
    """One spatial axis of a sliding-window layer: kernel k, stride s, dilation d, padding p, input size n.

    n = (out - 1) s + d (k - 1) + 1 - 2 p + r with r in [0, s - 1]: r > 0 is the case where (n + 2p - d(k-1) - 1)
    is not divisible by s, so that trailing rows no window reaches exist and must get zero gradient.
    padding_rule "half_effective_kernel" keeps p <= d (k - 1) // 2 (so n >= 1, as torch's conv allows);
    "half_kernel" keeps p <= k // 2 (torch's pooling rule). These rules hold whatever a caller limits: with the
    padding limited, the kernel is drawn wide enough for it; with the input size n limited (H or W: a 32 x 32
    image), the kernel is drawn to fit it and out, r follow from n.
    Field names are suffixed by axis ("h" or "w"): kh, sh, ph, dilh (dilation: "dh" would read as a
    gradient in reports), Hout.
    """
    K, S, D, P, OUT, R, N = (f"k{axis}", f"s{axis}", f"dil{axis}", f"p{axis}", f"{axis.upper()}out", f"r{axis}",
                             axis.upper())
    conv = padding_rule == "half_effective_kernel"

    def pad_max(k, d):  # the padding rule
        return d * (k - 1) // 2 if conv else k // 2

    if N not in fixed and fixed.get(P) in (None, 0):  # the default order: every unlimited draw stays as it was
        k = draw(within(fixed, K, st.integers(1, max_kernel)))
        s = draw(within(fixed, S, st.integers(1, max_stride)))
        d = draw(within(fixed, D, st.integers(1, max_dilation)))
        p = draw(within(fixed, P, st.integers(0, pad_max(k, d)), floor=0))
    else:  # padding or input size limited: draw them first, then a kernel that keeps the rules
        s = draw(within(fixed, S, st.integers(1, max_stride)))
        d = draw(within(fixed, D, st.integers(1, max_dilation)))
        p = draw(within(fixed, P, st.just(None), floor=0))
        n = draw(within(fixed, N, st.just(None)))
        if n is not None and (OUT in fixed or R in fixed):
            from hypothesis.errors import InvalidArgument
            raise InvalidArgument(f"{N} and {OUT if OUT in fixed else R} are both limited: the input size {N} "
                                  f"determines {OUT} and {R} (with the kernel, stride, padding); limit one of them")
        # smallest k with pad_max >= p; a kernel the caller fixed to one value is taken as asked (a corner such as
        # a 1-wide kernel with padding 1, every tap of the border windows in padding): only n >= 1 is kept then
        k_low = 1 if p is None or isinstance(fixed.get(K), int) else max(1, -(-2 * p // d) + 1 if conv else 2 * p)
        k_high = max(max_kernel, k_low)
        if n is not None:  # the widened kernel fits the padded input: d (k - 1) + 1 <= n + 2 p
            k_high = min(k_high, (n - 1 + 2 * (p or 0)) // d + 1)
        assume(k_low <= k_high)  # else no kernel keeps the rules with this stride, dilation, padding and size
        k = draw(within(fixed, K, st.integers(k_low, k_high), low=k_low, high=k_high))
        if p is None:
            p = draw(st.integers(0, pad_max(k, d)))
        if n is not None:  # out and r follow from n
            return {K: k, S: s, D: d, P: p, N: n}
    out = draw(within(fixed, OUT, st.integers(1, max_out)))
    r = draw(within(fixed, R, st.integers(0, s - 1), floor=0, high=s - 1))
    n = (out - 1) * s + d * (k - 1) + 1 - 2 * p + r
    if n < 1:  # pooling with p = k // 2 and no remainder: grow the input to one cell (out follows from n)
        n = 1
    return {K: k, S: s, D: d, P: p, N: n}


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
    return tuple((name, fields) for name, fields in spec.corners if not set(fields) & taken
                 and not _outside_padding_limit(fields, taken) and _drawable(spec, fixed, fields))


def _outside_padding_limit(fields: Mapping[str, Any], taken) -> bool:
    """Whether a corner fixes a kernel to one int (taken as asked, outside the padding rule: ``window_axis``) on an
    axis whose padding the caller limited: the caller's padding keeps the rule, so the corner's kernel cannot."""
    return any(k in ("kh", "kw") and isinstance(v, Integral) and f"p{k[1:]}" in taken for k, v in fields.items())


#: attempts to draw a corner's configuration within the caller's limits before it is found unusable
CORNER_ATTEMPTS = 20
_DRAWABLE: dict = {}


def _drawable(spec, fixed: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Whether some configuration keeps both the caller's limits and the corner's fields (an input size limited
    while the corner fixes the output size; tied axes copying a corner's kernel to an axis it did not size for):
    a corner that cannot be drawn is left out, not drawn in vain (cached per op, limits and corner)."""
    key = (spec.name, id(spec), repr(sorted(fixed.items(), key=lambda kv: kv[0])), repr(sorted(fields.items())))
    if key not in _DRAWABLE:
        from hypothesis.errors import InvalidArgument, StopTest
        from .options import _draw_once
        strategy, found = spec.configs(**fixed, **fields), False
        for seed in range(CORNER_ATTEMPTS):
            try:
                _draw_once(strategy, seed)
                found = True
                break
            except InvalidArgument:  # the limits and the corner fix fields that exclude each other
                break
            except (Exception, StopTest):  # a rejected draw (assume, filter, StopTest): try another
                continue
        _DRAWABLE[key] = found
    return _DRAWABLE[key]


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
    corners = tuple(c for c in usable_corners(spec, fixed) if c[0] not in spec.explicit_corners)
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
