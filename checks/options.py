"""A plug-in's options, checked before any of its code runs: the op's name, the axes permutations, the limits (the
part of the configuration space it supports). A mistake there is the user's option, not the layer's, and is named as
such (``PluginOptionError``)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings as hyp_settings, strategies as st

from .layouts import PluginOptionError
from .registry import all_specs
from .spec import Case, OpSpec
from .strategies import SameAs, Tied


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


#: the aliases that stand for one hyperparameter on both spatial axes (the naming of strategies.window_axis)
PAIRS = {"stride": ("sh", "sw"), "padding": ("ph", "pw"), "dilation": ("dilh", "dilw"), "kernel": ("kh", "kw"),
         "remainder": ("rh", "rw"), "size": ("H", "W"), "out": ("Hout", "Wout")}
#: names an op may accept besides its configuration's fields and the aliases (output sizes, remainders per axis)
_EXTRA_NAMES = ("Hout", "Wout", "rh", "rw")
_NAMES: dict = {}


class _Drawn(Exception):
    """Raised by the probe that ``limit_names`` puts in place of a limit: the op's strategy drew from it."""


def _probe(name):
    raise _Drawn(name)


def limit_names(spec: OpSpec) -> dict[str, tuple[str, ...]]:
    """The names a plug-in may limit for ``spec``: {"fields": configuration fields the generator draws (in report
    order), "aliases": names for both axes at once, "other": other names it draws from (Hout, rh, ...),
    "derived": configuration fields computed from the others (not limitable)}. Found by asking the op's strategy:
    a name it draws from is one whose strategy, a probe that raises when drawn, is drawn."""
    if spec.name not in _NAMES:
        config = _draw_once(spec.configs())

        def drawn(name):
            try:
                _draw_once(spec.configs(**{name: st.just(name).map(_probe)}))
            except _Drawn:
                return True
            except Exception:  # the strategy could not use a probe in its place: it reads this name
                return True
            return False

        _NAMES[spec.name] = {
            "fields": tuple(k for k in config if drawn(k)),
            "aliases": tuple(k for k in PAIRS if k not in config and drawn(k)),
            "other": tuple(k for k in _EXTRA_NAMES if k not in config and drawn(k)),
            "derived": tuple(k for k in config if not drawn(k))}
    return _NAMES[spec.name]


def merge_limits(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
    """``old`` updated by ``new``, where a limit in ``new`` replaces every limit of ``old`` on the same fields: an
    alias replaces its two fields and a field replaces the alias that covered it (``padding=0`` after ``ph=1``)."""
    def covers(a, b):
        return a == b or b in PAIRS.get(a, ()) or a in PAIRS.get(b, ())
    kept = {k: v for k, v in old.items() if not any(covers(n, k) for n in new)}
    return {**kept, **new}


def plugin_limits(spec: OpSpec, plug, limits: Mapping[str, Any] | None = None) -> dict:
    """The configuration limits a check of ``plug`` draws within: its limits, those given to the check (replacing
    the plug-in's on the same fields), and its tied axes (``tied``, ``scalar``, ``square``) as ``Tied`` limits."""
    fixed = merge_limits(plug.limits, limits or {})
    tied = tied_names(plug)
    if tied:
        names = limit_names(spec)
        unknown = [t for t in tied if t not in names["aliases"]]
        if unknown:
            option = "scalar/tied/square" if plug.scalar else "tied"
            raise _option_error(spec, f"{option}={tuple(tied)!r}", f"{spec.name} has no pair of axes "
                                f"{', '.join(map(repr, unknown))}; " + (
                                    f"its pairs are {', '.join(names['aliases'])}" if names["aliases"] else
                                    "its hyperparameters are not per axis"))
        for name in tied:
            value = fixed.get(name)
            if isinstance(value, tuple) and len(set(value)) > 1:
                raise _option_error(spec, f"limits {name}={value!r}", f"{name} is declared tied (both axes one "
                                    f"value), but the limit gives two different values")
            first, second = PAIRS[name]
            if first in fixed or second in fixed:  # one axis limited by its field: the other follows it
                given = {k: fixed[k] for k in (first, second) if k in fixed}
                if len(given) == 2 and repr(given[first]) != repr(given[second]):
                    raise _option_error(spec, f"limits {given!r}", f"{name} is declared tied (both axes one "
                                        f"value), but {first} and {second} are limited differently")
                fixed[first] = given.get(first, given.get(second))
                fixed[second] = SameAs(first)
            else:
                fixed[name] = Tied(value[0] if isinstance(value, tuple) else value)
    return fixed


def tied_names(plug) -> tuple[str, ...]:
    """The aliases a plug-in declares tied: ``tied`` and ``scalar`` (which passes an int too), ``square`` (kernel and
    input size)."""
    names = (*plug.tied, *plug.scalar, *(("kernel", "size") if plug.square else ()))
    return tuple(dict.fromkeys(names))


def as_scalars(hyper: Mapping[str, Any], scalar) -> dict:
    """The hyperparameters with each pair named in ``scalar`` passed as one int (its axes are drawn equal)."""
    return {k: v[0] if k in scalar and isinstance(v, tuple) and len(set(v)) == 1 else v for k, v in hyper.items()}


def _describe_names(spec: OpSpec) -> str:
    names = limit_names(spec)
    text = f"its fields are {', '.join(names['fields'])}"
    if names["aliases"]:
        text += f", and the aliases {', '.join(names['aliases'])} set both axes at once"
    if names["other"]:
        text += f"; also accepted: {', '.join(names['other'])}"
    if names["derived"]:
        text += f" ({', '.join(names['derived'])}: computed from the others, not limited directly)"
    return text


def check_limits(spec: OpSpec, limits: Mapping[str, Any]) -> Case:
    """The smallest case within the limits, after checking that every limit names something the op's strategy draws
    (a field, an alias, an output size: ``limit_names``), that each is a value, a set of values or a strategy (a
    tuple only for an alias: one value per axis), and that the limits describe a valid configuration (a draw and
    the probe case raise nothing; the fields' validity rules hold under any limits)."""
    shown = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in limits.items()) + "}"
    names = limit_names(spec)
    accepted = {*names["fields"], *names["aliases"], *names["other"]}
    unknown = [k for k in limits if k not in accepted]
    if unknown:
        derived = [k for k in unknown if k in names["derived"]]
        raise _option_error(spec, f"limits {shown}", f"{spec.name} has no configuration field "
                            f"{', '.join(map(repr, unknown))}" + (" that can be limited" if derived else "")
                            + f"; {_describe_names(spec)}")
    for k, v in limits.items():
        if isinstance(v, tuple) and k not in names["aliases"]:
            raise _option_error(spec, f"limits {shown}", f"{k}={v!r}: a tuple gives one value per axis, for the "
                                f"aliases ({', '.join(names['aliases']) or 'none here'}); several values to draw "
                                f"from are a set {set(v)!r}")
    try:
        _sample(spec.configs(**limits), 1)
        probe = _minimal_case(spec, limits)
        empty = [f"{n} has shape {np.shape(a)}" for n, a in probe.arrays.items() if np.size(a) == 0]
        if empty:  # valid for the strategy, but nothing to check (and the oracles' reshapes fail on it)
            raise ValueError(f"empty arrays: {', '.join(empty)} at {probe.describe()}")
    except Exception as e:  # an invalid value (stride 0, N = 0, a wrong type): the strategy or make_case refused it
        detail = f"{type(e).__name__}: {_first_line(e)}"
        if type(e).__name__ in ("NoSuchExample", "Unsatisfiable", "FailedHealthCheck"):
            detail = ("no configuration keeps both these limits and the op's validity rules (a padding needs a "
                      "kernel wide enough for it, the kernel fits the input, 0 <= remainder < stride)")
        raise _option_error(spec, f"limits {shown}", f"they do not describe a valid configuration of "
                            f"{spec.name}: {detail}") from None
    return probe


def _draw_once(strategy: st.SearchStrategy, seed: int = 0):
    """One draw without a Hypothesis run around it (milliseconds, where a run takes a tenth of a second)."""
    import random
    try:
        from hypothesis.control import BuildContext
        from hypothesis.internal.conjecture.data import ConjectureData
        data = ConjectureData(random=random.Random(seed))
        context = BuildContext(data, is_final=False, wrapped_test=None)
    except Exception:  # internal modules: where they changed, the public (slower) way
        return _sample(strategy, 1)[0]
    with context:
        return data.draw(strategy)


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
        # no "explain" phase: it re-runs the strategy thousands of times to annotate an example find() never shows
        _MINIMAL[key] = find(spec.cases(**fixed), lambda case: True,
                             settings=hyp_settings(database=None, max_examples=10, derandomize=True, deadline=None,
                                                   phases=[p for p in Phase if p != Phase.explain]))
    return _MINIMAL[key]


