"""float32 plug-ins under the one rounding model (checks/tolerance.py, policies 1b, 1c, 2 and 6): the kink test
judges one-sided jumps against the rounding noise of the implementation's precision, and the inputs' own rounding
to float32 (logits of 800 move by ~5e-5) is part of every tolerance. Wrong float32 gradients are still caught."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings

from cnn_gradcheck.compare import FAIL, KINK
from cnn_gradcheck.plugins import check_plugin, torch_function
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case

FEW = settings(max_examples=60, derandomize=True, database=None, deadline=None)
SOFTMAX = get_spec("softmax")
SIGMOID = get_spec("sigmoid")


def softmax(x):
    return F.softmax(x, dim=1)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("op, fn", [("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("softmax", softmax)])
def test_smooth_float32_torch_functions_pass(op, fn):
    """Generated cases (derandomized): no 'not differentiable' verdict from float32 rounding in the jumps."""
    check_plugin(op, torch_function(fn, dtype="float32"), settings=FEW)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_float32_sigmoid_passes_300_derandomized_examples():
    """The field report's run: torch's own float32 sigmoid at 300 derandomized examples (a smooth function once
    called "not differentiable ... one-sided differences jump by 5.2e-05" from float32 rounding)."""
    report = check_plugin("sigmoid", torch_function(torch.sigmoid, dtype="float32"),
                          settings=settings(FEW, max_examples=300))
    assert report.cases == 300


@pytest.mark.parametrize("offset", [-800.0, 800.0])
def test_float32_softmax_at_logits_in_the_hundreds_passes_forward_and_gradient(offset):
    """The offending configuration (N=1, K=2, offset=-800, seed 30186469) and more seeds: storing the logits in
    float32 moves them by ~5e-5, which moves the softmax by as much; the tolerance includes it (it did not, and the
    forward failed; finite differences called the jumps a kink)."""
    plug = torch_function(softmax, dtype="float32").bind(SOFTMAX)
    for seed in (30186469, 0, 1, 2, 3):
        for config in ({"N": 1, "K": 2, "offset": offset}, {"N": 3, "K": 4, "offset": offset}):
            result = check_case(SOFTMAX, plug, SOFTMAX.make_case(config, seed))
            assert not result.failures and not result.kinks, [str(c) for c in result.failures + result.kinks]


def test_float32_sigmoid_at_large_inputs_is_not_called_a_kink():
    plug = torch_function(torch.sigmoid, dtype="float32").bind(SIGMOID)
    for seed in range(20):
        case = SIGMOID.make_case({"N": 3, "K": 4, "offset": 0.0}, seed)
        case.arrays["x"][...] *= 4  # saturated: f near 0 and 1, where float32 rounding dominates the differences
        result = check_case(SIGMOID, plug, case)
        assert not [c for c in result.comparisons if c.verdict == KINK], seed
        assert result.passed, [str(c) for c in result.failures]


def test_a_wrong_float32_gradient_is_still_caught():
    """A float32 sigmoid whose backward is 1.001 times too big: the forward passes, dx fails."""
    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.sigmoid(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y * (1 - y) * 1.001

    plug = torch_function(Scaled.apply, dtype="float32").bind(SIGMOID)
    result = check_case(SIGMOID, plug, SIGMOID.make_case({"N": 2, "K": 3, "offset": 0.0}, 0))
    assert {c.quantity for c in result.failures} == {"dx"}
    assert {c.oracle for c in result.failures} >= {"pytorch"}
    assert all(c.verdict != FAIL for c in result.comparisons if c.quantity == "forward")
    assert np.isfinite(max(c.error for c in result.failures))
