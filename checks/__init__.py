"""Gradient-verification harness for CNN layers.

    from checks import check_op, get_spec, Implementation
    check_op(get_spec("conv2d"), Implementation("mine", my_forward, my_backward))

    from checks import check_plugin          # your own layer, through an adapter (see checks.plugins)
    check_plugin("conv2d", my_plugin)
"""
from .plugins import PluginCheckFailure, check_plugin
from .property import check_op, minimal_failure
from .registry import all_formulas, all_specs, get_spec
from .runner import GradientCheckFailure, NotDifferentiableHere, assert_case, check_case
from .spec import Case, Formula, Implementation, OpSpec

__all__ = ["check_plugin", "PluginCheckFailure", "check_op", "minimal_failure", "all_formulas", "all_specs", "get_spec", "GradientCheckFailure",
           "NotDifferentiableHere", "assert_case", "check_case", "Case", "Formula", "Implementation", "OpSpec"]
