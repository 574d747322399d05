"""Plug-ins: the user's own layer implementation, adapted to the canonical convention of an op and checked by the
whole property suite (``check_plugin``).

A ``Plugin`` holds the user's code behind two adapter functions

    forward(arrays, hyper) -> y                   arrays: {arg name: array as the plug-in takes it}, in spec order
    backward(dy, arrays, hyper, wrt) -> grads     one gradient per name in wrt (tuple in that order, or a dict)

plus how its arrays look: a ``Backend`` (numpy or torch, dtype, device), ``axes`` (a permutation per argument name and
"y" from the canonical axes to the plug-in's, e.g. NHWC images and HWIO kernels) and ``limits`` (the part of the
configuration space it supports, passed as ``fixed`` to ``spec.configs``). ``Plugin.bind(spec, layout)`` turns it
into an ``Implementation`` in the canonical convention (float64 numpy in and out) that every oracle can call; each
call presents the arrays in the plug-in's form and memory layout, checks what comes back and that nothing was
written into the inputs (``cnn_gradcheck.calls``).

Adapters for the shapes user code has:
    plugin(forward, backward)             functions already in the canonical convention
    function_pair(forward, backward)      cs231n style: forward(...) -> (out, cache), backward(dout, cache) -> grads
    layer_object(make, params, grads)     an object with forward(x) / backward(dy), parameters and gradients kept in
                                          attributes or dicts ("W", "grads.W", "params[W]"), perhaps accumulated
    torch_function(fn)                    any differentiable function of tensors (gradients by autograd)
    autograd_function(Function)           a torch.autograd.Function subclass
    torch_module(make, params)            a torch.nn.Module (parameters swapped in with torch.func.functional_call)
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings as hyp_settings, strategies as st

from . import calls, compare, layouts as layouts_mod, profiles
from .calls import ImplementationError
from .layouts import NUMPY, Backend, PluginOptionError
from .registry import all_formulas, all_specs
from .runner import CaseResult, check_case, essential_verdict
from .spec import Case, Implementation, OpSpec

#: canonical NCHW image -> N, H, W, C (channels last)
NHWC = (0, 2, 3, 1)
#: canonical (C_out, C_in, kh, kw) kernel -> (kh, kw, C_in, C_out) (TensorFlow's HWIO)
HWIO = (2, 3, 1, 0)


class PluginCheckFailure(AssertionError):
    """The plug-in failed the suite; the message is the whole report (no harness traceback needed)."""


class PrecisionNote(UserWarning):
    """The plug-in returns lower-precision results; says which tolerance they were checked under."""


# ------------------------------------------------------------------------------------------------- the plug-in

@dataclass(frozen=True)
class Plugin:
    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    backend: Backend = NUMPY
    axes: Mapping[str, tuple] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)
    layouts: tuple[str, ...] | None = None

    def with_limits(self, **limits) -> "Plugin":
        """The same plug-in declaring (more) limits, e.g. ``stride=1, padding=0``."""
        return replace(self, limits={**self.limits, **limits})

    def bind(self, spec: OpSpec, layout: str = "contiguous") -> "BoundPlugin":
        """The plug-in as an Implementation of ``spec`` in the canonical convention, inputs in ``layout``."""
        seen: list[str] = []
        names, backend, axes = spec.arg_names, self.backend, dict(self.axes)
        layouts_mod.check_layouts([layout], f"{spec.name}: ")
        check_axes(spec, axes)

        def present(name, a):
            perm = axes.get(name)
            return backend.present(np.transpose(a, perm) if perm else a, layout)

        def back(name, value, what):
            out, precision = calls.to_float64(value, what)
            seen.append(precision)
            perm = axes.get(name)
            return np.transpose(out, np.argsort(perm)) if perm and out.ndim == len(perm) else out

        def call(role, adapter, args, given: Mapping[str, Any]):
            before = {n: backend.snapshot(a) for n, a in given.items()}
            with _deterministic_torch(backend):
                result = adapter(*args)  # the adapters run user code through calls.call_user
            for n, a in given.items():
                calls.unchanged(n, before[n], a, role)
            return result

        def forward(*arrays, **hyper):
            user = {n: present(n, a) for n, a in zip(names, arrays)}
            return back("y", call("forward", self.forward, [user, hyper], user), "the forward output y")

        def backward(dy, *arrays, **hyper):
            user = {n: present(n, a) for n, a in zip(names, arrays)}
            user_dy = present("y", dy)
            raw = call("backward", self.backward, [user_dy, user, hyper, spec.differentiable],
                       {"dy (the upstream gradient)": user_dy, **user})
            grads = calls.gradient_tuple(spec, raw)
            return {n: back(n, g, f"the gradient d{n}") for n, g in grads.items()}

        hint = layouts_mod.hint(layout)
        if axes:
            hint += ("\nshapes above are in the canonical axes; the plug-in's axes are "
                     + ", ".join(f"{n}: {p}" for n, p in axes.items()))
        label = self.name if layout == "contiguous" else f"{self.name} (inputs as {layout} views)"
        return BoundPlugin(label, forward, backward, layout=layout, precisions_seen=seen, failure_hint=hint)


@dataclass(frozen=True)
class BoundPlugin(Implementation):
    """A plug-in bound to an op and a layout: canonical float64 numpy in and out, every call guarded."""

    layout: str = "contiguous"
    precisions_seen: list = field(default_factory=list, compare=False)
    failure_hint: str = ""
    repeat_calls: bool = True  # cnn_gradcheck.calls calls a plug-in twice to catch nondeterminism


@contextlib.contextmanager
def _deterministic_torch(backend: Backend):
    """CUDA plug-ins run in true float32/float64: TF32 off (it would round float32 matmuls to 10-bit mantissas)."""
    if backend.kind != "torch" or not backend.device.startswith("cuda"):
        yield
        return
    import torch
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _make_plugin(name, forward, backward, kind, *, dtype="float64", device="cpu", axes=None, limits=None,
                 layouts=None) -> Plugin:
    return Plugin(name, forward, backward, Backend(kind, dtype, device), dict(axes or {}), dict(limits or {}),
                  layouts_mod.check_layouts(layouts) if layouts else None)


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


def _label(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _method(obj, name: str) -> Callable:
    fn = getattr(obj, name, None)
    if not callable(fn):
        raise ImplementationError("missing method", f"{type(obj).__name__} has no method {name}(); this adapter "
                                  f"needs forward and backward")
    return fn


# ---------------------------------------------------------------------------------------------------- adapters

def plugin(forward: Callable, backward: Callable, *, name: str | None = None, kind: str = "numpy",
           **options) -> Plugin:
    """Functions already in the canonical convention: forward(*arrays, **hyper), backward(dy, *arrays, **hyper)."""
    def fwd(arrays, hyper):
        return calls.call_user(forward, list(arrays.values()), hyper, "forward")

    def bwd(dy, arrays, hyper, wrt):
        return calls.call_user(backward, [dy, *arrays.values()], hyper, "backward")

    return _make_plugin(name or _label(forward), fwd, bwd, kind, **options)


def function_pair(forward: Callable, backward: Callable, *, call: Callable | None = None, name: str | None = None,
                  **options) -> Plugin:
    """cs231n style: ``out, cache = forward(*args)``; ``grads = backward(dout, cache)`` in grad_args order.
    ``call(*arrays, **hyper)`` -> the positional args of forward (default: the arrays, hyperparameters by keyword),
    e.g. ``call=lambda x, w, b, stride, padding, dilation: (x, w, b, {"stride": stride[0], "pad": padding[0]})``."""
    def with_cache(arrays, hyper):
        args, kwargs = ((call(*arrays.values(), **hyper), {}) if call else (list(arrays.values()), hyper))
        result = calls.call_user(forward, args, kwargs, "forward")
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ImplementationError("wrong output type", f"forward of a function pair must return (out, cache); "
                                      f"it returned a {type(result).__name__}")
        return result

    def fwd(arrays, hyper):
        return with_cache(arrays, hyper)[0]

    def bwd(dy, arrays, hyper, wrt):
        _, cache = with_cache(arrays, hyper)  # a fresh forward: no cache is shared between calls
        return calls.call_user(backward, [dy, cache], {}, "backward")

    return _make_plugin(name or _label(forward), fwd, bwd, "numpy", **options)


def _get(obj, path: str, default=None):
    """'W' -> obj.W; 'grads.W' -> obj.grads['W'] (or obj.grads.W); 'params[W]' likewise."""
    for part in path.replace("[", ".").replace("]", "").split("."):
        if isinstance(obj, Mapping):
            if part not in obj:
                return default
            obj = obj[part]
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return default
    return obj


def _set(obj, path: str, value) -> bool:
    """Assign at ``path``; False when its parent does not exist (yet)."""
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    parent = _get(obj, ".".join(parents)) if parents else obj
    if parent is None:
        return False
    try:
        if isinstance(parent, dict):
            parent[last] = value
        else:
            setattr(parent, last, value)
    except (AttributeError, TypeError) as e:  # a read-only property, a frozen object
        raise ImplementationError("cannot assign attribute", f"{type(parent).__name__}.{last} cannot be assigned "
                                  f"({type(e).__name__}: {e}); for gradient slots that cannot be assigned use "
                                  f"accumulate=\"diff\"") from None
    return True


def layer_object(make: Any, *, params: Mapping[str, str], grads: Mapping[str, str],
                 accumulate: str = "reset", name: str | None = None, **options) -> Plugin:
    """An object with ``forward(*inputs) -> y`` and ``backward(dy)`` (returning the input gradient(s)).

    make:       a class or factory called as ``make(**parameter arrays, **hyper)`` for every call, or one instance
                reused for all calls (then gradients may accumulate across calls).
    params:     arg name -> where the object keeps that parameter, e.g. {"w": "W", "b": "b"} or "params.W".
                The other arguments of the op are the inputs of forward, in spec order.
    grads:      arg name -> where backward leaves its gradient ("dW", "grads.W", "grads[W]"); inputs not named here
                are taken from backward's return value (one array, or a tuple for several inputs).
    accumulate: "reset" (assign zeros to the gradient slots before backward: right for objects that add,
                ``dW += ...``, and for objects that overwrite), "diff" (for slots that cannot be assigned: zero
                the array held there in place, or else take after - before, which carries the rounding of the
                accumulated sum) or "none" (take the slots as backward leaves them: only for objects that
                overwrite; one that adds is then caught, its second identical call giving other gradients).
    """
    if accumulate not in ("reset", "diff", "none"):
        raise PluginOptionError(f"bad plug-in option accumulate={accumulate!r}: it is 'reset', 'diff' or 'none'")
    reuse = not inspect.isclass(make) and hasattr(make, "forward")

    def instance(arrays, hyper):
        obj = make if reuse else calls.call_user(make, [], {**{p: arrays[p] for p in params}, **hyper},
                                                 f"{_label(make)} (make)")
        for p, path in params.items():
            if not _set(obj, path, arrays[p]):
                raise ImplementationError("missing attribute", f"{type(obj).__name__} has no {path!r} to hold "
                                          f"the parameter {p} (params={dict(params)})")
        inputs = [a for n, a in arrays.items() if n not in params]
        y = calls.call_user(_method(obj, "forward"), inputs, {}, f"{type(obj).__name__}.forward")
        return obj, y

    def fwd(arrays, hyper):
        return instance(arrays, hyper)[1]

    def bwd(dy, arrays, hyper, wrt):
        obj, _ = instance(arrays, hyper)
        before = {}
        for p, path in grads.items():
            if accumulate == "reset" and p in arrays:
                _set(obj, path, _zeros_like(arrays[p]))
            elif accumulate == "diff":
                before[p] = _zero_in_place_or_copy(_get(obj, path))
        returned = calls.call_user(_method(obj, "backward"), [dy], {}, f"{type(obj).__name__}.backward")
        from_return = [n for n in wrt if n not in grads]
        if len(from_return) == 1:
            returned = (returned,)
        out = dict(zip(from_return, returned if isinstance(returned, (tuple, list)) else (returned,)))
        for p, path in grads.items():
            g = _get(obj, path)
            if g is None:
                raise ImplementationError("missing gradient", f"after backward, {type(obj).__name__} has nothing "
                                          f"at {path!r} for d{p} (grads={dict(grads)})")
            out[p] = _copy(g) - before[p] if p in before else _copy(g)
        return out

    return _make_plugin(name or _label(make), fwd, bwd, "numpy", **options)


def _zero_in_place_or_copy(slot):
    """For "diff": zero the accumulator in place when it is an array (then after - 0 is exact); otherwise a copy
    to subtract (after - before carries rounding of the size of the accumulated sum)."""
    if slot is None:
        return 0.0
    try:
        slot[...] = 0
        return 0.0
    except (TypeError, ValueError, RuntimeError):
        return _copy(slot)


def _zeros_like(a):
    return a.new_zeros(a.shape) if hasattr(a, "new_zeros") else np.zeros(np.shape(a), dtype=a.dtype)


def _copy(a):
    return a.detach().clone() if hasattr(a, "detach") else np.array(a, copy=True)


def torch_function(fn: Callable, *, name: str | None = None, **options) -> Plugin:
    """A differentiable function of tensors, ``fn(*tensors, **hyper) -> tensor``; gradients by torch.autograd."""
    return _autograd_plugin(name or _label(fn), lambda arrays, hyper: calls.call_user(
        fn, list(arrays.values()), hyper, "forward"), **options)


def _overrides(cls, method: str) -> bool:
    import torch
    return getattr(cls, method, None) is not getattr(torch.autograd.Function, method, None)


def autograd_function(function: type, *, call: Callable | None = None, name: str | None = None,
                      **options) -> Plugin:
    """A ``torch.autograd.Function`` subclass, applied as ``function.apply(*call(*tensors, **hyper))``; by default
    the tensors then the hyperparameters' values in spec order (for conv2d: x, w, b, stride, padding, dilation)."""
    def apply(arrays, hyper):
        for method in ("forward", "backward"):
            if not _overrides(function, method):
                raise ImplementationError("missing method", f"{function.__name__} does not define {method}(); a "
                                          f"torch.autograd.Function needs forward and backward")
        args = tuple(call(*arrays.values(), **hyper)) if call else (*arrays.values(), *hyper.values())
        ctx = () if _overrides(function, "setup_context") else (None,)
        try:
            inspect.signature(function.forward).bind(*ctx, *args)
        except TypeError as e:
            raise ImplementationError("signature does not fit", f"{function.__name__}.forward"
                                      f"{inspect.signature(function.forward)} cannot take "
                                      f"{calls.describe_call('forward', ['ctx', *args][len(ctx) == 0:], {})}: {e}")
        return calls.call_user(function.apply, args, {}, f"{function.__name__}.forward")

    return _autograd_plugin(name or _label(function), apply, **options)


def torch_module(make: Any, *, params: Mapping[str, str], name: str | None = None, **options) -> Plugin:
    """A ``torch.nn.Module``: ``make(**parameter tensors, **hyper)`` builds it (or one instance is reused); params maps
    arg names to parameter names ({"w": "weight", "b": "bias"}); the other args are the inputs of forward."""
    import torch

    def run(arrays, hyper):
        module = make if isinstance(make, torch.nn.Module) else calls.call_user(
            make, [], {**{p: arrays[p] for p in params}, **hyper}, f"{_label(make)} (make)")
        own = dict(module.named_parameters())
        missing = [path for path in params.values() if path not in own]
        if missing:
            raise ImplementationError("missing parameter", f"{type(module).__name__} has no parameter "
                                      f"{', '.join(missing)} (it has: {', '.join(own) or 'none'}); params="
                                      f"{dict(params)}")
        inputs = [a for n, a in arrays.items() if n not in params]
        try:
            inspect.signature(module.forward).bind(*inputs)
        except TypeError as e:
            raise ImplementationError("signature does not fit", f"{type(module).__name__}.forward"
                                      f"{inspect.signature(module.forward)} cannot take "
                                      f"{calls.describe_call('forward', inputs, {})}: {e}")
        return calls.call_user(torch.func.functional_call, [module, {path: arrays[p] for p, path in params.items()},
                                                            tuple(inputs)], {}, f"{type(module).__name__}.forward")

    return _autograd_plugin(name or _label(make), run, **options)


def _autograd_plugin(name: str, run: Callable, **options) -> Plugin:
    """forward = run(arrays, hyper); backward by torch.autograd.grad through run, with dy as grad_outputs."""
    import torch

    def fwd(arrays, hyper):
        with torch.no_grad():
            return run(arrays, hyper)

    def bwd(dy, arrays, hyper, wrt):
        leaves = {n: (t.detach().requires_grad_() if n in wrt else t) for n, t in arrays.items()}
        y = run(leaves, hyper)
        if not isinstance(y, torch.Tensor):
            raise ImplementationError("wrong output type", f"forward returned a {type(y).__name__}, not a tensor")
        if not y.requires_grad:
            raise ImplementationError("no gradient path", "the output does not depend on the inputs through "
                                      "autograd (was it detached, or computed through numpy?)")
        targets = [leaves[n] for n in wrt]
        grads = calls.call_user(torch.autograd.grad, [y, targets],
                                {"grad_outputs": dy.to(y.dtype), "allow_unused": True}, "backward")
        return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(targets, grads))

    return _make_plugin(name, fwd, bwd, "torch", **options)


# --------------------------------------------------------------------------------------- finding a plug-in

def as_plugin(obj: Any, name: str | None = None) -> Plugin:
    """A Plugin from what a user hands over: a Plugin, an Implementation, a torch.autograd.Function subclass, or
    anything with canonical forward/backward functions (a module, a class with static methods, an object)."""
    if isinstance(obj, Plugin):
        return obj
    if isinstance(obj, Implementation):
        return plugin(obj.forward, obj.backward, name=name or obj.name)
    if inspect.isclass(obj) and "torch" in sys.modules and issubclass(obj, sys.modules["torch"].autograd.Function):
        return autograd_function(obj, name=name)
    if callable(getattr(obj, "forward", None)) and callable(getattr(obj, "backward", None)):
        return plugin(obj.forward, obj.backward, name=name or getattr(obj, "__name__", _label(obj)))
    missing = [m for m in ("forward", "backward") if not callable(getattr(obj, m, None))]
    raise ImplementationError("missing method", f"{name or _label(obj)} has no {' and no '.join(missing)}: a "
                              f"plug-in is a Plugin (see cnn_gradcheck.plugins adapters), an Implementation, a "
                              f"torch.autograd.Function, or something with forward and backward in the canonical "
                              f"convention")


def load(target: str) -> Plugin:
    """'package.module:attribute' (attribute may be dotted) -> Plugin; the current directory is importable."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ImplementationError("cannot load the plug-in", f"{target!r} is not of the form module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:
        raise ImplementationError("cannot load the plug-in", f"import {module_name} failed: "
                                  f"{type(e).__name__}: {e}") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ImplementationError("cannot load the plug-in", f"{module_name} has no attribute {attribute}")
        obj = getattr(obj, part)
    return as_plugin(obj, name=target)


# --------------------------------------------------------------------------------------------- coverage

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


def _values(configs) -> dict[str, set]:
    values: dict[str, set] = {}
    for c in configs:
        for k, v in c.items():
            values.setdefault(k, set()).add(v)
    return values


def _short(values) -> str:
    return "{" + ", ".join(map(str, sorted(values))) + "}"


@dataclass
class PluginReport:
    """What ran on a plug-in and what it left out."""

    spec: OpSpec
    plugin: Plugin
    limits: Mapping[str, Any]
    layouts: tuple[str, ...]
    cases: int = 0
    layouts_seen: dict = field(default_factory=dict)
    oracles_seen: set = field(default_factory=set)  # oracles that gave a verdict (pass or fail)
    not_applicable: dict = field(default_factory=dict)  # oracle -> why it did not apply (n/a verdicts), first note
    precision: str = "float64"
    precision_note: str = ""
    configs: list = field(default_factory=list)

    def record(self, case: Case, layout: str, result) -> None:
        self.cases += 1
        self.layouts_seen[layout] = self.layouts_seen.get(layout, 0) + 1
        na = getattr(compare, "NA", "n/a")  # the verdict of an oracle that does not apply (e.g. at float16)
        for c in result.comparisons:
            if c.verdict == na:
                self.not_applicable.setdefault(c.oracle, c.note)
            else:
                self.oracles_seen.add(c.oracle)
        self.configs.append(dict(case.config))

    def not_covered(self) -> list[str]:
        """Values the full suite draws that this plug-in's limits exclude, and formula rows left out."""
        full = _values(_sample(self.spec.configs(), 60))
        allowed = _values(_sample(self.spec.configs(**self.limits), 60)) if self.limits else full
        # restricted: fields the limits hold to one value, or to a part of a small set (stride, padding, ...);
        # sizes derived from them (H, W) are not listed
        restricted = {k for k in full if full[k] - allowed.get(k, set())
                      and (len(allowed.get(k, ())) == 1 or len(full[k]) <= 4)}
        lines = [f"{k} in {_short(full[k] - allowed.get(k, set()))}" for k in full if k in restricted]
        out = []
        if lines:
            out.append(f"excluded by the limits ({', '.join(f'{k}={v}' for k, v in self.limits.items())}): "
                       + "; ".join(lines))
        partly, none = [], []
        for formula in all_formulas():
            if formula.op != self.spec.name:
                continue
            sample = _sample(self.spec.configs(**formula.fixed), 20)
            inside = sum(all(c[k] in allowed.get(k, ()) for k in restricted) for c in sample)
            if inside == 0:
                none.append(formula.name)
            elif inside < len(sample):
                partly.append(formula.name)
        if none:
            out.append(f"formulas not covered: {'; '.join(none)}")
        if partly:
            out.append(f"formulas only partly covered: {'; '.join(partly)}")
        skipped = [layout for layout in self.layouts if layout not in self.layouts_seen]
        if skipped and self.cases:
            out.append(f"layouts not drawn in this run: {', '.join(skipped)}")
        return out

    def summary(self) -> str:
        seen = ", ".join(f"{k} {v}" for k, v in self.layouts_seen.items())
        lines = [f"{self.spec.name}: {self.plugin.name} passed {self.cases} generated cases "
                 f"({self.plugin.backend.describe()}; input layouts: {seen})",
                 f"  oracles: {', '.join(sorted(self.oracles_seen))}"]
        lines += [f"  not applicable: {oracle}: {note}" for oracle, note in sorted(self.not_applicable.items())]
        if self.precision_note:
            lines.append(f"  {self.precision_note}")
        gaps = self.not_covered()
        lines += [f"  not covered: {g}" for g in gaps] or ["  not covered: nothing (no limits declared)"]
        return "\n".join(lines)

    def failure(self, error: BaseException) -> str:
        lines = [str(error)]
        impl = getattr(getattr(error, "result", None), "impl", None)  # a wrong value rather than a misbehaviour
        if getattr(impl, "layout", "contiguous") != "contiguous":
            lines += [f"  {line}" for line in layouts_mod.hint(impl.layout).strip().splitlines()]
        if self.precision_note:
            lines.append(f"  {self.precision_note}")
        if self.limits:
            lines.append(f"  (checked within the plug-in's limits: "
                         f"{', '.join(f'{k}={v}' for k, v in self.limits.items())})")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- the whole suite

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


def check_plugin(op: str | OpSpec, implementation: Any, *, limits: Mapping[str, Any] | None = None,
                 layouts=None, settings=None, oracles=None, target: str | None = None) -> PluginReport:
    """Run the property suite that the references pass on a plug-in: every oracle (forward against the reference
    and torch; gradients against finite differences, torch and the adjoint test), generated configurations within
    the plug-in's limits, inputs in every memory layout, shrinking to the minimal failing configuration.

    settings: Hypothesis settings for this check (default: cnn_gradcheck.profiles.check_settings: the profile your
    project loaded, else the harness's). target: "module:attribute" the plug-in was loaded from, for the
    reproduction line of a failure report.

    Returns a PluginReport (``.summary()`` says what was covered); raises PluginCheckFailure with the report of the
    smallest failing case, or of the first misbehaviour (exception, wrong shape, NaN, mutated input, ...), ending
    with how to re-run exactly that case (``replay``)."""
    __tracebackhide__ = True
    spec = op_spec(op)
    try:
        plug = as_plugin(implementation)
    except ImplementationError as e:
        raise PluginCheckFailure(str(e.at(spec.name, "", "any (the plug-in cannot be called at all)"))) from None
    fixed = {**plug.limits, **(limits or {})}
    chosen = layouts_mod.check_layouts(layouts or plug.layouts or plug.backend.layouts, f"{spec.name}: ")
    probe = check_limits(spec, fixed)  # options first: a mistake in them is not the plug-in's
    check_axes(spec, plug.axes, {**{n: np.ndim(a) for n, a in probe.arrays.items()},
                                 "y": len(spec.output_shape(probe.config))})
    report = PluginReport(spec, plug, fixed, chosen)
    last: dict = {}
    try:
        precision = calls.evaluate(spec, plug.bind(spec), probe).dtype
        if precision != "float64":
            report.precision = precision
            report.precision_note = calls.precision_note(spec, plug.name, precision, probe.config)
            warnings.warn(PrecisionNote(report.precision_note), stacklevel=2)

        def body(case: Case, layout: str) -> None:
            last.update(case=case, layout=layout)
            impl = plug.bind(spec, layout)
            try:
                result = check_case(spec, impl, case, oracles)
            except ImplementationError as e:  # raised in an oracle's own call (adjoint, finite differences)
                raise e.at(spec.name, impl.name, case.describe()) from None
            report.record(case, layout, result)
            result.raise_for_failures()

        test = given(spec.cases(**fixed), st.sampled_from(chosen))(body)
        # one example-database key per check (op, implementation, limits): a failure is replayed first next time,
        # and a passing check never erases another check's saved failure
        body._hypothesis_internal_add_digest = database_key(spec, plug, fixed)
        profiles.check_settings(settings)(test)()
    except Exception as error:
        verdict = essential_verdict(error)
        if verdict is None:
            raise
        case, layout = _failing_case(verdict, last)
        text = report.failure(verdict)
        if case is not None:
            text += "\n" + reproduction(spec, plug, case, layout, fixed, target, error)
        raise PluginCheckFailure(text) from None
    return report


def database_key(spec: OpSpec, plug: Plugin, limits: Mapping[str, Any]) -> bytes:
    return repr((spec.name, plug.name, sorted((k, repr(v)) for k, v in limits.items()))).encode()


def _failing_case(verdict: BaseException, last: Mapping[str, Any]):
    """The case and layout of the reported failure: a wrong value carries its case; a misbehaviour was raised in the
    last case the property ran (Hypothesis re-runs the shrunk failure last)."""
    result = getattr(verdict, "result", None)
    if result is not None:
        return result.case, getattr(result.impl, "layout", "contiguous")
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
    except ImplementationError as e:
        raise PluginCheckFailure(str(e.at(spec.name, impl.name, case.describe()))) from None
    except AssertionError as error:
        verdict = essential_verdict(error)
        if verdict is None:
            raise
        raise PluginCheckFailure(str(verdict)) from None
