"""Binding a plug-in: the user's layer behind two adapter functions, turned into an ``Implementation`` of an op in the
canonical convention (float64 numpy in and out) that every oracle can call.

A ``Plugin`` holds

    forward(arrays, hyper) -> y                   arrays: {arg name: array as the plug-in takes it}, in spec order
    backward(dy, arrays, hyper, wrt) -> grads     one gradient per name in wrt (tuple in that order, or a dict)

plus how its arrays look: a ``Backend`` (numpy or torch, dtype, device), ``axes`` (a permutation per argument name and
"y" from the canonical axes to the plug-in's, e.g. NHWC images and HWIO kernels) and ``limits`` (the part of the
configuration space it supports). ``Plugin.bind(spec, layout)`` presents each call's arrays in the plug-in's form and
memory layout, checks what comes back and that nothing was written into the inputs (``cnn_gradcheck.calls``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from . import calls, conventions, frameworks, isolation, layouts as layouts_mod
from .layouts import NUMPY, Backend, PluginOptionError
from .options import as_scalars, check_axes, merge_limits
from .spec import Implementation, OpSpec

#: canonical NCHW image -> N, H, W, C (channels last)
NHWC = (0, 2, 3, 1)
#: canonical (C_out, C_in, kh, kw) kernel -> (kh, kw, C_in, C_out) (TensorFlow's HWIO)
HWIO = (2, 3, 1, 0)

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
    #: seconds one call may take (None: no limit); isolate: run the calls in a worker process (None: for torch and
    #: JAX kernels on the CPU; True: declares native code; never where fork is unsafe: cnn_gradcheck.isolation)
    time_limit: float | None = isolation.DEFAULT_TIME_LIMIT
    isolate: bool | None = None
    #: pairs of axes (stride, padding, dilation, kernel, size) drawn equal; ``scalar`` ones are also passed as an int
    tied: tuple[str, ...] = ()
    scalar: tuple[str, ...] = ()
    square: bool = False  # square kernels and square inputs: tied kernel and size
    #: declared conventions (cnn_gradcheck.conventions): results converted to the canonical ones
    conventions: tuple[str, ...] = ()
    output: int | None = None  # which element of a tuple the forward returns is the op's output
    #: the keyword arguments both of the user's functions take (None: unknown, or **kwargs): an optional
    #: hyperparameter they do not take is held at its neutral value (OpSpec.optional_hyper)
    accepts: frozenset | None = None
    #: explicit examples that travel with the plug-in (check_plugin's examples=), so that ``pytest --plugin`` and
    #: ``cnn-gradcheck check`` check them first and always too
    examples: tuple = ()

    def with_limits(self, **limits) -> "Plugin":
        """The same plug-in declaring (more) limits, e.g. ``stride=1, padding=0``; a limit replaces the plug-in's
        own on the same fields (``padding=0`` replaces ``ph=1, pw=1``)."""
        return replace(self, limits=merge_limits(self.limits, limits))

    def with_guards(self, time_limit: float | None = None, isolate: bool | None = None) -> "Plugin":
        """The same plug-in with another time limit per call (seconds; float("inf"): none) and/or isolation (None:
        keep the plug-in's own)."""
        if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
            raise PluginOptionError(f"bad plug-in option time_limit={time_limit!r}: a positive number of seconds "
                                    f"one call may take (float('inf') for no limit)")
        limit = self.time_limit if time_limit is None else (None if time_limit == float("inf") else time_limit)
        return replace(self, time_limit=limit, isolate=self.isolate if isolate is None else isolate)

    @property
    def isolated(self) -> bool:
        """Calls run in a worker process: when asked (isolate=True: the plug-in declares native code), and by default
        for torch and JAX plug-ins on the CPU (native kernels, custom extensions: a crash there must not end the
        run); plain numpy plug-ins run in-process (a worker costs ~50% more time per check, and their side effects
        stay where their author looks for them), and CUDA ones too (a forked child cannot share the harness's CUDA
        driver state); never where fork is unsafe."""
        wanted = (self.backend.kind in ("torch", "jax") and self.backend.device == "cpu") if self.isolate is None \
            else self.isolate
        return bool(wanted) and isolation.can_fork()

    def bind(self, spec: OpSpec, layout: str = "contiguous") -> "BoundPlugin":
        """The plug-in as an Implementation of ``spec`` in the canonical convention, inputs in ``layout``."""
        layouts_mod.check_layouts([layout], f"{spec.name}: ")
        check_axes(spec, dict(self.axes))
        if self.isolated:
            return self._bind_to_worker(spec, layout)
        return self._bind_here(spec, layout)

    def _bind_here(self, spec: OpSpec, layout: str) -> "BoundPlugin":
        """Calls in this process (the time limit by SIGALRM)."""
        seen: list[str] = []
        by_role: dict[str, list[str]] = {}
        converted: set = set()  # foreign array types converted (cnn_gradcheck.frameworks), for the report
        names, backend, axes = spec.arg_names, self.backend, dict(self.axes)
        declared = conventions.declare(spec, self.conventions, backend.kind)

        def present(name, a):
            perm = axes.get(name)
            return backend.present(np.transpose(a, perm) if perm else a, layout)

        def back(name, value, what, role):
            via = frameworks.conversion(value)
            if via:
                converted.add(via)
            out, precision = calls.to_float64(value, what)
            seen.append(precision)
            by_role.setdefault(role, []).append(precision)
            perm = axes.get(name)
            return np.transpose(out, np.argsort(perm)) if perm and out.ndim == len(perm) else out

        def call(role, adapter, args, given: Mapping[str, Any], hyper):
            before = {n: backend.snapshot(a) for n, a in given.items()}
            try:
                with isolation.in_process_limit(self.time_limit):
                    result = adapter(*args)  # the adapters run user code through calls.call_user
            except calls.TimeLimitReached:
                raise isolation.time_out(self.time_limit, role, list(given.values()), hyper) from None
            calls.unchanged_all([(n, before[n], a) for n, a in given.items()], role)
            return result

        def forward(*arrays, **hyper):
            with backend.context():
                user, hyper = {n: present(n, a) for n, a in zip(names, arrays)}, as_scalars(hyper, self.scalar)
                raw = conventions.select_output(call("forward", self.forward, [user, hyper], user, hyper),
                                                self.output)
                return declared.forward(back("y", raw, "the forward output y", "forward"), dict(zip(names, arrays)))

        def backward(dy, *arrays, **hyper):
            with backend.context():
                user, hyper = {n: present(n, a) for n, a in zip(names, arrays)}, as_scalars(hyper, self.scalar)
                user_dy = present("y", dy) if declared.upstream_passed else None  # None: backward gets no dE
                given = {"dy (the upstream gradient)": user_dy, **user} if declared.upstream_passed else user
                raw = call("backward", self.backward, [user_dy, user, hyper, spec.differentiable], given, hyper)
                grads = calls.gradient_tuple(spec, raw)
                grads = {n: back(n, g, f"the gradient d{n}", "backward") for n, g in grads.items()}
                return declared.gradients(grads, dy, dict(zip(names, arrays)))

        return self._bound(forward, backward, layout, seen, by_role, declared, converted)

    def _bind_to_worker(self, spec: OpSpec, layout: str) -> "BoundPlugin":
        """Calls in the worker process of this plug-in and op, which binds the plug-in there (in-process) and serves
        canonical arrays in, canonical results and the precisions seen out."""
        here = replace(self, isolate=False, time_limit=None)  # the worker's own binding; the limit is kept here
        bound: dict[str, BoundPlugin] = {}

        def serve(request):
            role, where, arrays, hyper = request
            impl = bound.get(where) or bound.setdefault(where, here._bind_here(spec, where))
            start = {r: len(p) for r, p in impl.precision_roles.items()}
            result = getattr(impl, role)(*arrays, **hyper)
            return result, {r: p[start.get(r, 0):] for r, p in impl.precision_roles.items()}, set(impl.conversions)

        worker = isolation.worker_for(self, spec.name, serve)
        seen: list[str] = []
        by_role: dict[str, list[str]] = {}
        converted: set = set()

        def remote(role):
            def run(*arrays, **hyper):
                result, precisions, conversions = worker.call((role, layout, arrays, hyper), self.time_limit, role,
                                                              arrays, hyper)
                for r, p in precisions.items():
                    seen.extend(p)
                    by_role.setdefault(r, []).extend(p)
                converted.update(conversions)
                return result
            return run

        declared = conventions.declare(spec, self.conventions, self.backend.kind)
        return self._bound(remote("forward"), remote("backward"), layout, seen, by_role, declared, converted)

    def _bound(self, forward, backward, layout, seen, by_role, declared, converted) -> "BoundPlugin":
        hint = layouts_mod.hint(layout)
        if self.axes:
            hint += ("\nshapes above are in the canonical axes; the plug-in's axes are "
                     + ", ".join(f"{n}: {p}" for n, p in self.axes.items()))
        label = self.name if layout == "contiguous" else f"{self.name} (inputs as {layout} views)"
        if declared.names:
            label += f" [declared conventions: {', '.join(declared.names)}]"
        return BoundPlugin(label, forward, backward, layout=layout, precisions_seen=seen, failure_hint=hint,
                           precision_roles=by_role, conventions=declared.describe(), conversions=converted)


@dataclass(frozen=True)
class BoundPlugin(Implementation):
    """A plug-in bound to an op and a layout: canonical float64 numpy in and out, every call guarded."""

    layout: str = "contiguous"
    repeat_calls: bool = True  # cnn_gradcheck.calls calls a plug-in twice to catch nondeterminism
    #: "forward"/"backward" -> the precisions its results came in (a forward in float32 with a float64 backward is
    #: accepted, and said in the precision note)
    precision_roles: dict = field(default_factory=dict, compare=False)
    conventions: str = ""  # the declared conventions its results were converted from, for reports
    conversions: set = field(default_factory=set, compare=False)  # foreign array types converted to numpy


def make_plugin(name, forward, backward, kind, *, dtype="float64", device="cpu", axes=None, limits=None,
                layouts=None, tied=(), scalar=(), square=False, conventions=(), output=None, time_limit=None,
                isolate=None, examples=(), **unknown) -> Plugin:
    """The options every adapter takes (docs/plugins.md): dtype, device, axes, limits, layouts, and the tied axes:
    ``scalar=("stride", "padding")`` for a layer taking one int per hyperparameter, ``tied=`` for equal axes passed
    as pairs, ``square=True`` for square kernels and inputs; ``conventions=`` (cnn_gradcheck.conventions) and
    ``output=`` (the element of a returned tuple that is the op's output); ``isolate=True`` declares native code (a
    C/C++/CUDA extension, ctypes) whose crash should not end the run; ``time_limit``: seconds per call (default
    isolation.DEFAULT_TIME_LIMIT); ``examples=``: explicit examples checked first and always, wherever the plug-in is
    checked (as check_plugin's examples=, also from ``pytest --plugin`` and ``cnn-gradcheck check``)."""
    if unknown:
        raise layouts_mod.PluginOptionError(
            f"bad plug-in option {', '.join(map(repr, unknown))}: the options every adapter takes are dtype, device, "
            f"axes, limits, layouts, tied, scalar, square, conventions, output, time_limit, isolate, examples, name "
            f"(and the adapter's own)")
    if output is not None and (isinstance(output, bool) or not isinstance(output, int)):
        raise layouts_mod.PluginOptionError(f"bad plug-in option output={output!r}: the index of the op's output "
                                            f"in the tuple forward returns (output=0 for the first element)")
    return Plugin(name, forward, backward, Backend(kind, dtype, device), dict(axes or {}), dict(limits or {}),
                  layouts_mod.check_layouts(layouts) if layouts else None, tied=_names("tied", tied),
                  scalar=_names("scalar", scalar), square=bool(square),
                  conventions=_names("conventions", conventions), output=output,
                  examples=tuple(examples or ())).with_guards(time_limit, isolate)


def _names(option: str, names) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not all(isinstance(n, str) for n in names):
        raise layouts_mod.PluginOptionError(f"bad plug-in option {option}={names!r}: names of pairs of axes, e.g. "
                                            f"{option}=(\"stride\", \"padding\")")
    return names


