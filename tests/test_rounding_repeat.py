"""Repeatability at the rounding level (tolerance policy 8): cnn_gradcheck.calls calls a plug-in twice; results
that differ by another summation order pass (and the largest difference is kept on the Evaluation), state kept
between calls still fails."""
import numpy as np
import pytest

from cnn_gradcheck.calls import ImplementationError, evaluate
from cnn_gradcheck.plugins import plugin
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case

CONV = get_spec("conv2d")
REF = CONV.reference
CONFIG = {"N": 3, "C_in": 2, "C_out": 2, "H": 6, "W": 6, "kh": 3, "kw": 3, "sh": 1, "sw": 1, "ph": 1, "pw": 1,
          "dilh": 1, "dilw": 1}
_order = np.random.default_rng(7)


def shuffled_backward(dy, x, w, b, **hyper):
    """A correct conv backward whose dw and db sums run in a different order each call (as parallel kernels do):
    per-sample dw summed over the batch in a random order, db summed element by element in a random order."""
    dx, _, _ = REF.backward(dy, x, w, b, **hyper)
    dw = np.zeros_like(w)
    for n in _order.permutation(x.shape[0]):
        dw = dw + REF.backward(dy[n:n + 1], x[n:n + 1], w, b, **hyper)[1]
    terms = np.moveaxis(dy, 1, 0).reshape(dy.shape[1], -1)
    db = np.zeros(dy.shape[1])
    for i in _order.permutation(terms.shape[1]):
        db = db + terms[:, i]
    return dx, dw, db


class AccumulatingConv:
    """Keeps dw and db between calls and adds each backward into them (forgot to zero the gradients)."""

    def __init__(self):
        self.dw = self.db = 0.0

    def forward(self, x, w, b, **hyper):
        return REF.forward(x, w, b, **hyper)

    def backward(self, dy, x, w, b, **hyper):
        dx, dw, db = REF.backward(dy, x, w, b, **hyper)
        self.dw, self.db = self.dw + dw, self.db + db
        return dx, self.dw, self.db


def test_a_conv_whose_sums_run_in_another_order_each_call_passes():
    impl = plugin(REF.forward, shuffled_backward, name="shuffled-sum conv").bind(CONV)
    differences = []
    for seed in range(6):
        case = CONV.make_case(CONFIG, seed)
        evaluation = evaluate(CONV, impl, case)
        differences.append(evaluation.repeat_difference)
        assert check_case(CONV, impl, case).passed
    assert max(differences) > 0  # the calls did differ (bit for bit they were rejected: "largest difference 2.8e-17")
    assert max(differences) < 1e-13


def test_a_layer_that_accumulates_gradients_across_calls_still_fails():
    layer = AccumulatingConv()
    impl = plugin(layer.forward, layer.backward, name="accumulating conv").bind(CONV)
    with pytest.raises(ImplementationError) as raised:
        evaluate(CONV, impl, CONV.make_case(CONFIG, 0))
    message = str(raised.value)
    assert "nondeterministic results" in message and "dw" in message and "db" in message and "conv2d" in message


def test_a_declared_nondeterministic_plugin_gets_the_looser_bound_and_no_more():
    noise = np.random.default_rng(3)

    def noisy_forward(x, w, b, **hyper):
        return REF.forward(x, w, b, **hyper) * (1 + 1e-11 * noise.standard_normal())
    impl = plugin(noisy_forward, REF.backward, name="atomics conv").bind(CONV)
    case = CONV.make_case(CONFIG, 0)
    with pytest.raises(ImplementationError):
        evaluate(CONV, impl, case)  # 1e-11 relative is far above rounding
    object.__setattr__(impl, "nondeterministic", True)  # what a plug-in author declares (the object may be frozen)
    assert evaluate(CONV, impl, case).repeat_difference > 0
    object.__setattr__(impl, "nondeterministic", 1e-14)
    with pytest.raises(ImplementationError):
        evaluate(CONV, impl, case)


def test_the_summary_of_a_passing_check_says_how_much_repeated_calls_differed():
    from hypothesis import settings

    from cnn_gradcheck import check_plugin
    report = check_plugin("conv2d", plugin(REF.forward, shuffled_backward, name="shuffled-sum conv"),
                          limits={"N": 3, "C_out": 2}, settings=settings(max_examples=4, deadline=None, database=None,
                                                                         derandomize=True))
    line = next(l for l in report.summary().splitlines() if "repeated calls differ by up to" in l)
    assert "within rounding" in line and report.repeat_difference > 0  # absolute: huge special values reach 1e-13
