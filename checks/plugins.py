"""Plug-ins: the user's own layer implementation, adapted to the canonical convention of an op and checked by the
whole property suite (``check_plugin``), and one failing case re-run exactly (``replay``).

The pieces, one module each: ``adapters`` (the shapes user code has -> a Plugin), ``binding`` (a Plugin as an
Implementation of an op, every call guarded), ``options`` (limits and axes, checked before any user code runs),
``coverage`` (what a passing check covered). The adapters are re-exported here, where users look for them.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
from hypothesis import example, given, strategies as st

from . import calls, conventions, explicit, layouts as layouts_mod, profiles
from .adapters import (as_plugin, autograd_function, function_pair, layer_object, load, plugin, torch_function,
                       torch_module)
from .binding import HWIO, NHWC, BoundPlugin, Plugin
from .frameworks import jax_function
from .calls import ImplementationError
from .coverage import PluginReport
from .layouts import PluginOptionError
from .options import check_axes, check_limits, op_spec, plugin_limits
from .property import DEFAULT_SHRINK_BUDGET, ShrinkBudget
from .runner import (CaseResult, check_case, essential_verdict, other_kinds_lines, prefer_real_windows,
                     smallest_verdict)
from .spec import Case, OpSpec

__all__ = ["check_plugin", "replay", "PluginCheckFailure", "PrecisionNote", "plugin", "function_pair", "layer_object",
           "torch_function", "autograd_function", "torch_module", "jax_function", "as_plugin", "load", "NHWC", "HWIO",
           "Plugin",
           "BoundPlugin", "PluginReport", "PluginOptionError"]


class PluginCheckFailure(AssertionError):
    """The plug-in failed the suite; the message is the whole report (no harness traceback needed)."""


class PrecisionNote(UserWarning):
    """The plug-in returns lower-precision results; says which tolerance they were checked under."""


def check_plugin(op: str | OpSpec, implementation: Any, *, limits: Mapping[str, Any] | None = None,
                 layouts=None, settings=None, oracles=None, target: str | None = None,
                 examples=None, time_limit: float | None = None, isolate: bool | None = None,
                 shrink_budget: float | None = DEFAULT_SHRINK_BUDGET) -> PluginReport:
    """Run the property suite that the references pass on a plug-in: every oracle (forward against the reference
    and torch; gradients against finite differences, torch and the adjoint test), generated configurations within
    the plug-in's limits, inputs in every memory layout, shrinking to the minimal failing configuration.

    examples: explicit examples checked first and always, in every layout: dicts with "config" (a complete
    configuration, as a failure report prints it) and one array per argument name, optionally "dy"; at a kink or
    tie they get the subgradient verdict. Every run also checks one typical case per kind of special values of
    the op, cycling through the layouts (``cnn_gradcheck.explicit``).
    settings: Hypothesis settings for this check (default: cnn_gradcheck.profiles.check_settings: the profile your
    project loaded, else the harness's). target: "module:attribute" the plug-in was loaded from, for the
    reproduction line of a failure report. time_limit: seconds one call of the plug-in may take (default 60);
    isolate: run its calls in a worker process, so that a crash or a hang is reported instead of ending the run
    (default: torch and JAX plug-ins on the CPU and plug-ins declaring isolate=True; docs/guards.md).
    shrink_budget: seconds to spend shrinking a failure (from the first failure found; None: no limit); when it
    runs out, the report shows the smallest failure found so far and says it is not fully shrunk.

    Returns a PluginReport (``.summary()`` says what was covered); raises PluginCheckFailure with the report of the
    smallest failing case, or of the first misbehaviour (exception, wrong shape, NaN, mutated input, ...), ending
    with how to re-run exactly that case (``replay``)."""
    __tracebackhide__ = True
    spec = op_spec(op)
    try:
        plug = as_plugin(implementation).with_guards(time_limit, isolate)
    except ImplementationError as e:
        raise PluginCheckFailure(str(e.at(spec.name, "", "any (the plug-in cannot be called at all)"))) from None
    spec = conventions.within_domain(spec, plug.conventions)  # no special values its conventions exclude
    fixed = plugin_limits(spec, plug, limits)  # the plug-in's limits and tied axes, then the check's
    held = optional_held(spec, plug, fixed)  # optional hyperparameters the plug-in's functions do not take
    for extra in held.values():
        fixed = {**extra, **fixed}
    chosen = layouts_mod.check_layouts(layouts or plug.layouts or plug.backend.layouts, f"{spec.name}: ")
    probe = check_limits(spec, fixed)  # options first: a mistake in them is not the plug-in's
    check_axes(spec, plug.axes, {**{n: np.ndim(a) for n, a in probe.arrays.items()},
                                 "y": len(spec.output_shape(probe.config))})
    report = PluginReport(spec, plug, fixed, chosen, held=held)
    last: dict = {}
    explicit_list: list = []
    budget = ShrinkBudget(shrink_budget)
    try:
        bound = plug.bind(spec)
        precision = calls.evaluate(spec, bound, probe).dtype
        if precision != "float64":
            report.precision = precision
            report.precision_note = calls.precision_note(spec, plug.name, precision, probe.config,
                                                         bound.precision_roles)
            warnings.warn(PrecisionNote(report.precision_note), stacklevel=2)

        def body(case: Case, layout: str) -> None:
            key = (case.describe(), layout)
            if budget.skip(key):  # shrink budget spent: only inputs that failed before are checked
                return
            last.update(case=case, layout=layout)
            impl = plug.bind(spec, layout)
            try:
                result = check_case(spec, impl, case, oracles)
            except ImplementationError as e:  # raised in an oracle's own call (adjoint, finite differences)
                budget.failed(key)
                error = e.at(spec.name, impl.name, case.describe())
                error.case, error.layout = case, layout  # to pick the smallest of several failures
                raise error from None
            report.record(case, layout, result, explicit=any(case is c for c, _ in explicit_list))
            result.limits = fixed
            if not result.passed:
                budget.failed(key)
            result.raise_for_failures()

        test = given(spec.cases(**fixed), st.sampled_from(chosen))(body)
        # inputs stage: explicit examples first, always (the user's, then every layout and kind of special values)
        # the check's examples, else those the plug-in carries (what pytest --plugin and the CLI find)
        explicit_list = explicit.explicit_cases(spec, fixed, chosen, examples if examples is not None
                                                else (list(plug.examples) or None))
        for case, layout in reversed(explicit_list):
            test = example(case, layout)(test)
        # one example-database key per check (op, implementation, limits): a failure is replayed first next time,
        # and a passing check never erases another check's saved failure
        body._hypothesis_internal_add_digest = database_key(spec, plug, fixed)
        try:
            profiles.check_settings(settings)(test)()
        except Exception as error:  # inputs stage: an explicit typical case is not shrunk; look for a smaller one
            verdict = essential_verdict(error)
            failed, layout = _failing_case(verdict, last) if verdict is not None else (None, None)
            if not any(failed is c for c, _ in explicit_list) or failed.explicit:
                raise
            smaller = given(spec.cases(**fixed, **explicit.like(failed)), st.just(layout))(body)
            profiles.check_settings(settings)(smaller)()  # raises the shrunk failure when it finds one
            raise  # none found: the explicit case's failure stands
    except (Exception, calls.StopCheck) as error:  # StopCheck: a time-out, reported unshrunk
        if isinstance(error, calls.StopCheck):
            verdict, others = error.error, []
        else:
            verdict, others = smallest_verdict(error)
        if verdict is None:
            raise
        verdict = prefer_real_windows(verdict, fixed, oracles)
        case, layout = _failing_case(verdict, last)
        text = "\n".join(filter(None, [report.failure(verdict), budget.note(), *other_kinds_lines(others)]))
        if case is not None and case.explicit:  # the user's own arrays: no seed reproduces them
            text += f"\n  (explicit example {case.config['example']} of examples=)"
        elif case is not None:  # an explicit typical case: replay reproduces it; Hypothesis's note repeats its arrays
            typical = any(case is c for c, _ in explicit_list)
            text += "\n" + reproduction(spec, plug, case, layout, fixed, target, None if typical else error)
        raise PluginCheckFailure(text) from None
    return report


def optional_held(spec: OpSpec, plug: Plugin, fixed: Mapping[str, Any]) -> dict:
    """{hyperparameter: limits} for the op's optional hyperparameters that the plug-in's own functions take no
    keyword for (and that its limits do not already decide): held at their neutral value, where they are not
    passed, so a max-pool written without dilation is checked as what it is, not failed for a missing argument."""
    if plug.accepts is None:
        return {}
    return {name: neutral for name, neutral in spec.optional_hyper.items()
            if name not in plug.accepts and not set(neutral) & set(fixed)}


def database_key(spec: OpSpec, plug: Plugin, limits: Mapping[str, Any]) -> bytes:
    return repr((spec.name, plug.name, sorted((k, repr(v)) for k, v in limits.items()))).encode()


def _failing_case(verdict: BaseException, last: Mapping[str, Any]):
    """The case and layout of the reported failure: a wrong value carries its case; a misbehaviour was raised in the
    last case the property ran (Hypothesis re-runs the shrunk failure last)."""
    result = getattr(verdict, "result", None)
    if result is not None:
        return result.case, getattr(result.impl, "layout", "contiguous")
    if getattr(verdict, "case", None) is not None:
        return verdict.case, getattr(verdict, "layout", "contiguous")
    return last.get("case"), last.get("layout", "contiguous")


def reproduction(spec: OpSpec, plug: Plugin, case: Case, layout: str, limits: Mapping[str, Any],
                 target: str | None, error: BaseException) -> str:
    """How to re-run exactly this case: a one-line Python call (and a command line when the plug-in was loaded by
    name), plus Hypothesis's own notes (falsifying example, @reproduce_failure blob) when it printed any."""
    config = dict(case.config)
    who = repr(target) if target else "<your plug-in>"
    lines = ["  reproduce exactly this case:",
             f"    cnn_gradcheck.replay({spec.name!r}, {who}, {config!r}, seed={case.seed}"
             + (f", layout={layout!r}" if layout != "contiguous" else "") + ")"]
    if target:
        lines.append(f"    cnn-gradcheck replay {spec.name} {target} --config '{_json(config)}' --seed {case.seed}"
                     + (f" --layout {layout}" if layout != "contiguous" else ""))
    notes = [n for n in getattr(error, "__notes__", ()) if "reproduce_failure" in n or "seed" in n.lower()]
    lines += [f"  {line}" for note in notes for line in note.strip().splitlines()]
    return "\n".join(lines)


def _json(config: Mapping[str, Any]) -> str:
    import json
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in config.items()})


def replay(op: str | OpSpec, implementation: Any, config: Mapping[str, Any], seed: int, *,
           layout: str = "contiguous", oracles=None) -> CaseResult:
    """Re-run one case exactly, as a failure report names it: the op's arrays for ``config`` drawn from ``seed``,
    inputs in ``layout``. ``implementation`` may be a plug-in object or "module:attribute". Returns the CaseResult;
    raises PluginCheckFailure with the same report as the check when the case fails."""
    __tracebackhide__ = True
    spec = op_spec(op)
    plug = load(implementation) if isinstance(implementation, str) else as_plugin(implementation)
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    case = spec.make_case(config, int(seed))
    impl = plug.bind(spec, layout)
    try:
        return check_case(spec, impl, case, oracles).raise_for_failures()
    except (ImplementationError, calls.StopCheck) as e:
        raise PluginCheckFailure(str(getattr(e, "error", e).at(spec.name, impl.name, case.describe()))) from None
    except AssertionError as error:
        verdict = essential_verdict(error)
        if verdict is None:
            raise
        raise PluginCheckFailure(str(verdict)) from None

