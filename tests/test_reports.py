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

pytest_plugins = ["pytester"]  # the --shrink-budget option, run in-process

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
    shape_error = ImplementationError("wrong gradient shape", "the gradient dw has shape (2, 1, 1, 1)")
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
    assert "wrong gradient shape" in head.splitlines()[0] and "C_in=1, C_out=2" in head
    assert "- dx wrong at conv2d(N=1, C_in=2, C_out=2" in rest
    assert "not fully shrunk" not in text  # the default budget (60 s) was enough


# ------------------------------------------------------------------------------------------ part 2: misleading verdicts

def _scaled_forward(factor_y, factor_grads):
    from cnn_gradcheck.spec import Implementation
    return Implementation(f"forward x{factor_y}, backward x{factor_grads}",
                          lambda *a, **h: factor_y * REF.forward(*a, **h),
                          lambda *a, **h: tuple(factor_grads * g for g in REF.backward(*a, **h)))


def test_wrong_forward_with_a_right_backward_says_the_backward_matches_the_true_op():
    from cnn_gradcheck.report import failure_report
    result = check_case(CONV, _scaled_forward(2, 1), CONV.make_case(conv(), 0))
    text = failure_report(result)
    assert "db, dw, dx match the TRUE op's gradient" in text
    assert text.splitlines()[0] == ("conv2d: forward wrong in forward x2, backward x1 "
                                    "(db, dw, dx disagree only with its own forward)")
    assert "got = 1 " not in text and "diagnosis forward: scaled by a constant: got = 2" in text
    assert "diagnosis dx: nothing to diagnose: it equals the true op's gradient" in text


def test_wrong_forward_with_a_consistent_backward_says_it_matches_the_own_forward():
    from cnn_gradcheck.report import failure_report
    text = failure_report(check_case(CONV, _scaled_forward(2, 2), CONV.make_case(conv(), 0)))
    assert "db, dw, dx match the implementation's OWN forward" in text
    assert "TRUE op's gradient" not in text


def test_a_derivative_exactly_zero_gets_absolute_figures():
    from cnn_gradcheck.report import failure_report
    from cnn_gradcheck.spec import Implementation
    relu = get_spec("relu")
    passthrough = Implementation("relu without its mask", relu.reference.forward, lambda dy, x: dy)
    case = relu.make_case(dict(N=1, K=1), 2)
    assert case.arrays["x"].item() < 0  # the true derivative is exactly 0
    text = failure_report(check_case(relu, passthrough, case))
    assert "dx vs pytorch: derivative exactly 0: max abs error" in text
    assert "e+30" not in text and "max rel error" not in text.split("dx vs pytorch")[1].split("\n")[0]


def test_absurd_percentages_in_notes_are_written_plainly():
    from cnn_gradcheck.report import readable
    assert readable("a tolerance of 123456789012345678% of the derivative's scale") == \
        "a tolerance of far more than 100% of the derivative's scale"
    assert readable("up to 50% of the scale") == "up to 50% of the scale"


def _dx_times_one_and_a_half(dy, x, w, b, **hyper):
    dx, dw, db = REF.backward(dy, x, w, b, **hyper)
    return dx * 1.5, dw, db


def test_a_failure_shrunk_onto_padding_only_windows_is_reported_where_every_window_sees_input():
    from cnn_gradcheck.runner import padding_only_windows, prefer_real_windows
    from cnn_gradcheck.spec import Implementation
    impl = Implementation("dx x 1.5", REF.forward, _dx_times_one_and_a_half)
    padded = conv(H=1, W=1, ph=1, pw=1)
    assert padding_only_windows(padded) == 4  # rows 0 and 2, columns 0 and 2 read only padding
    shrunk = check_case(CONV, impl, CONV.make_case(padded, 0))
    better = prefer_real_windows(GradientCheckFailure(shrunk))
    assert better.result.case.config["ph"] == 0 and better.result.case.config["pw"] == 0
    assert better.result.failures
    # limits that fix the padding are kept: the kernel reaches past it instead
    kept = prefer_real_windows(GradientCheckFailure(shrunk), {"padding": 1}).result.case.config
    assert (kept["ph"], kept["pw"], kept["kh"], kept["kw"]) == (1, 1, 2, 2)
    assert prefer_real_windows(GradientCheckFailure(shrunk), {"padding": 1, "kernel": 1}).result is shrunk


def test_a_failure_that_needs_padding_reaches_it_through_a_wider_kernel():
    from cnn_gradcheck.runner import padding_only_windows, prefer_real_windows
    from cnn_gradcheck.spec import Implementation

    def db_wrong_with_padding(dy, x, w, b, padding, **hyper):
        dx, dw, db = REF.backward(dy, x, w, b, padding=padding, **hyper)
        return dx, dw, db * (2.0 if max(padding) > 0 else 1.0)

    impl = Implementation("db wrong when padded", REF.forward, db_wrong_with_padding)
    shrunk = check_case(CONV, impl, CONV.make_case(conv(H=1, W=1, ph=1, pw=1), 0))
    better = prefer_real_windows(GradientCheckFailure(shrunk)).result
    assert (better.case.config["ph"], better.case.config["kh"]) == (1, 2) and better.failures
    assert padding_only_windows(better.case.config) == 0
    # with the kernel fixed by limits, only less padding is tried, and that loses the bug: the shrunk case stays
    assert prefer_real_windows(GradientCheckFailure(shrunk), {"kernel": 1}).result is shrunk


def test_a_failure_that_needs_padding_only_windows_keeps_them():
    from cnn_gradcheck.runner import padding_only_windows, prefer_real_windows
    from cnn_gradcheck.spec import Implementation

    def db_wrong_where_a_window_reads_only_padding(dy, x, w, b, stride, padding, dilation):
        dx, dw, db = REF.backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation)
        config = dict(H=x.shape[2], W=x.shape[3], kh=w.shape[2], kw=w.shape[3], sh=stride[0], sw=stride[1],
                      ph=padding[0], pw=padding[1], dilh=dilation[0], dilw=dilation[1])
        return dx, dw, db * (2.0 if padding_only_windows(config) else 1.0)

    impl = Implementation("db wrong on padding-only windows", REF.forward, db_wrong_where_a_window_reads_only_padding)
    shrunk = check_case(CONV, impl, CONV.make_case(conv(H=1, W=1, ph=1, pw=1), 0))
    assert prefer_real_windows(GradientCheckFailure(shrunk)).result is shrunk


# --------------------------------------------------------------------------- part 3: claims only what was measured

def test_an_oracle_too_coarse_for_the_discrepancy_is_not_listed_as_agreeing():
    """float32 dense with dW 1.001x the true one: pytorch sees it; finite differences and the adjoint test at
    float32 have tolerances above 1e-3 of the value they compare, so they cannot resolve it."""
    from cnn_gradcheck.report import failure_report
    from cnn_gradcheck.spec import Implementation
    dense = get_spec("dense")

    def forward(*arrays, **hyper):
        return dense.reference.forward(*arrays, **hyper).astype(np.float32)

    def backward(*arrays, **hyper):
        dx, dW, db = dense.reference.backward(*arrays, **hyper)
        return tuple(g.astype(np.float32) for g in (dx, dW * 1.001, db))

    result = check_case(dense, Implementation("dense float32", forward, backward),
                        dense.make_case(dict(N=2, m=3, n=3), 0))
    text = failure_report(result)
    assert {c.oracle for c in result.failures} == {"pytorch", "reference"}
    unresolved = [line for line in text.splitlines() if "cannot resolve this at float32" in line]
    assert len(unresolved) == 1 and "dW (finite differences" in unresolved[0] and "dW (adjoint" in unresolved[0]
    agreed = [line for line in text.splitlines() if line.strip().startswith("agreed:")][0]
    assert "dW" not in agreed and "dx (finite differences)" in agreed


def _writes_into(*names):
    def backward(dy, x, w, b, **hyper):
        grads = REF.backward(dy, x, w, b, **hyper)
        for name in names:
            {"x": x, "w": w, "dy": dy}[name].reshape(-1)[0] += 1.0
        return grads
    return backward


def test_a_backward_writing_into_several_inputs_names_each():
    from cnn_gradcheck.spec import Implementation
    impl = Implementation("writes into x, w and dy", REF.forward, _writes_into("x", "w", "dy"))
    with pytest.raises(ImplementationError) as raised:
        check_case(CONV, impl, CONV.make_case(conv(), 0))
    message = str(raised.value)
    assert "input mutated in place" in message
    for name in ("argument x", "argument w", "argument dy (the upstream gradient)"):
        assert name in message


def test_several_wrong_gradient_shapes_are_each_named_as_gradients():
    def backward(dy, x, w, b, **hyper):
        dx, dw, db = REF.backward(dy, x, w, b, **hyper)
        return dx, dw[..., :1], db[None]
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", plugin(REF.forward, backward), limits={"kw": 2},
                     settings=settings(max_examples=3, deadline=None, derandomize=True, database=None))
    message = str(failure.value)
    assert "wrong gradient shapes" in message and "wrong output shape" not in message
    assert "the gradient dw has shape (1, 1, 1, 1); (1, 1, 1, 2) was expected (the shape of w)" in message
    assert "the gradient db has shape (1, 1); (1,) was expected (the shape of b)" in message


def _helper_that_raises(x):
    raise ValueError("unsupported layout")


def _forward_calling_a_helper(x, w, b, **hyper):
    return _helper_that_raises(x)


def test_an_exception_report_shows_the_users_frames_down_to_the_raise():
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", plugin(_forward_calling_a_helper, REF.backward),
                     settings=settings(max_examples=2, deadline=None, derandomize=True, database=None))
    message = str(failure.value)
    assert "in _helper_that_raises)" in message  # the innermost line, as before
    chain = message.split("your code, from the function the harness called down to the raise:")[1].splitlines()
    assert "in _forward_calling_a_helper: return _helper_that_raises(x)" in chain[1]
    assert 'in _helper_that_raises: raise ValueError("unsupported layout")' in chain[2]


# ------------------------------------------------------------------------------------------ part 5: shrink budget

def _slow_doubled_dx(dy, x, w, b, **hyper):
    import time
    time.sleep(0.05)  # a slow layer: every shrink step costs a few of these
    dx, dw, db = REF.backward(dy, x, w, b, **hyper)
    return dx * 2, dw, db


def test_a_spent_shrink_budget_reports_the_smallest_failure_so_far_and_says_so():
    import time
    start = time.monotonic()
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", plugin(REF.forward, _slow_doubled_dx), shrink_budget=1.5,
                     settings=settings(max_examples=25, deadline=None, derandomize=True, database=None))
    elapsed = time.monotonic() - start
    text = str(failure.value)
    assert "not fully shrunk (shrink budget 1.5 s spent)" in text
    assert text.splitlines()[0].startswith("conv2d: dx wrong")  # the failure itself, found so far
    assert "reproduce exactly this case" in text
    assert elapsed < 60, elapsed  # shrinking stopped soon after the budget (unlimited, it runs for minutes)


def test_shrink_budget_must_be_positive():
    with pytest.raises(ValueError, match="shrink_budget must be a positive number"):
        check_plugin("conv2d", plugin(REF.forward, REF.backward), shrink_budget=0)


def test_the_shrink_budget_option_of_the_pytest_plugin(pytester, ci_profile):
    """`pytest --plugin ... --shrink-budget S` reaches check_plugin; a budget too small to shrink says so. In-process
    (pytester), under the ci profile as `CNN_GRADCHECK_PROFILE=ci pytest --plugin ...` runs."""
    command = ["-p", "no:cacheprovider", "--plugin", "conv2d=cnn_gradcheck.examples.buggy_conv:PLUGIN",
               "--plugin-max-examples", "8"]
    run = pytester.runpytest_inprocess(*command, "--shrink-budget", "0.001")
    out = run.stdout.str()
    assert run.ret == 1, out + run.stderr.str()
    assert "conv2d: dw wrong in buggy conv" in out
    assert "not fully shrunk (shrink budget 0.001 s spent)" in out
    bad = pytester.runpytest_inprocess(*command, "--shrink-budget", "0")
    assert bad.ret == 4 and "--shrink-budget must be a positive number of seconds" in bad.stderr.str()
