"""Failure reports claim what was found and measured: the smallest of several failures is reported and the other
kinds are listed (part 1); verdicts that would mislead are said plainly (part 2); oracles that cannot resolve the
discrepancy are not listed as agreeing (part 3)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

from cnn_gradcheck.calls import ImplementationError
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import GradientCheckFailure, check_case, case_size, other_kinds_lines, smallest_verdict

CONV = get_spec("conv2d")
REF = CONV.reference
PLAIN = dict(sh=1, sw=1, ph=0, pw=0, dilh=1, dilw=1)


def conv(**c):
    config = dict(N=1, C_in=1, C_out=1, H=2, W=2, kh=1, kw=1, **PLAIN)
    config.update(c)
    return config


def _dx_doubled_from_two_channels(dy, x, w, b, **hyper):
    dx, dw, db = REF.backward(dy, x, w, b, **hyper)
    if w.shape[0] >= 2 and w.shape[1] >= 2:
        dx = dx * 2
    return dx, dw, db


def _dw_cropped_at_one_input_channel(dy, x, w, b, **hyper):
    dx, dw, db = _dx_doubled_from_two_channels(dy, x, w, b, **hyper)
    if w.shape[0] == 2 and w.shape[1] == 1:
        dw = dw[:, :, :1]
    return dx, dw, db


class _Group(Exception):
    """Stands for Hypothesis's exception group: it carries the failures in ``exceptions``."""

    def __init__(self, exceptions):
        super().__init__("several failures")
        self.exceptions = exceptions


def test_smallest_of_several_failures_is_chosen_and_the_other_kinds_listed():
    from cnn_gradcheck.spec import Implementation
    impl = Implementation("dx doubled", REF.forward, _dx_doubled_from_two_channels)
    big = check_case(CONV, impl, CONV.make_case(conv(C_in=2, C_out=2, H=3, W=3), 0))
    bigger = check_case(CONV, impl, CONV.make_case(conv(C_in=3, C_out=2, H=3, W=3), 0))
    assert big.failures and bigger.failures
    small_case = CONV.make_case(conv(C_out=2, kh=2, H=2, W=1), 0)
    shape_error = ImplementationError("wrong output shape", "the gradient dw has shape (2, 1, 1, 1)")
    shape_error.case = small_case
    # Hypothesis's order (the bigger value failures first) is not the order by size
    chosen, others = smallest_verdict(_Group([GradientCheckFailure(bigger), GradientCheckFailure(big),
                                              shape_error]))
    assert chosen is shape_error
    assert [o.result for o in others] == [big]  # one line per distinct kind: the smallest dx failure
    lines = other_kinds_lines(others)
    assert "dx wrong at conv2d(N=1, C_in=2, C_out=2" in lines[1]
    assert case_size(small_case) < case_size(big.case) < case_size(bigger.case)


def test_check_plugin_reports_the_smallest_failure_and_lists_the_other():
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", plugin(REF.forward, _dw_cropped_at_one_input_channel),
                     settings=settings(max_examples=60, deadline=None, derandomize=True, database=None))
    text = str(failure.value)
    head, _, rest = text.partition("other kinds of failure")
    assert "wrong output shape" in head.splitlines()[0] and "C_in=1, C_out=2" in head
    assert "- dx wrong at conv2d(N=1, C_in=2, C_out=2" in rest
