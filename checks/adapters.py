"""Adapters: the shapes user code has, each turned into a ``Plugin`` (``cnn_gradcheck.binding``).

    plugin(forward, backward)             functions already in the canonical convention
    function_pair(forward, backward)      cs231n style: forward(...) -> (out, cache), backward(dout, cache) -> grads
    layer_object(make, params, grads)     an object with forward(x) / backward(dy) (or other method names, an init,
                                          lazily drawn weights, (1, C) biases), parameters and gradients kept in
                                          attributes or dicts ("W", "grads.W", "params[W]"), perhaps accumulated
    torch_function(fn)                    any differentiable function of tensors (gradients by autograd)
    autograd_function(Function)           a torch.autograd.Function subclass
    torch_module(make, params)            a torch.nn.Module (parameters swapped in with torch.func.functional_call)
    jax_function(fn)                      a differentiable JAX function (cnn_gradcheck.frameworks; gradients by jax.vjp)

Every adapter takes the options of ``binding.make_plugin``: dtype, device, axes, limits, layouts, tied axes
(scalar=, tied=, square=), conventions= (cnn_gradcheck.conventions) and output= (which element of a returned tuple
is the op's output).

``as_plugin`` accepts what a user hands over; ``load("module:attribute")`` finds it by name.
"""
from __future__ import annotations

import importlib
from dataclasses import replace
import inspect
import os
import sys
from typing import Any, Callable, Mapping

import numpy as np

from . import calls
from .binding import Plugin, make_plugin
from .calls import ImplementationError
from .conventions import select_output
from .layouts import PluginOptionError
from .spec import Implementation


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

    def bwd(dy, arrays, hyper, wrt):  # dy is None when a convention says backward takes no dE
        return calls.call_user(backward, [*_upstream(dy), *arrays.values()], hyper, "backward")

    return replace(make_plugin(name or _label(forward), fwd, bwd, kind, **options),
                   accepts=_keywords(forward, backward))


def _keywords(*functions) -> frozenset | None:
    """The keyword arguments every one of ``functions`` takes; None when one takes **kwargs or has no signature."""
    taken = None
    for fn in functions:
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        taken = names if taken is None else taken & names
    return frozenset(taken or ())


def _upstream(dy) -> list:
    """The upstream gradient as the first positional argument, or nothing (conventions no_upstream, fused_...)."""
    return [] if dy is None else [dy]


def function_pair(forward: Callable, backward: Callable, *, call: Callable | None = None, name: str | None = None,
                  **options) -> Plugin:
    """cs231n style: ``out, cache = forward(*args)``; ``grads = backward(dout, cache)`` in grad_args order.
    ``call(*arrays, **hyper)`` -> the positional args of forward (default: the arrays, hyperparameters by keyword),
    e.g. ``call=lambda x, w, b, stride, padding, dilation: (x, w, b, {"stride": stride[0], "pad": padding[0]})``."""
    def with_cache(arrays, hyper):
        args, kwargs = ((call(*arrays.values(), **hyper), {}) if call else (list(arrays.values()), hyper))
        result = calls.call_user(forward, args, kwargs, "forward")
        if not (isinstance(result, tuple) and len(result) >= 2):
            raise ImplementationError("wrong output type", f"forward of a function pair must return (out, cache); "
                                      f"it returned a {type(result).__name__}")
        return result[:-1] if len(result) > 2 else result[0], result[-1]  # (out, extra outputs..., cache)

    def fwd(arrays, hyper):
        return with_cache(arrays, hyper)[0]

    def bwd(dy, arrays, hyper, wrt):
        _, cache = with_cache(arrays, hyper)  # a fresh forward: no cache is shared between calls
        return calls.call_user(backward, [*_upstream(dy), cache], {}, "backward")

    return replace(make_plugin(name or _label(forward), fwd, bwd, "numpy", **options),
                   accepts=_keywords(call or forward))  # the hyperparameters go by keyword to call, else forward


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


def layer_object(make: Any, *, params: Mapping[str, str], grads: Mapping[str, str], accumulate: str = "reset",
                 forward: str = "forward", backward: str = "backward", forward_kwargs: Mapping[str, Any] | None = None,
                 init: str | Callable | None = None, lazy: bool = False, shapes: Mapping[str, tuple] | None = None,
                 name: str | None = None, **options) -> Plugin:
    """An object with ``forward(*inputs) -> y`` and ``backward(dy)`` (returning the input gradient(s)), as layers
    are found in the wild; everything that differs is declared:

    make:       a class or factory, called for every call with the parameter arrays and hyperparameters its
                signature names (``make(w=..., b=..., stride=...)``; none for ``ReLU()``), or one instance reused
                for all calls (then gradients may accumulate across calls).
    params:     arg name -> where the object keeps that parameter, e.g. {"w": "W", "b": "b"} or "params.W".
                The other arguments of the op are the inputs of forward, in spec order.
    grads:      arg name -> where backward leaves its gradient ("dW", "grads.W", "grads[W]"); inputs not named here
                are taken from backward's return value (one array, or a tuple for several inputs).
    accumulate: "reset" (assign zeros to the gradient slots before backward: right for objects that add,
                ``dW += ...``, and for objects that overwrite), "diff" (for slots that cannot be assigned: zero
                the array held there in place, or else take after - before, which carries the rounding of the
                accumulated sum) or "none" (take the slots as backward leaves them: only for objects that
                overwrite; one that adds is then caught, its second identical call giving other gradients).
    forward, backward: the method names ("fprop", "bprop", "__call__"); forward_kwargs: extra keyword arguments
                of forward ({"training": True}).
    init:       called after make, before use: a method name (``"build"``: called with no arguments) or a function
                ``init(layer, *arrays)`` (``lambda layer, x, W, b: layer.init(W.shape[0])``).
    lazy:       the layer (re)draws its weights on its first forward: forward runs once before the parameters are
                set.
    shapes:     arg name -> the shape the layer keeps that parameter in, e.g. {"b": (1, -1)} for a (1, C) bias;
                without it, a parameter already held in another shape of the same size ((C, 1), (1, 1, 1, C)) is
                set in that shape, and gradients of the same size come back in the op's shape.
    """
    if accumulate not in ("reset", "diff", "none"):
        raise PluginOptionError(f"bad plug-in option accumulate={accumulate!r}: it is 'reset', 'diff' or 'none'")
    reuse = not inspect.isclass(make) and hasattr(make, forward)
    shapes, extra = dict(shapes or {}), dict(forward_kwargs or {})

    def instance(arrays, hyper):
        obj = make if reuse else calls.call_user(make, [], _accepted(make, {**{p: arrays[p] for p in params},
                                                                             **hyper}), f"{_label(make)} (make)",
                                                 draws_random=True)
        kind = type(obj).__name__
        if init is not None:  # may draw initial weights too
            if isinstance(init, str):
                calls.call_user(_method(obj, init), [], {}, f"{kind}.{init}", draws_random=True)
            else:
                calls.call_user(init, [obj, *arrays.values()], {}, f"{_label(init)} (init)", draws_random=True)
        inputs = [a for n, a in arrays.items() if n not in params]
        if lazy:  # weights drawn on the first forward: let it happen before the harness sets them
            calls.call_user(_method(obj, forward), inputs, extra, f"{kind}.{forward}", draws_random=True)
        for p, path in params.items():
            if not _set(obj, path, _held_shape(obj, path, arrays[p], shapes.get(p), p)):
                raise ImplementationError("missing attribute", f"{kind} has no {path!r} to hold "
                                          f"the parameter {p} (params={dict(params)})")
        y = calls.call_user(_method(obj, forward), inputs, extra, f"{kind}.{forward}")
        return obj, y

    def fwd(arrays, hyper):
        return instance(arrays, hyper)[1]

    def bwd(dy, arrays, hyper, wrt):
        obj, _ = instance(arrays, hyper)
        kind = type(obj).__name__
        before = {}
        for p, path in grads.items():
            if accumulate == "reset" and p in arrays:
                _set(obj, path, _zeros_like(_held_shape(obj, path, arrays[p], shapes.get(p), p, quiet=True)))
            elif accumulate == "diff":
                before[p] = _zero_in_place_or_copy(_get(obj, path))
        returned = calls.call_user(_method(obj, backward), _upstream(dy), {}, f"{kind}.{backward}")
        from_return = [n for n in wrt if n not in grads]
        if len(from_return) == 1:
            returned = (returned,)
        out = dict(zip(from_return, returned if isinstance(returned, (tuple, list)) else (returned,)))
        for p, path in grads.items():
            g = _get(obj, path)
            if g is None:
                raise ImplementationError("missing gradient", f"after {backward}, {kind} has nothing "
                                          f"at {path!r} for d{p} (grads={dict(grads)})")
            g = _copy(g) - before[p] if p in before else _copy(g)
            out[p] = _in_shape_of(g, arrays[p], f"after {backward}, {kind}.{path} (d{p})")
        return out

    return make_plugin(name or _label(make), fwd, bwd, "numpy", **options)


def _accepted(fn, kwargs: Mapping[str, Any]) -> dict:
    """The keyword arguments ``fn``'s signature takes (all of them when it has **kwargs or no signature)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(kwargs)
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


def _held_shape(obj, path: str, value, declared, arg: str, quiet: bool = False):
    """``value`` in the shape the layer keeps the parameter in: the declared one, else that of the array the layer
    already holds there when it has the same number of elements (a (1, C) or (C, 1) bias)."""
    if declared is not None:
        try:
            return np.reshape(value, declared)
        except ValueError:
            raise PluginOptionError(f"bad plug-in option shapes[{arg!r}]={declared!r}: the parameter {arg} has "
                                    f"shape {np.shape(value)}, {np.size(value)} elements") from None
    held = _get(obj, path)
    if (held is not None and hasattr(held, "shape") and np.size(held) == np.size(value)
            and tuple(held.shape) != tuple(np.shape(value))):
        return np.reshape(value, held.shape)
    return value


def _in_shape_of(g, canonical, what: str):
    """A gradient in the shape of its parameter as the harness passed it (same elements: (1, C) -> (C,))."""
    shape = tuple(np.shape(canonical))
    if tuple(np.shape(g)) == shape or not hasattr(g, "shape"):
        return g
    if np.size(g) == np.size(canonical):
        return np.reshape(g, shape)
    raise ImplementationError("wrong gradient shape", f"{what} has shape {tuple(np.shape(g))}; the harness passed "
                              f"the parameter with shape {shape} and expected its gradient in that shape (or "
                              f"another with the same {np.size(canonical)} elements)")


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
    return replace(_autograd_plugin(name or _label(fn), lambda arrays, hyper: calls.call_user(
        fn, list(arrays.values()), hyper, "forward"), **options), accepts=_keywords(fn))  # hyper by keyword


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
            make, [], {**{p: arrays[p] for p in params}, **hyper}, f"{_label(make)} (make)",
            draws_random=True)
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
        y = select_output(run(leaves, hyper), options.get("output"))
        if not isinstance(y, torch.Tensor):
            raise ImplementationError("wrong output type", f"forward returned a {type(y).__name__}, not a tensor")
        if not y.requires_grad:
            raise ImplementationError("no gradient path", "the output does not depend on the inputs through "
                                      "autograd (was it detached, or computed through numpy?)")
        targets = [leaves[n] for n in wrt]
        grads = calls.call_user(torch.autograd.grad, [y, targets],
                                {"grad_outputs": dy.to(y.dtype), "allow_unused": True}, "backward")
        return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(targets, grads))

    return make_plugin(name, fwd, bwd, "torch", **options)


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


