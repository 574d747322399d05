"""The finite-difference witness's new parts pinned where the complete mutation run of checks/finite_diff.py
(docs/mutation.md) found them unpinned: the short stencil's verdict at its tolerance and its relative error, the
moved inputs' rounding (policy 2), when the short stencil's pass stands, and the balance of small gradients."""
import math

import numpy as np
import pytest

from cnn_gradcheck import finite_diff, tolerance
from cnn_gradcheck.compare import FAIL, PASS


def test_the_short_stencil_passes_at_its_tolerance_and_fails_one_ulp_above():
    """phi = 0: D4 = 0 and no truncation, so the tolerance is FD_RESOLUTION * scale exactly."""
    at = finite_diff.short_check(lambda t: 0.0, 1e-8, 1.0, 0.0, 2.0**-10, "dx")
    assert at.error == at.tolerance == 1e-8 and at.verdict == PASS
    above = finite_diff.short_check(lambda t: 0.0, np.nextafter(1e-8, 1.0), 1.0, 0.0, 2.0**-10, "dx")
    assert above.verdict == FAIL


def test_the_short_stencils_relative_error_is_taken_at_its_scale():
    c = finite_diff.short_check(lambda t: 3.0 * t, 3.0 * (1 + 1e-3), 4.0, 0.0, 2.0**-10, "dx")
    assert c.verdict == FAIL and c.relative == pytest.approx(c.error / 4.0, rel=1e-12)
    assert c.error == pytest.approx(3e-3, rel=1e-9)


def test_the_moved_inputs_rounding_is_the_gradient_times_the_stored_values_size():
    """Policy 2: a + t v is stored at the plug-in's precision; an error eps |a + t v| per element moves phi by
    eps |g (|a| + reach |v|)|_2."""
    stencil = finite_diff.Stencil(lambda arrays: arrays["x"], {"x": np.array([1.0, -2.0])},
                                  {"x": np.array([0.5, 1.0])}, np.array([1.0, -2.0]))
    got = finite_diff._input_sensitivity({"x": np.array([3.0, -4.0])}, stencil, 0.1)
    assert got == pytest.approx(math.sqrt((3 * (1 + 0.05)) ** 2 + (4 * (2 + 0.1)) ** 2), rel=1e-15)


def _counted(forward):
    calls = []

    def counted(arrays):
        calls.append(1)
        return forward(arrays)
    return counted, calls


def test_an_argument_with_no_share_does_not_hold_the_short_stencil_back():
    """b does not enter the output (gradient 0, share 0): the short stencil's pass stands on a's share alone
    (four forward calls, not twelve)."""
    forward, calls = _counted(lambda arrays: 2.0 * arrays["a"])
    arrays = {"a": np.array([0.3, -0.7]), "b": np.array([1.0])}
    grads = {"a": np.full(2, 2.0), "b": np.zeros(1)}
    c = finite_diff.check_joint(forward, arrays, grads, np.ones(2), forward(arrays),
                                {"a": np.array([1.0, 0.5]), "b": np.array([1.0])}, 1, quantity="da + db",
                                short_step=tolerance.FD_SHORT_STEP)
    assert c.verdict == PASS and "short stencil" in c.note and len(calls) == 1 + 4


def test_a_small_share_that_the_short_stencil_cannot_resolve_goes_to_the_full_stencil():
    """Gradients of 1e-3 (shares below 1) of a float32 forward: the short stencil passes, but its tolerance over
    the share is far above FD_SHORT_ACCEPT, so D8 decides (eight more calls)."""
    forward, calls = _counted(lambda arrays: 1e-3 * arrays["a"])
    arrays = {"a": np.array([0.3, -0.7, 0.2])}
    grads = {"a": np.full(3, 1e-3)}
    c = finite_diff.check_joint(forward, arrays, grads, np.ones(3), forward(arrays), {"a": np.ones(3)}, 1,
                                dtype="float32", quantity="da", short_step=tolerance.FD_SHORT_STEP)
    assert c.verdict == PASS and "short stencil" not in c.note and len(calls) == 1 + 4 + 8


def test_balance_scales_gradients_below_1_too():
    """Sums |g v| of 0.5 and 0.25: the larger is scaled down to 0.25 (small gradients are balanced like large)."""
    out = finite_diff.balanced({"W": np.array([1.0]), "b": np.array([1.0])},
                               {"W": np.array([0.5]), "b": np.array([0.25])})
    assert out["W"][0] == pytest.approx(0.5) and out["b"][0] == 1.0
