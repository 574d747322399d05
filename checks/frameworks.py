"""Arrays of other frameworks, and the JAX adapter.

What a plug-in returns may be any array type: numpy and torch are read directly; anything else that offers one of
the common exchange protocols is converted, in this order of preference:

    value.__array__()     numpy's protocol (JAX, CuPy via .get(), xarray, dask, ...)  -> np.asarray(value)
    value.__dlpack__()    the DLPack protocol (JAX, CuPy, TensorFlow, MXNet, PaddlePaddle) -> np.from_dlpack(value)
    value.numpy()         a method by convention (TensorFlow eager tensors, ...)     -> value.numpy()

Another type is reported naming it and the conversion to add. The report of a passing check says once which
conversion was used (``conversion`` names it).

``jax_function(fn)`` is the JAX counterpart of ``torch_function``: forward through JAX, gradients by ``jax.vjp``
with dE as the cotangent, 64-bit arrays enabled for each call (``Backend.context``). Any other autodiff framework
plugs in the same way in three lines (docs/plugins.md, "Other frameworks"): a forward and a vector-Jacobian
product, each returning arrays this module converts.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .calls import ImplementationError, call_user
from .conventions import select_output


def _native(value: Any) -> bool:
    return isinstance(value, np.ndarray) or np.isscalar(value) or type(value).__module__.startswith("torch")


def conversion(value: Any) -> str | None:
    """The protocol a foreign array will be converted through, or None for numpy, torch and Python numbers."""
    if value is None or _native(value) or isinstance(value, (list, tuple, float, int)):
        return None
    kind = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
    for protocol in ("__array__", "__dlpack__", "numpy"):
        if callable(getattr(value, protocol, None)):
            return f"{kind} via {protocol if protocol != 'numpy' else '.numpy()'}"
    return None


def to_numpy(value: Any, what: str) -> Any:
    """A foreign array as a numpy array (numpy, torch and anything else unchanged); a type that offers no known
    conversion is reported naming it."""
    if value is None or _native(value) or isinstance(value, (list, tuple, float, int)):
        return value
    try:
        if callable(getattr(value, "__array__", None)):
            return np.asarray(value)
        if callable(getattr(value, "__dlpack__", None)):
            return np.from_dlpack(value)
        if callable(getattr(value, "numpy", None)):
            return np.asarray(value.numpy())
    except Exception as e:  # a device array without a host copy, say: the conversion is the user's to add
        raise ImplementationError("wrong output type", f"{what} is a {_type(value)}, whose conversion to numpy "
                                  f"failed ({type(e).__name__}: {e}); return a numpy array (e.g. copy it to the "
                                  f"host first)") from None
    raise ImplementationError("wrong output type", f"{what} is a {_type(value)}, which the harness cannot read: "
                              f"return a numpy array, or give the type __array__ (numpy's protocol), __dlpack__ or "
                              f"a .numpy() method")


def _type(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


# ----------------------------------------------------------------------------------------------------- JAX

def jax_function(fn: Callable, *, name: str | None = None, **options):
    """A differentiable JAX function ``fn(*arrays, **hyper) -> array``: forward through JAX, gradients by
    ``jax.vjp`` (dE as the cotangent). Needs the optional extra: ``pip install 'cnn-gradcheck[jax]'``."""
    import importlib.util
    if importlib.util.find_spec("jax") is None:
        from .layouts import PluginOptionError
        raise PluginOptionError("jax_function needs JAX: pip install 'cnn-gradcheck[jax]' (or pip install jax)") \
            from None
    from .binding import make_plugin

    label = name or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"

    def fwd(arrays, hyper):
        return call_user(fn, list(arrays.values()), hyper, "forward")

    def bwd(dy, arrays, hyper, wrt):
        import jax  # noqa: F811
        names = list(arrays)

        def of_wrt(*moving):  # fn as a function of the differentiated arguments only
            values = dict(arrays, **dict(zip(wrt, moving)))
            return select_output(fn(*(values[n] for n in names), **hyper), options.get("output"))

        y, vjp = call_user(jax.vjp, [of_wrt, *(arrays[n] for n in wrt)], {}, "forward (under jax.vjp)")
        if getattr(y, "shape", None) != getattr(dy, "shape", None):
            raise ImplementationError("wrong output shape", f"forward returned shape {getattr(y, 'shape', None)}; "
                                      f"the upstream gradient has shape {dy.shape}")
        return tuple(call_user(vjp, [dy.astype(y.dtype)], {}, "backward (jax.vjp)"))

    return make_plugin(label, fwd, bwd, "jax", **options)
