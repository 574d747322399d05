"""Calling an implementation: the one place where the harness runs user code, so that whatever goes wrong there is
reported as a problem of the implementation -- naming the problem, the op and the configuration -- and never as an
internal traceback of the harness.

Guards, in the order a call meets them:
- the call must fit the function's signature ("signature does not fit", checked with ``inspect`` before calling);
- an exception raised inside is reported with its type, message and the innermost line of user code; so is a
  BaseException that is not an Exception (``sys.exit``, GeneratorExit), which would otherwise end the test run;
  only KeyboardInterrupt passes through (Ctrl-C stops the run);
- the global state other code relies on (numpy's error mode, torch's default dtype and grad mode, the global
  random generators, ...: ``cnn_gradcheck.guards``) must be as it was; it is restored either way;
- what comes back must be a floating array (numpy or torch) of the expected shape, without NaN or inf;
- the inputs and the upstream gradient must be unchanged afterwards (compared with copies taken before the call);
- for plug-ins (``repeat_calls``), a second identical call must give the same results within rounding (policy 8 of
  ``cnn_gradcheck.tolerance``: sums in another order are fine, accumulated state is not); the largest difference is
  kept on ``Evaluation.repeat_difference``;
- results in a lower precision than float64 are accepted: ``Evaluation.dtype`` then carries that precision, and
  the oracles derive their tolerances from its epsilon (``cnn_gradcheck.tolerance``).
"""
from __future__ import annotations

import inspect
import os
import traceback
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .evaluation import Evaluation
from .spec import Case, Implementation, OpSpec, ordered_arrays, quantity_label
from . import guards, tolerance

_HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
#: precisions from the finest to the coarsest: the coarsest seen decides the tolerance
PRECISIONS = ("float64", "float32", "float16", "bfloat16")
_NUMPY_FLOATS = {np.dtype(name): name for name in PRECISIONS[:3]}


class ImplementationError(AssertionError):
    """The implementation misbehaved (raised, returned the wrong shape, mutated its inputs, ...), as opposed to a
    wrong gradient. The message names the problem, the op, the implementation and the configuration."""

    def __init__(self, problem: str, detail: str = "", *, op: str = "", impl: str = "", where: str = "",
                 final: bool = False):
        self.problem, self.detail, self.op, self.impl, self.where = problem, detail, op, impl, where
        self.final = final  # ends the check at once, unshrunk (a time-out: each smaller try would wait as long)
        super().__init__(self._message())

    def __reduce__(self):  # sent back from a worker process (cnn_gradcheck.isolation)
        return _rebuild, (self.problem, self.detail, self.op, self.impl, self.where, self.final)

    def _message(self) -> str:
        head = f"{self.op}: {self.problem}" if self.op else self.problem
        if self.impl:
            head += f" in {self.impl}"
        lines = [head]
        if self.where:
            lines.append(f"  configuration: {self.where}")
        if self.detail:
            lines += [f"  {line}" for line in self.detail.splitlines()]
        return "\n".join(lines)

    def at(self, op: str, impl: str, where: str) -> "ImplementationError":
        """The same error with the context filled in where it was still missing."""
        return ImplementationError(self.problem, self.detail, op=self.op or op, impl=self.impl or impl,
                                   where=self.where or where, final=self.final)


def _rebuild(problem, detail, op, impl, where, final) -> ImplementationError:
    return ImplementationError(problem, detail, op=op, impl=impl, where=where, final=final)


class StopCheck(BaseException):
    """Carries a final ImplementationError (a time-out) past Hypothesis, which would shrink an ordinary failure:
    a BaseException ends the property at once. ``check_plugin`` reports ``.error``."""

    def __init__(self, error: ImplementationError):
        self.error = error
        super().__init__(str(error))


class TimeLimitReached(BaseException):
    """Raised inside user code by the in-process time limit (``cnn_gradcheck.isolation``); not the plug-in's own
    exception, so the guards let it through."""


# ---------------------------------------------------------------------------------------------- calling user code

def _user_frames(tb) -> list:
    """The frames of the traceback that lie outside the harness and the libraries it calls through (numpy, torch,
    hypothesis: their package folders), outermost first; a user's own package in site-packages keeps its frames."""
    import sys
    skipped = [_HARNESS_DIR + os.sep] + [os.path.dirname(os.path.abspath(sys.modules[m].__file__)) + os.sep
                                         for m in ("numpy", "torch", "hypothesis")
                                         if getattr(sys.modules.get(m), "__file__", None)]
    return [f for f in traceback.extract_tb(tb)
            if not f.filename.startswith("<")
            and not any(os.path.abspath(f.filename).startswith(folder) for folder in skipped)]


def _user_frame(tb) -> str:
    """Where user code raised: the innermost user frame, and when the raise is deeper than the function the harness
    called, every user frame from that function down to the raise (one line each, with its source line)."""
    frames = _user_frames(tb)
    if not frames:
        return ""
    f = frames[-1]
    text = f" (raised at {os.path.relpath(f.filename)}:{f.lineno} in {f.name})"
    if len(frames) > 1:
        text += "\nyour code, from the function the harness called down to the raise:" + "".join(
            f"\n  {os.path.relpath(g.filename)}:{g.lineno} in {g.name}" + (f": {g.line.strip()}" if g.line else "")
            for g in frames)
    return text


def _name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def describe_call(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """``forward(x: (1, 1, 3, 3) float64, ..., stride=(1, 1))``: what a call was given, without the values."""
    def arg(a):
        shape, dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
        if shape is None:
            return repr(a)
        return f"{tuple(shape)} {str(dtype).replace('torch.', '')}"
    parts = [arg(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _check_signature(fn: Callable, args, kwargs, role: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C extensions have none
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise ImplementationError(
            "signature does not fit",
            f"{role} is {_name(fn)}{signature}; the harness calls it as {describe_call(role, args, kwargs)}: "
            f"{e}") from None


def call_user(fn: Callable, args: Sequence[Any], kwargs: Mapping[str, Any], role: str = "", *,
              draws_random: bool = False) -> Any:
    """fn(*args, **kwargs), with a signature that does not fit, an exception inside and a change of global state
    (``cnn_gradcheck.guards``: restored either way) reported as such. draws_random: the call may draw from the
    global random generators (constructing a layer draws its initial weights); they are restored silently."""
    if not callable(fn):
        raise ImplementationError("missing method", f"{role or _name(fn)} is {fn!r}, not something callable")
    try:
        with guards.unchanged_global_state(allow_rng=True) if draws_random else guards.unchanged_global_state():
            return fn(*args, **kwargs)
    except (ImplementationError, KeyboardInterrupt, TimeLimitReached):  # Ctrl-C still stops the run
        raise
    except guards.GlobalStateChanged as e:
        role = role or _name(fn)
        raise ImplementationError(
            "global state changed", f"{role} changed global state that the code run after it relies on "
            f"(restored by the harness):\n" + "\n".join(f"  {c}" for c in e.changes)
            + f"\ninstead: {'; '.join(e.advice)}\ncall: {describe_call(role, args, kwargs)}") from None
    except Exception as e:  # anything raised by user code is the implementation's problem, reported as such
        role = role or _name(fn)
        if isinstance(e, TypeError):
            _check_signature(fn, args, kwargs, role)  # a call that cannot bind raises TypeError before running
        raise ImplementationError(
            "exception inside the implementation",
            f"{role} raised {type(e).__name__}: {e}{_user_frame(e.__traceback__)}\n"
            f"call: {describe_call(role, args, kwargs)}") from None
    except BaseException as e:  # SystemExit, GeneratorExit, pytest's outcomes: would end or confuse the test run
        role = role or _name(fn)
        raise ImplementationError(
            f"{type(e).__name__} inside the implementation",
            f"{role} raised {type(e).__name__}{_base_detail(e)}{_user_frame(e.__traceback__)}; a layer must "
            f"not {_BASE_HINTS.get(type(e).__name__, 'raise a BaseException (only Exception subclasses)')}\n"
            f"call: {describe_call(role, args, kwargs)}") from None


#: what a BaseException that is not an Exception usually means, for the report
_BASE_HINTS = {"SystemExit": "end the process (sys.exit, exit, quit): that would stop the whole test run",
               "GeneratorExit": "raise GeneratorExit outside a generator's close()"}


def _base_detail(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f" (exit status {e.code!r})"
    return f": {e}" if str(e) else ""


# ------------------------------------------------------------------------------------------- what comes back

def dtype_name(value: Any) -> str:
    return str(getattr(value, "dtype", type(value).__name__)).replace("torch.", "")


def to_float64(value: Any, what: str) -> tuple[np.ndarray, str]:
    """A numpy or torch floating array as (float64 numpy array, its precision name); anything else is an error."""
    if type(value) is np.ndarray:  # the common case first: a numpy array of a floating dtype
        precision = _NUMPY_FLOATS.get(value.dtype)
        if precision is not None:
            return value.astype(np.float64), precision  # a copy: the implementation may reuse its buffers
    if value is None:
        raise ImplementationError("wrong output type", f"{what} is None (did a function forget to return?)")
    if type(value).__module__.startswith("torch"):
        import torch
        if not isinstance(value, torch.Tensor):
            raise ImplementationError("wrong output type", f"{what} is a {type(value).__name__}, not an array")
        precision = dtype_name(value)
        if not value.is_floating_point():
            raise ImplementationError("wrong output dtype", f"{what} has dtype {precision}; a floating dtype "
                                      f"({', '.join(PRECISIONS)}) was expected")
        return value.detach().to("cpu", torch.float64).numpy(), precision
    from .frameworks import to_numpy  # JAX, CuPy, TensorFlow, ... arrays: by __array__, __dlpack__ or .numpy()
    value = to_numpy(value, what)
    try:
        array = np.asarray(value)
    except Exception as e:
        raise ImplementationError("wrong output type", f"{what} is a {type(value).__name__}, which does not "
                                  f"convert to an array: {e}") from None
    precision = _NUMPY_FLOATS.get(array.dtype)
    if precision is None:
        raise ImplementationError("wrong output dtype", f"{what} has dtype {array.dtype}; a floating dtype "
                                  f"({', '.join(PRECISIONS[:3])}) was expected")
    return np.array(array, dtype=np.float64), precision  # a copy: the implementation may reuse its buffers


def check_shape(array: np.ndarray, expected: tuple, what: str, hint: str = "") -> None:
    if tuple(array.shape) != tuple(expected):
        raise ImplementationError("wrong gradient shape" if what.startswith("the gradient") else "wrong output shape",
                                  f"{what} has shape {tuple(array.shape)}; {tuple(expected)} was expected{hint}")


def all_finite(array: np.ndarray) -> bool:
    """Whether every element is finite: np.count_nonzero over np.isfinite (about 1.5 us on small arrays, against
    2.6 us for np.isfinite(...).all(); arithmetic shortcuts such as a dot product with zeros would raise numpy's
    floating-point warnings on an inf)."""
    return _count_nonzero(_isfinite(array)) == array.size


_count_nonzero, _isfinite = np.count_nonzero, np.isfinite


def check_finite(array: np.ndarray, what: str, hint: str = "") -> None:
    if all_finite(array):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        kinds = " and ".join(k for k, m in (("NaN", np.isnan(array)), ("inf", np.isinf(array))) if m.any())
        raise ImplementationError(f"{kinds} in the output",
                                  f"{what} has {int(bad.sum())} non-finite element(s) of {array.size}, "
                                  f"the first at {list(first)}: {array[first]}{hint}")


def _mutation(name: str, before: Any, after: Any, role: str) -> str:
    """'' if an argument holds the same values after the call as before, else a sentence saying how many changed."""
    a, b = ((before, after) if isinstance(before, np.ndarray) and isinstance(after, np.ndarray)
            else (to_float64(before, name)[0], to_float64(after, name)[0]))
    if a.shape == b.shape and np.array_equal(a, b, equal_nan=True):
        return ""
    changed = int(np.sum((a != b) & ~(np.isnan(a) & np.isnan(b)))) if a.shape == b.shape else a.size
    return f"{role} changed {changed} element(s) of its argument {name}"


def unchanged(name: str, before: Any, after: Any, role: str) -> None:
    """An input (or the upstream gradient) must hold the same values after the call as before."""
    unchanged_all([(name, before, after)], role)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Two numpy arrays of one dtype and shape with the same bytes (NaN payloads and -0.0 included): compared as
    unsigned integers of the element's size, one pass and no copy (``tobytes`` copies both; 8 ms at 1e6)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    size = a.dtype.itemsize
    if a.dtype.kind in "fiub" and size in (1, 2, 4, 8):
        as_int = np.dtype(f"u{size}")
        return bool(np.array_equal(a.view(as_int), b.view(as_int)))
    return a.tobytes() == b.tobytes()


def unchanged_all(arguments: Sequence[tuple], role: str) -> None:
    """Every (name, before, after[, role]) must be unchanged; one error names every mutated argument."""
    found = []
    for a in arguments:
        before, after = a[1], a[2]
        if type(before) is np.ndarray and type(after) is np.ndarray and same_bits(before, after):
            continue  # the same bytes: the same values (NaN included); other cases are compared by value
        mutated = _mutation(a[0], before, after, a[3] if len(a) > 3 else role)
        if mutated:
            found.append(mutated)
    if found:
        raise ImplementationError("input mutated in place",
                                  "; ".join(found) + " (compared with copies taken before the call); an "
                                  "implementation must not write into its inputs or the upstream gradient")


def gradient_tuple(spec: OpSpec, grads: Any, role: str = "backward") -> dict[str, Any]:
    """What a backward returned (tuple/list in grad_args order, a dict by name, or one array) -> {name: grad}."""
    names = spec.differentiable
    labels = ", ".join(quantity_label(n) for n in names)
    if isinstance(grads, Mapping):
        missing = [n for n in names if n not in grads]
        if missing:
            raise ImplementationError("wrong gradient count", f"{role} returned a dict with keys "
                                      f"{sorted(map(str, grads))}; one gradient per {list(names)} was expected")
        return {n: grads[n] for n in names}
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(names):
        raise ImplementationError("wrong gradient count", f"{role} returned {len(grads)} gradient(s); "
                                  f"{len(names)} were expected, in this order: {labels}")
    return dict(zip(names, grads))


def coarsest(precisions) -> str:
    return max(precisions, key=PRECISIONS.index, default="float64")


def mixed_precisions(roles: Mapping[str, Sequence[str]] | None) -> str:
    """"its forward in float32 and its backward in float64" when the calls returned different precisions, else ""."""
    per_role = {role: "/".join(sorted(set(p), key=PRECISIONS.index)) for role, p in (roles or {}).items() if p}
    if len(set(per_role.values())) < 2:
        return ""
    return "its " + " and its ".join(f"{role} in {p}" for role, p in per_role.items())


def precision_note(spec: OpSpec, impl_name: str, precision: str, config: Mapping[str, Any],
                   roles: Mapping[str, Sequence[str]] | None = None) -> str:
    """The tolerance a lower-precision implementation is compared under, against the float64 reference. roles:
    the precisions by call ("forward", "backward"): a forward in float32 with a backward in float64 is accepted,
    every result then compared under the coarsest, and the note says so."""
    k = spec.reduction_length(config)
    relative = tolerance.rounding_relative(k, precision)
    mixed = mixed_precisions(roles)
    results = (f"{mixed} (mixed precisions, accepted: all results are compared under the coarsest, {precision})"
               if mixed else f"{precision} results")
    return (f"precision note: {impl_name} returns {results}; they are compared with the float64 "
            f"oracles under {precision} rounding: tolerance = {tolerance.ROUNDING_SAFETY:g} * eps({precision}) "
            f"{tolerance.eps_of(precision):.3g} * K {k} = {relative:.2e} relative to the largest term "
            f"(float64 would allow {tolerance.rounding_relative(k, 'float64'):.1e}; "
            f"K = the longest sum behind an element at {spec.name}({', '.join(f'{a}={b}' for a, b in config.items())}))")


# ----------------------------------------------------------------------------------------------- evaluation

def _run(spec: OpSpec, impl: Implementation, case: Case, hint: str, hyper: Mapping[str, Any], y_shape: tuple):
    """One forward and one backward call on copies of the case's arrays; returns (y, grads, precisions)."""
    arrays = {n: np.array(a, copy=True) for n, a in case.arrays.items()}
    dy = np.array(case.dy, copy=True)
    y_raw = call_user(impl.forward, ordered_arrays(spec, arrays), hyper, "forward")
    y, y_precision = to_float64(y_raw, "the forward output y")
    check_shape(y, y_shape, "the forward output y", hint)
    if not all_finite(y):
        check_finite(y, "the forward output y", hint)
    raw = call_user(impl.backward, [dy, *ordered_arrays(spec, arrays)], hyper, "backward")
    grads, precisions, shapes = {}, [y_precision], []
    for name, g in gradient_tuple(spec, raw).items():
        grads[name], p = to_float64(g, _GradientLabel(name))
        precisions.append(p)
        if tuple(grads[name].shape) != tuple(case.arrays[name].shape):  # every wrong gradient, not the first only
            shapes.append(f"the gradient {quantity_label(name)} has shape {tuple(grads[name].shape)}; "
                          f"{tuple(case.arrays[name].shape)} was expected (the shape of {name})")
    if shapes:
        raise ImplementationError("wrong gradient shape" + ("s" if len(shapes) > 1 else ""), "\n".join(shapes) + hint)
    for name in grads:
        if not all_finite(grads[name]):
            check_finite(grads[name], f"the gradient {quantity_label(name)}", hint)
    unchanged_all([*((name, case.arrays[name], arrays[name]) for name in spec.arg_names),
                   ("dy (the upstream gradient)", case.dy, dy, "backward")], "forward or backward")
    return y, grads, precisions


class _GradientLabel:
    """"the gradient dE/dw", formatted only when a message needs it (to_float64 names it only in an error)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        return f"the gradient {quantity_label(self.name)}"


def evaluate(spec: OpSpec, impl: Implementation, case: Case) -> Evaluation:
    """Run the implementation's forward and backward for a case (twice for plug-ins), guarded as described above."""
    hint = impl.failure_hint
    hyper = spec.hyper(case.config)  # the same for every call of the case (a fresh dict reaches each callee: **)
    try:
        y, grads, precisions = _run(spec, impl, case, hint, hyper, spec.output_shape(case.config))
        repeat_difference = 0.0
        if impl.repeat_calls:
            y2, grads2, _ = _run(spec, impl, case, hint, hyper, y.shape)
            repeat_difference = _repeatable(spec, impl, case, coarsest(precisions),
                                            [("forward", y, y2), *((quantity_label(n), grads[n], grads2[n])
                                                                   for n in grads)])
    except ImplementationError as e:
        raise _in_context(e, spec, impl, case.describe(), case) from None
    precisions += list(impl.precisions_seen)
    names, y_shape, call = spec.arg_names, y.shape, impl.forward

    def forward(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The forward at other arrays (finite differences, adjoint), with the same guards on what comes back."""
        try:
            out, _ = to_float64(call_user(call, [arrays[n] for n in names], hyper, "forward"), "the forward output y")
            if out.shape != y_shape:
                check_shape(out, y_shape, "the forward output y", hint)
            if not all_finite(out):
                check_finite(out, "the forward output y at a perturbed input (finite differences/adjoint)", hint)
            return out
        except ImplementationError as e:
            raise _in_context(e, spec, impl, case.describe()) from None

    return Evaluation(y, grads, forward, coarsest(precisions), repeat_difference)


def _in_context(error: ImplementationError, spec: OpSpec, impl: Implementation, where: str,
                case: Case | None = None) -> BaseException:
    """The error with the op, implementation and configuration (and the case, for the report: the smallest of several
    failures, what explains a misbehaviour); a final one (a time-out) wrapped to stop the check."""
    error = error.at(spec.name, impl.name, where)
    if case is not None:
        error.case = case
    return StopCheck(error) if error.final else error


def _repeatable(spec: OpSpec, impl: Implementation, case: Case, precision: str, pairs) -> float:
    """Two identical calls must agree within rounding (tolerance policy 8): a backward whose sums run in another
    order each call differs by a few eps, state kept between calls (accumulated gradients, a cache, random numbers)
    by far more. A plug-in may declare ``nondeterministic = True`` (or a relative bound) for a looser bound.
    Returns the largest difference seen."""
    k = declared = terms = None
    worst, differ = 0.0, []
    for quantity, a, b in pairs:
        if same_bits(a, b):  # bit for bit (the usual case): a difference of 0
            continue
        if terms is None:  # the bound is needed only where the results differ
            k, declared = spec.reduction_length(case.config), impl.nondeterministic
            terms = tolerance.repeat_term_scale(case.dy, case.arrays.values())
        diff = float(np.max(np.abs(a - b), initial=0.0)) if np.all(np.isfinite(a) == np.isfinite(b)) else np.inf
        worst = max(worst, diff)
        if not diff <= tolerance.repeat_tolerance(a, b, k, precision, terms, declared):
            differ.append(quantity)
    if differ:
        raise ImplementationError(
            "nondeterministic results",
            f"two identical calls gave different {', '.join(differ)} (largest difference {worst:.3e}, beyond "
            f"{precision} rounding); state kept between calls (gradients accumulated across calls, a cache, random "
            f"numbers) or non-deterministic kernels make results unrepeatable (a plug-in whose kernels are "
            f"non-deterministic by design may declare nondeterministic = True or a relative bound)")
    return worst
