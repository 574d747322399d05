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

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from . import calls, isolation, layouts as layouts_mod
from .layouts import NUMPY, Backend, PluginOptionError
from .options import check_axes
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
    #: seconds one call may take (None: no limit); isolate: run the calls in a worker process (None: for torch
    #: plug-ins on the CPU; True: declares native code; never where fork is unsafe: cnn_gradcheck.isolation)
    time_limit: float | None = isolation.DEFAULT_TIME_LIMIT
    isolate: bool | None = None

    def with_limits(self, **limits) -> "Plugin":
        """The same plug-in declaring (more) limits, e.g. ``stride=1, padding=0``."""
        return replace(self, limits={**self.limits, **limits})

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
        for torch plug-ins on the CPU (native kernels, custom extensions); plain numpy plug-ins run in-process (a
        worker costs ~50% more time per check), and CUDA ones too (a forked child cannot share the harness's CUDA
        driver state); never where fork is unsafe."""
        wanted = (self.backend.kind == "torch" and self.backend.device == "cpu") if self.isolate is None \
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
        names, backend, axes = spec.arg_names, self.backend, dict(self.axes)

        def present(name, a):
            perm = axes.get(name)
            return backend.present(np.transpose(a, perm) if perm else a, layout)

        def back(name, value, what, role):
            out, precision = calls.to_float64(value, what)
            seen.append(precision)
            by_role.setdefault(role, []).append(precision)
            perm = axes.get(name)
            return np.transpose(out, np.argsort(perm)) if perm and out.ndim == len(perm) else out

        def call(role, adapter, args, given: Mapping[str, Any], hyper):
            before = {n: backend.snapshot(a) for n, a in given.items()}
            try:
                with isolation.in_process_limit(self.time_limit), _deterministic_torch(backend):
                    result = adapter(*args)  # the adapters run user code through calls.call_user
            except calls.TimeLimitReached:
                raise isolation.time_out(self.time_limit, role, list(given.values()), hyper) from None
            for n, a in given.items():
                calls.unchanged(n, before[n], a, role)
            return result

        def forward(*arrays, **hyper):
            user = {n: present(n, a) for n, a in zip(names, arrays)}
            y = call("forward", self.forward, [user, hyper], user, hyper)
            return back("y", y, "the forward output y", "forward")

        def backward(dy, *arrays, **hyper):
            user = {n: present(n, a) for n, a in zip(names, arrays)}
            user_dy = present("y", dy)
            raw = call("backward", self.backward, [user_dy, user, hyper, spec.differentiable],
                       {"dy (the upstream gradient)": user_dy, **user}, hyper)
            grads = calls.gradient_tuple(spec, raw)
            return {n: back(n, g, f"the gradient d{n}", "backward") for n, g in grads.items()}

        return self._bound(forward, backward, layout, seen, by_role)

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
            return result, {r: p[start.get(r, 0):] for r, p in impl.precision_roles.items()}

        worker = isolation.worker_for(self, spec.name, serve)
        seen: list[str] = []
        by_role: dict[str, list[str]] = {}

        def remote(role):
            def run(*arrays, **hyper):
                result, precisions = worker.call((role, layout, arrays, hyper), self.time_limit, role, arrays, hyper)
                for r, p in precisions.items():
                    seen.extend(p)
                    by_role.setdefault(r, []).extend(p)
                return result
            return run

        return self._bound(remote("forward"), remote("backward"), layout, seen, by_role)

    def _bound(self, forward, backward, layout, seen, by_role) -> "BoundPlugin":
        hint = layouts_mod.hint(layout)
        if self.axes:
            hint += ("\nshapes above are in the canonical axes; the plug-in's axes are "
                     + ", ".join(f"{n}: {p}" for n, p in self.axes.items()))
        label = self.name if layout == "contiguous" else f"{self.name} (inputs as {layout} views)"
        return BoundPlugin(label, forward, backward, layout=layout, precisions_seen=seen, failure_hint=hint,
                           precision_roles=by_role)


@dataclass(frozen=True)
class BoundPlugin(Implementation):
    """A plug-in bound to an op and a layout: canonical float64 numpy in and out, every call guarded."""

    layout: str = "contiguous"
    precisions_seen: list = field(default_factory=list, compare=False)
    failure_hint: str = ""
    repeat_calls: bool = True  # cnn_gradcheck.calls calls a plug-in twice to catch nondeterminism
    #: "forward"/"backward" -> the precisions its results came in (a forward in float32 with a float64 backward is
    #: accepted, and said in the precision note)
    precision_roles: dict = field(default_factory=dict, compare=False)


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


def make_plugin(name, forward, backward, kind, *, dtype="float64", device="cpu", axes=None, limits=None,
                 layouts=None, time_limit=None, isolate=None) -> Plugin:
    """isolate=True declares native code (a C/C++/CUDA extension, ctypes) whose crash should not end the run;
    time_limit: seconds per call (default isolation.DEFAULT_TIME_LIMIT)."""
    return Plugin(name, forward, backward, Backend(kind, dtype, device), dict(axes or {}), dict(limits or {}),
                  layouts_mod.check_layouts(layouts) if layouts else None).with_guards(time_limit, isolate)


