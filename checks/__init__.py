"""cnn_gradcheck: the gradient-verification harness for CNN layers.

    from cnn_gradcheck import check_plugin, torch_function, layer_object
    check_plugin("conv2d", my_plugin)              # your own layer, through an adapter (cnn_gradcheck.plugins)
    replay("conv2d", my_plugin, config, seed=...)  # re-run exactly the case a failure report names

Importing this package is cheap: numpy, torch, Hypothesis and the harness load on first use of a name below (PEP
562 module ``__getattr__``), so the pytest plug-in that every pytest run of a user's project loads costs nothing
until a check is asked for.
"""
from __future__ import annotations

import importlib

#: public name -> the module that defines it
_PUBLIC = {
    "check": "generic",
    "check_plugin": "plugins",
    "replay": "plugins",
    "PluginCheckFailure": "plugins",
    "plugin": "plugins",
    "function_pair": "plugins",
    "layer_object": "plugins",
    "torch_function": "plugins",
    "autograd_function": "plugins",
    "torch_module": "plugins",
    "jax_function": "plugins",
    "NHWC": "plugins",
    "HWIO": "plugins",
    "get_spec": "registry",
    "all_specs": "registry",
    "register": "registry",
}
#: also importable from the top, for the harness's own tests and advanced use; not part of the short public surface
_MORE = {
    "check_op": "property",
    "minimal_failure": "property",
    "all_formulas": "registry",
    "GradientCheckFailure": "runner",
    "NotDifferentiableHere": "runner",
    "assert_case": "runner",
    "check_case": "runner",
    "Case": "spec",
    "Formula": "spec",
    "Implementation": "spec",
    "OpSpec": "spec",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    module = _PUBLIC.get(name) or _MORE.get(name)
    if module is None:
        raise AttributeError(f"module 'cnn_gradcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | set(_MORE))
