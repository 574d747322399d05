"""Ties and exact kinks on purpose: max pooling gets tied maxima and ReLU exact zeros in a share of the examples of
every run (explicit examples make it every run, not chance), and the subgradient check judges them: each upstream
value on exactly one tied cell, ReLU'(0) one value in {0, 1}."""
import numpy as np
import pytest
from hypothesis import settings

from cnn_gradcheck import profiles
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin
from cnn_gradcheck.reference import pooling as ref
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation
from cnn_gradcheck.specs.pool_ties import window_cells

MAX = get_spec("maxpool2d")
RELU = get_spec("relu")
#: any run: random, one generated example (the explicit examples come on top)
ANY_RUN = settings(max_examples=1, deadline=None, database=None)


def _maxpool_routing(dy, x, kernel, stride, padding, pick):
    """dx with each window's dy routed by ``pick(tied cells) -> {cell: share}``."""
    c = {"kh": kernel[0], "kw": kernel[1], "sh": stride[0], "sw": stride[1], "ph": padding[0], "pw": padding[1]}
    dx = np.zeros(x.shape)
    for n, ch in np.ndindex(x.shape[:2]):
        for (i, j), cells in window_cells(c, *x.shape[2:]):
            top = max(x[n, ch, u, v] for u, v in cells)
            for (u, v), share in pick([cell for cell in cells if x[n, ch][cell] == top]).items():
                dx[n, ch, u, v] += share * dy[n, ch, i, j]
    return (dx,)


def _every_tied_cell(dy, x, kernel, stride, padding):
    """The mistake: the upstream value to every cell equal to the maximum (mask = (x == max))."""
    return _maxpool_routing(dy, x, kernel, stride, padding, lambda tied: {cell: 1.0 for cell in tied})


def _last_tied_cell(dy, x, kernel, stride, padding):
    """Right: one cell per window, the last of the tied ones (torch and the reference take the first)."""
    return _maxpool_routing(dy, x, kernel, stride, padding, lambda tied: {tied[-1]: 1.0})


def _halved(dy, x, kernel, stride, padding):
    """dy split evenly over the tied cells: a convex combination, but not what the harness accepts (exactly one)."""
    return _maxpool_routing(dy, x, kernel, stride, padding, lambda tied: {cell: 1 / len(tied) for cell in tied})


def test_tie_cases_are_generated_with_real_ties():
    case = MAX.make_case({"N": 1, "C": 1, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
                          "values": "ties"}, seed=3)
    assert MAX.kink_distance(case.config, case.arrays) == 0.0


@pytest.mark.parametrize("settings_", [ANY_RUN, profiles.get("ci"), profiles.get("default")],
                         ids=["any run", "ci", "default"])
def test_maxpool_routing_to_every_tied_cell_is_caught(settings_):
    with pytest.raises(PluginCheckFailure, match="subgradient"):
        check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, _every_tied_cell), settings=settings_)


def test_maxpool_halving_between_tied_cells_is_caught():
    with pytest.raises(PluginCheckFailure, match="subgradient"):
        check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, _halved), settings=ANY_RUN)


@pytest.mark.parametrize("backward", [ref.maxpool2d_backward, _last_tied_cell], ids=["first", "last"])
def test_a_maxpool_routing_to_one_tied_cell_passes(backward):
    report = check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, backward), settings=profiles.get("ci"))
    assert "subgradient" in report.oracles_seen


def test_tie_cases_are_judged_only_by_the_subgradient_check_and_pytorch_forward():
    case = MAX.make_case({"N": 2, "C": 1, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0,
                          "values": "ties"}, seed=0)
    result = check_case(MAX, MAX.reference, case)
    assert result.passed
    assert {(c.oracle, c.quantity) for c in result.comparisons} == {("pytorch", "forward"), ("subgradient", "dx")}
    wrong = check_case(MAX, Implementation("every tied cell", ref.maxpool2d_forward, _every_tied_cell), case)
    assert [c.quantity for c in wrong.failures] == ["dx"]


def _relu_backward_at_zero(value):
    def backward(dy, x):
        return (dy * np.where(x > 0, 1.0, np.where(x == 0, value, 0.0)),)
    return backward


def _relu_forward(x):
    return np.maximum(x, 0.0)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_relu_derivative_at_zero_may_be_zero_or_one(value):
    report = check_plugin("relu", plugin(_relu_forward, _relu_backward_at_zero(value)), settings=profiles.get("ci"))
    assert "subgradient" in report.oracles_seen


def test_relu_derivative_at_zero_outside_zero_one_or_inconsistent_is_caught():
    with pytest.raises(PluginCheckFailure, match="subgradient"):
        check_plugin("relu", plugin(_relu_forward, _relu_backward_at_zero(0.5)), settings=ANY_RUN)

    def inconsistent(dy, x):  # ReLU'(0) = 1 for the first zero, 0 for the others
        d = (x > 0).astype(float)
        zeros = np.argwhere(x == 0)
        if len(zeros) > 1:
            d[tuple(zeros[0])] = 1.0
        return (dy * d,)
    case = RELU.make_case({"N": 3, "K": 4, "offset": 0.0, "values": "zeros"}, seed=1)
    assert np.sum(case.arrays["x"] == 0) > 1
    result = check_case(RELU, Implementation("inconsistent", _relu_forward, inconsistent), case)
    assert [c.oracle for c in result.failures] == ["subgradient"]
