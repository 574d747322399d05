"""Formulas of the rewritten core pinned where the mutation run (docs/mutation.md) found them unpinned by
tests/test_verdicts.py: each test states the documented formula (tolerance.py's docstring) on constructed
numbers, so an edit of an operator, a constant or a max/min in it fails here."""
import numpy as np
import pytest

from cnn_gradcheck import tolerance

EPS = 2.0**-52


def test_repeat_term_scale_is_the_largest_dy_times_the_largest_input_at_least_1():
    """Policy 8: max|dy| max(1, max|a|)."""
    assert tolerance.repeat_term_scale(np.array([1.0, -3.0]), [np.array([2.0, 0.5]), np.array([-4.0])]) == 12.0
    assert tolerance.repeat_term_scale(np.array([1.0, -3.0]), [np.array([0.25])]) == 3.0        # inputs below 1
    assert tolerance.repeat_term_scale(np.array([0.5, 2.0]), []) == 2.0                          # no inputs: dy


def test_repeat_tolerance_takes_the_largest_of_both_calls_and_the_terms():
    """Policy 8: ROUNDING_SAFETY * eps * K * max(|first|, |second|, terms), or NONDETERMINISTIC_RTOL relative."""
    first, second = np.array([1.0, -4.0]), np.array([0.5, 2.0])
    assert tolerance.repeat_tolerance(first, second, 3) == 8 * EPS * 3 * 4.0
    assert tolerance.repeat_tolerance(second, first, 3) == 8 * EPS * 3 * 4.0
    assert tolerance.repeat_tolerance(first, second, 3, terms=10.0) == 8 * EPS * 3 * 10.0
    assert tolerance.repeat_tolerance(first, second, 3, "float32") == 8 * 2.0**-23 * 3 * 4.0
    assert tolerance.repeat_tolerance(first, second, 3, declared=True) == pytest.approx(1e-9 * 4.0, rel=1e-15)
    assert tolerance.repeat_tolerance(first, second, 3, declared=1e-5) == pytest.approx(1e-5 * 4.0, rel=1e-15)
    # a declared bound below the rounding bound does not narrow it
    assert tolerance.repeat_tolerance(first, second, 3, declared=1e-20) == 8 * EPS * 3 * 4.0
    assert tolerance.repeat_tolerance(np.zeros(2), np.zeros(2), 1) > 0


def test_balanced_directions_scale_every_argument_down_to_the_smallest_contribution():
    """finite_diff.balanced: each argument adds the smallest sum |g v| (none is scaled up, |v|_inf stays <= 1);
    an argument whose gradient is 0 keeps its direction."""
    from cnn_gradcheck import finite_diff
    directions = {"W": np.array([1.0, -1.0]), "b": np.array([0.5]), "c": np.array([1.0])}
    grads = {"W": np.array([3.0, -3.0]), "b": np.array([4.0]), "c": np.array([0.0])}
    out = finite_diff.balanced(directions, grads)
    assert np.array_equal(out["b"], directions["b"])                               # the smallest: sum |g v| = 2
    np.testing.assert_allclose(out["W"], directions["W"] / 3, rtol=1e-15)          # 6 -> 2
    assert np.array_equal(out["c"], directions["c"])
    assert max(float(np.max(np.abs(v))) for v in out.values()) <= 1.0
