"""A plug-in's options, checked before any of its code runs: the op's name, the axes permutations, the limits (the
part of the configuration space it supports). A mistake there is the user's option, not the layer's, and is named as
such (``PluginOptionError``)."""
from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings as hyp_settings, strategies as st

from .layouts import PluginOptionError
from .registry import all_specs
from .spec import Case, OpSpec


# ------------------------------------------------------------------------------- options, checked before any call

def _option_error(spec: OpSpec, option: str, detail: str) -> PluginOptionError:
    return PluginOptionError(f"{spec.name}: bad plug-in option {option}: {detail}")


def op_spec(op: str | OpSpec) -> OpSpec:
    """The spec of an op by name; an unknown name is reported with the known ones."""
    if isinstance(op, OpSpec):
        return op
    specs = all_specs()
    if op not in specs:
        raise PluginOptionError(f"unknown op {op!r}; known ops: {', '.join(sorted(specs))}")
    return specs[op]


def check_axes(spec: OpSpec, axes: Mapping[str, Any], ndims: Mapping[str, int] | None = None) -> None:
    """Each ``axes`` entry names an argument of the op (or "y") and is a permutation of its axes: of range(ndim)
    when the arrays' ndims are known (a probe case), else at least of range(len(perm))."""
    known = (*spec.arg_names, "y")
    for name, perm in axes.items():
        option = f"axes[{name!r}]={perm!r}"
        if name not in known:
            raise _option_error(spec, option, f"{spec.name} has no argument {name!r}; axes are given for "
                                f"{', '.join(known)} (y: the output and dy)")
        try:
            entries = [int(i) for i in perm]
            exact = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in perm)
        except (TypeError, ValueError):
            entries, exact = [], False
        size = len(entries) if ndims is None else ndims[name]
        if not exact or sorted(entries) != list(range(size)):
            raise _option_error(spec, option, f"not a permutation of the {size} axes of {name} "
                                f"({tuple(range(size))} in some order, from the canonical axes to the plug-in's)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def _limit_aliases(spec: OpSpec) -> tuple[str, ...]:
    """The aliases (stride, padding, ...) an op's configuration strategy expands into several fields."""
    return tuple(getattr(sys.modules.get(spec.configs.__module__), "ALIASES", {}) or ())


def check_limits(spec: OpSpec, limits: Mapping[str, Any]) -> Case:
    """The smallest case within the limits, after checking that every limit is a configuration field or an alias the
    strategy used (one draw with each value wrapped so that drawing it is seen) and that the limits describe a valid
    configuration (a draw and the probe case raise nothing)."""
    shown = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in limits.items()) + "}"
    used: set = set()

    def seen(key, value):
        strategy = value if isinstance(value, st.SearchStrategy) else st.just(value)
        return strategy.map(lambda v: (used.add(key), v)[1])

    try:
        config = _sample(spec.configs(**{k: seen(k, v) for k, v in limits.items()}), 1)[0]
        probe = _minimal_case(spec, limits)
        empty = [f"{n} has shape {np.shape(a)}" for n, a in probe.arrays.items() if np.size(a) == 0]
        if empty:  # valid for the strategy, but nothing to check (and the oracles' reshapes fail on it)
            raise ValueError(f"empty arrays: {', '.join(empty)} at {probe.describe()}")
    except Exception as e:  # an invalid value (stride 0, N = 0, a wrong type): the strategy or make_case refused it
        raise _option_error(spec, f"limits {shown}", f"they do not describe a valid configuration of "
                            f"{spec.name}: {type(e).__name__}: {_first_line(e)}") from None
    unknown = [k for k in limits if k not in config and k not in used]
    if unknown:
        aliases = _limit_aliases(spec)
        raise _option_error(spec, f"limits {shown}", f"{spec.name} has no configuration field "
                            f"{', '.join(map(repr, unknown))}; its fields are {', '.join(config)}"
                            + (f", and the aliases {', '.join(aliases)} set both axes at once" if aliases else ""))
    return probe


def _sample(strategy: st.SearchStrategy, count: int) -> list:
    """``count`` deterministic draws (configuration dicts only: cheap)."""
    out: list = []

    @hyp_settings(max_examples=count, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        out.append(value)

    collect()
    return out


_MINIMAL: dict = {}


def _minimal_case(spec: OpSpec, fixed: Mapping[str, Any]) -> Case:
    """The smallest case within the limits (what shrinking would end at): the probe that checks the calling
    convention before the property runs. Cached: finding it shrinks, which takes a second."""
    from hypothesis import find
    key = (spec.name, repr(sorted(fixed.items())))
    if key not in _MINIMAL:
        _MINIMAL[key] = find(spec.cases(**fixed), lambda case: True,
                             settings=hyp_settings(database=None, max_examples=10, derandomize=True, deadline=None))
    return _MINIMAL[key]


