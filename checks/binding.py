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

from . import calls, conventions, frameworks, layouts as layouts_mod
from .layouts import NUMPY, Backend
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
    #: pairs of axes (stride, padding, dilation, kernel, size) drawn equal; ``scalar`` ones are also passed as an int
    tied: tuple[str, ...] = ()
    scalar: tuple[str, ...] = ()
    square: bool = False  # square kernels and square inputs: tied kernel and size
    #: declared conventions (cnn_gradcheck.conventions): results converted to the canonical ones
    conventions: tuple[str, ...] = ()
    output: int | None = None  # which element of a tuple the forward returns is the op's output

    def with_limits(self, **limits) -> "Plugin":
        """The same plug-in declaring (more) limits, e.g. ``stride=1, padding=0``; a limit replaces the plug-in's
        own on the same fields (``padding=0`` replaces ``ph=1, pw=1``)."""
        return replace(self, limits=merge_limits(self.limits, limits))

    def bind(self, spec: OpSpec, layout: str = "contiguous") -> "BoundPlugin":
        """The plug-in as an Implementation of ``spec`` in the canonical convention, inputs in ``layout``."""
        seen: list[str] = []
        converted: set = set()  # foreign array types converted (cnn_gradcheck.frameworks), for the report
        names, backend, axes = spec.arg_names, self.backend, dict(self.axes)
        layouts_mod.check_layouts([layout], f"{spec.name}: ")
        check_axes(spec, axes)
        declared = conventions.declare(spec, self.conventions, backend.kind)

        def present(name, a):
            perm = axes.get(name)
            return backend.present(np.transpose(a, perm) if perm else a, layout)

        def back(name, value, what):
            via = frameworks.conversion(value)
            if via:
                converted.add(via)
            out, precision = calls.to_float64(value, what)
            seen.append(precision)
            perm = axes.get(name)
            return np.transpose(out, np.argsort(perm)) if perm and out.ndim == len(perm) else out

        def call(role, adapter, args, given: Mapping[str, Any]):
            before = {n: backend.snapshot(a) for n, a in given.items()}
            result = adapter(*args)  # the adapters run user code through calls.call_user
            for n, a in given.items():
                calls.unchanged(n, before[n], a, role)
            return result

        def forward(*arrays, **hyper):
            with backend.context():
                user, hyper = {n: present(n, a) for n, a in zip(names, arrays)}, as_scalars(hyper, self.scalar)
                raw = conventions.select_output(call("forward", self.forward, [user, hyper], user), self.output)
                return declared.forward(back("y", raw, "the forward output y"), dict(zip(names, arrays)))

        def backward(dy, *arrays, **hyper):
            with backend.context():
                user, hyper = {n: present(n, a) for n, a in zip(names, arrays)}, as_scalars(hyper, self.scalar)
                user_dy = present("y", dy) if declared.upstream_passed else None  # None: backward gets no dE
                given = {"dy (the upstream gradient)": user_dy, **user} if declared.upstream_passed else user
                raw = call("backward", self.backward, [user_dy, user, hyper, spec.differentiable], given)
                grads = calls.gradient_tuple(spec, raw)
                grads = {n: back(n, g, f"the gradient d{n}") for n, g in grads.items()}
                return declared.gradients(grads, dy, dict(zip(names, arrays)))

        hint = layouts_mod.hint(layout)
        if axes:
            hint += ("\nshapes above are in the canonical axes; the plug-in's axes are "
                     + ", ".join(f"{n}: {p}" for n, p in axes.items()))
        label = self.name if layout == "contiguous" else f"{self.name} (inputs as {layout} views)"
        if declared.names:
            label += f" [declared conventions: {', '.join(declared.names)}]"
        return BoundPlugin(label, forward, backward, layout=layout, precisions_seen=seen, failure_hint=hint,
                           conventions=declared.describe(), conversions=converted)


@dataclass(frozen=True)
class BoundPlugin(Implementation):
    """A plug-in bound to an op and a layout: canonical float64 numpy in and out, every call guarded."""

    layout: str = "contiguous"
    repeat_calls: bool = True  # cnn_gradcheck.calls calls a plug-in twice to catch nondeterminism
    conventions: str = ""  # the declared conventions its results were converted from, for reports
    conversions: set = field(default_factory=set, compare=False)  # foreign array types converted to numpy


def make_plugin(name, forward, backward, kind, *, dtype="float64", device="cpu", axes=None, limits=None,
                layouts=None, tied=(), scalar=(), square=False, conventions=(), output=None, **unknown) -> Plugin:
    """The options every adapter takes (docs/plugins.md): dtype, device, axes, limits, layouts, and the tied axes:
    ``scalar=("stride", "padding")`` for a layer taking one int per hyperparameter, ``tied=`` for equal axes passed
    as pairs, ``square=True`` for square kernels and inputs; ``conventions=`` (cnn_gradcheck.conventions) and
    ``output=`` (the element of a returned tuple that is the op's output)."""
    if unknown:
        raise layouts_mod.PluginOptionError(
            f"bad plug-in option {', '.join(map(repr, unknown))}: the options every adapter takes are dtype, device, "
            f"axes, limits, layouts, tied, scalar, square, conventions, output, name (and the adapter's own)")
    if output is not None and (isinstance(output, bool) or not isinstance(output, int)):
        raise layouts_mod.PluginOptionError(f"bad plug-in option output={output!r}: the index of the op's output "
                                            f"in the tuple forward returns (output=0 for the first element)")
    return Plugin(name, forward, backward, Backend(kind, dtype, device), dict(axes or {}), dict(limits or {}),
                  layouts_mod.check_layouts(layouts) if layouts else None, _names("tied", tied),
                  _names("scalar", scalar), bool(square), _names("conventions", conventions), output)


def _names(option: str, names) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not all(isinstance(n, str) for n in names):
        raise layouts_mod.PluginOptionError(f"bad plug-in option {option}={names!r}: names of pairs of axes, e.g. "
                                            f"{option}=(\"stride\", \"padding\")")
    return names


