"""The verdicts of the harness's core on constructed inputs, at their boundaries: where an exact comparison turns from
pass to fail (tolerance policy 1), what finite differences estimate and where they stop resolving (policy 2), the
adjoint test's bound (policy 3), kinks and the cases where no verdict is possible (policy 7), and the oracles'
verdicts on one case of an implementation that is right, and wrong by 1e-6 (the errors the harness must catch).

Written against the public behaviour (compare_arrays, the tolerance formulas tolerance.py documents, the oracles'
comparisons), so that they hold whatever the internals look like. tools/mutation.py runs them against the mutants of
checks/compare.py, tolerance.py, finite_diff.py, adjoint.py and oracles.py (docs/mutation.md)."""
import math
from dataclasses import replace

import numpy as np
import pytest

from cnn_gradcheck import finite_diff, tolerance
from cnn_gradcheck.adjoint import _check_argument, check_pair, dot_product_test, step_for
from cnn_gradcheck.calls import evaluate
from cnn_gradcheck.compare import FAIL, KINK, NA, PASS, Comparison, compare_arrays
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Case, Implementation

EPS = 2.0**-52

# ---- tolerance policy 1: exact comparisons ----------------------------------------------------------------------


def test_rounding_tolerance_is_8_eps_K_times_the_largest_value():
    assert tolerance.eps_of("float64") == EPS and tolerance.eps_of("torch.float32") == 2.0**-23
    assert tolerance.eps_of("float16") == 2.0**-10 and tolerance.eps_of("bfloat16") == 2.0**-7
    with pytest.raises(ValueError, match="no rounding model"):
        tolerance.eps_of("int64")
    assert tolerance.rounding_relative(10) == 80 * EPS
    assert tolerance.rounding_relative(0) == tolerance.rounding_relative(1) == 8 * EPS   # K is at least 1
    assert tolerance.rounding_relative(3, "float32") == 24 * 2.0**-23
    assert tolerance.rounding_tolerance(np.array([1.0, -2.0]), 10) == 160 * EPS
    # the terms' magnitude widens the scale (a cancelling sum), the expected values' sign does not matter
    assert tolerance.rounding_tolerance(np.array([1.0, -2.0]), 10, magnitude=np.array([-5.0, 3.0])) == 400 * EPS
    assert tolerance.rounding_tolerance(np.array([4.0]), 10, magnitude=np.array([1.0])) == 320 * EPS
    assert tolerance.rounding_tolerance(np.array([0.25]), 1, magnitude=np.array([-0.5])) == 4 * EPS  # sizes < 1
    assert tolerance.rounding_tolerance(np.zeros(3), 1) == 8 * EPS * tolerance.TINY > 0    # never exactly 0
    assert tolerance.rounding_tolerance(np.zeros(0), 1) > 0


def test_exact_comparison_passes_at_the_tolerance_and_fails_one_ulp_above():
    expected = np.array([1.0, -2.0])                       # tol = 8 eps * 10 * 2 = 80 ulps of 2
    ulp = 2.0**-51
    at = compare_arrays("pytorch", "dx", expected, np.array([1.0, -2.0 - 80 * ulp]), 10)
    assert at.verdict == PASS and at.passed and at.error == at.tolerance == 160 * EPS
    above = compare_arrays("pytorch", "dx", expected, np.array([1.0, -2.0 - 81 * ulp]), 10)
    assert above.verdict == FAIL and not above.passed
    assert above.worst_index == (1,) and above.expected == -2.0 and above.got == -2.0 - 81 * ulp
    assert above.relative == above.error / 2.0 and above.ratio == pytest.approx(81 / 80, rel=1e-12)
    assert (above.oracle, above.quantity) == ("pytorch", "dx")


def test_exact_comparison_reports_the_worst_element():
    expected = np.arange(6.0).reshape(2, 3) - 2.5
    got = expected.copy()
    got[1, 2] += 1e-3
    got[0, 1] -= 1e-4
    c = compare_arrays("reference", "forward", expected, got, 4)
    assert c.verdict == FAIL and c.worst_index == (1, 2) and c.expected == 2.5 and c.got == 2.5 + 1e-3
    assert c.error == pytest.approx(1e-3, rel=1e-9) and c.relative == pytest.approx(1e-3 / 2.5, rel=1e-9)
    assert np.array_equal(c.arrays["expected"], expected) and np.array_equal(c.arrays["got"], got)
    assert compare_arrays("reference", "forward", expected, expected, 4).error == 0.0


def test_a_relative_error_of_1e_6_fails_and_rounding_passes():
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((3, 4))
    assert compare_arrays("pytorch", "dw", expected, expected * (1 + 1e-6), 1000).verdict == FAIL
    assert compare_arrays("pytorch", "dw", expected, expected * (1 + 4 * EPS), 1).verdict == PASS


def test_shape_nan_scalar_and_empty_comparisons():
    c = compare_arrays("pytorch", "dx", np.zeros((2, 3)), np.zeros((3, 2)), 1)
    assert c.verdict == FAIL and c.error == math.inf and "shape (3, 2) where (2, 3) was expected" in c.note
    assert c.tolerance == 0.0 and c.ratio == math.inf           # no tolerance makes a wrong shape right
    c = compare_arrays("pytorch", "dx", np.ones(3), np.array([1.0, np.nan, 1.0]), 1)
    assert c.verdict == FAIL and c.error == math.inf and c.worst_index == (1,)
    c = compare_arrays("pytorch", "dx", np.ones(3), np.array([1.0, 1.0, -np.inf]), 1)
    assert c.verdict == FAIL and c.worst_index == (2,)
    c = compare_arrays("pytorch", "forward", np.array(3.0), np.array(3.0), 1)
    assert c.verdict == PASS and c.worst_index == () and c.expected == c.got == 3.0
    assert compare_arrays("pytorch", "forward", np.array(3.0), np.array(3.5), 1).verdict == FAIL
    c = compare_arrays("pytorch", "dx", np.zeros((0, 2)), np.zeros((0, 2)), 1)
    assert c.verdict == PASS and c.error == 0.0 and c.relative == 0.0


def test_a_comparisons_repr_leaves_out_the_arrays():
    c = compare_arrays("pytorch", "dx", np.full(50, 1.0), np.full(50, 2.0), 1)
    assert "arrays" not in repr(c) and "pytorch" in repr(c) and len(c.arrays["got"]) == 50


def test_an_exact_comparison_that_cannot_decide_fails_with_no_verdict_possible():
    """bfloat16: 8 eps K > 1/2 from K = 9 on (policy 7)."""
    x = np.ones(4)
    assert compare_arrays("pytorch", "dx", x, x, 8, "bfloat16").verdict == PASS
    c = compare_arrays("pytorch", "dx", x, x, 9, "bfloat16")
    assert c.verdict == FAIL and "no verdict possible at bfloat16" in c.note and c.error == math.inf
    assert not tolerance.too_coarse(0.5, 1.0) and tolerance.too_coarse(0.5 + 1e-12, 1.0)
    assert tolerance.too_coarse(1e-300, 0.0)          # a zero scale: any positive tolerance decides nothing


def test_ratio_of_error_to_tolerance():
    c = Comparison("o", "dx", PASS, 1.0, 0.1, 4.0)
    assert c.ratio == 0.25
    assert Comparison("o", "dx", PASS, 0.0, 0.0, 0.0).ratio == 0.0
    assert Comparison("o", "dx", FAIL, 1.0, 1.0, 0.0).ratio == math.inf


# ---- tolerance policy 2: finite differences ---------------------------------------------------------------------


def test_fd_and_adjoint_tolerance_formulas():
    # policy 2: FD_SAFETY * (truncation + sum|weights| * noise / h) + FD_RESOLUTION * scale
    assert tolerance.fd_tolerance(1e-9, 2e-12, 3.0, 1e-3, 3.0) == pytest.approx(10 * (1e-9 + 3.0 * 2e-12 / 1e-3)
                                                                                 + 1e-8 * 3.0, rel=1e-15)
    assert tolerance.fd_tolerance(0.0, 2e-12, 3.0, 1e-2, 0.0) == pytest.approx(10 * 3.0 * 2e-12 / 1e-2, rel=1e-15)
    # the one-sided jumps' rounding: 10 noise / h
    assert tolerance.jump_noise(3e-12, 1e-3) == pytest.approx(3e-8, rel=1e-15)
    assert tolerance.adjoint_tolerance(2.0) == pytest.approx(2e-12, rel=1e-15)
    assert tolerance.adjoint_tolerance(2.0, "float32") == pytest.approx(2e-12 * 2.0**29, rel=1e-15)
    assert tolerance.FD_STEP == 1e-3 and tolerance.FD_STENCIL_REACH == 4e-3 and tolerance.KINK_CLEARANCE == 8e-3
    assert tolerance.MARGIN > 2 * tolerance.FD_STENCIL_REACH     # generated inputs sit beyond the stencil's reach
    assert tolerance.TRAINING_RTOL == 1e-9     # the requirement: losses and parameters agree to 1e-9 relative


def test_output_noise_of_one_evaluation():
    """Policy 2's noise: eps * min(K |dy Y|_1, 8 sqrt(K) |dy Y|_2), Y = max(|y|, |M|), plus the measured float32
    error (16 max(|dy e|_2, |<dy, e>|) / eps32) and the moved input's rounding (8 * sensitivity)."""
    dy, y = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    assert tolerance.output_noise(dy, y, 5) == pytest.approx(EPS * 5 * (3.0 + 1.0), rel=1e-15)       # worst case
    many = np.ones(10**4)                                 # realistic: 8 sqrt(K) |.|_2 = 8 * 10 * 100 < K n = 1e6
    assert tolerance.output_noise(many, many, 100) == pytest.approx(EPS * 8 * 10 * 100, rel=1e-12)
    assert tolerance.output_noise(dy, y, 0) == tolerance.output_noise(dy, y, 1)           # K is at least 1
    assert tolerance.output_noise(dy, y, 1, magnitude=np.array([1.0, 4.0])) == pytest.approx(EPS * (3 + 8), rel=1e-15)
    e = np.array([2.0**-23, 2.0**-23])
    assert tolerance.output_noise(dy, y, 1, forward_error=e) == pytest.approx(
        EPS * (3.5 + 16 * math.sqrt(5.0)), rel=1e-12)
    assert tolerance.output_noise(dy, y, 1, input_sensitivity=2.0) == pytest.approx(EPS * (3.5 + 16), rel=1e-15)
    assert tolerance.output_noise(dy, y, 5, "float32") == pytest.approx(2.0**-23 * 20, rel=1e-15)


def test_richardson_weights():
    """D8 = (64 D6(h/2) - D6(h)) / 63, D6(h) = (16 D4(h) - D4(2h)) / 15, D4(h) = (4 D(h) - D(2h)) / 3,
    D(kh) = (phi(kh) - phi(-kh)) / 2kh: weights on phi(kh) - phi(-kh) (units 1/h)."""
    w = finite_diff.D8_WEIGHTS
    assert set(w) == {0.5, 1, 2, 4}
    assert w[0.5] == pytest.approx(4096 / 2835, rel=1e-14) and w[1] == pytest.approx(-32 / 135, rel=1e-14)
    assert w[2] == pytest.approx(1 / 135, rel=1e-14) and w[4] == pytest.approx(-1 / 22680, rel=1e-14)
    # order of accuracy: phi(kh) - phi(-kh) = sum_j 2 phi^(2j+1) (kh)^(2j+1) / (2j+1)!, so the weights must give
    # the first derivative (moment 1) and cancel the h^2, h^4, h^6 terms (moments 3, 5, 7), not the h^8 term
    moment = lambda j: sum(wk * 2 * k ** (2 * j + 1) for k, wk in w.items())      # noqa: E731
    assert moment(0) == pytest.approx(1.0, rel=1e-14)
    assert all(abs(moment(j)) < 1e-14 for j in (1, 2, 3)) and moment(4) == pytest.approx(-16.0, rel=1e-12)
    assert finite_diff.D8_NOISE == pytest.approx(2 * (4096 / 2835 + 32 / 135 + 1 / 135 + 1 / 22680), rel=1e-14)


def _phi(t):
    """phi'(0) = 3; D(h) = 3 + 7 h^2 + 11 h^4, so D4 = 3 - 44 h^4 and D6 = D8 = 3 exactly (up to rounding)."""
    return 0.5 + 3 * t + 2 * t**2 + 7 * t**3 + 11 * t**5 + t**6


def noise_of(abs_output_dot, dtype="float64", reduction_length=5):
    """One evaluation's rounding for phi = <dy, y> with sum |dy| |y| = abs_output_dot over K = 5 terms (one output:
    the worst case eps K |dy y| is the smaller)."""
    return tolerance.output_noise(np.ones(1), np.array([abs_output_dot]), reduction_length, dtype)


def directional(claimed, scale=3.0, abs_output_dot=0.0, kink_reason="", dtype="float64", phi=_phi, h=1e-3):
    return finite_diff.directional_check(phi, phi(0.0), claimed, scale, noise_of(abs_output_dot, dtype), h, "dx",
                                         kink_reason, dtype)


def test_finite_differences_estimate_the_derivative_to_order_h8():
    c = directional(3.0)
    assert c.verdict == PASS and c.oracle == "finite differences" and c.quantity == "dx"
    assert abs(c.expected - 3.0) < 1e-12 and c.got == 3.0
    # no truncation (D6 = D8) and no rounding term: the tolerance is the resolution, 1e-8 * scale
    assert c.tolerance == pytest.approx(3e-8, rel=1e-3)
    off = directional(3.3)
    assert off.verdict == FAIL and off.error == pytest.approx(0.3, rel=1e-9)
    assert off.relative == pytest.approx(0.1, rel=1e-9)              # error / max(scale, |D8|) = 0.3 / 3
    # t^7 is D6's leading error, which D8 removes; the truncation estimate |D6(h/2) - D8| = h^6 enters the
    # tolerance ten times; t^9 is D8's own leading error, -16 h^8 (h = 0.1: rounding far below these)
    h = 0.1
    seventh = directional(3.0, phi=lambda t: 3 * t + t**7, h=h)
    assert abs(seventh.expected - 3.0) < 1e-13 and seventh.verdict == PASS
    assert seventh.tolerance == pytest.approx(10 * h**6 + 3e-8, rel=1e-6)         # D6(h) - 3 = 64 h^6
    assert "truncation estimate 1.0e-06" in seventh.note
    ninth = directional(3.0, phi=lambda t: 3 * t + t**9, h=h)
    assert ninth.expected - 3.0 == pytest.approx(-16 * h**8, rel=1e-6)
    # K counts at least one term: a reduction length of 0 rounds like 1
    at = {k: finite_diff.directional_check(_phi, _phi(0.0), 3.0, 3.0, noise_of(1e3, reduction_length=k), 1e-3,
                                           "dx").tolerance for k in (0, 1)}
    assert at[0] == at[1] > directional(3.0).tolerance


def test_finite_differences_resolve_1e_8_and_catch_1e_6():
    assert directional(3.0 * (1 + 1e-6)).verdict == FAIL
    assert directional(3.0 * (1 + 5e-9)).verdict == PASS
    assert directional(3.0 * (1 + 2e-8)).verdict == FAIL
    assert directional(-3.0).verdict == FAIL                              # a sign flip
    # the scale is the larger of the claimed |g v| sum and |D6|: a tiny claimed scale does not shrink it
    assert directional(3.0 * (1 + 5e-9), scale=1e-6).verdict == PASS


def test_rounding_of_the_forward_widens_the_finite_difference_tolerance():
    quiet, noisy = directional(3.0), directional(3.0, abs_output_dot=1e3)
    rounding = finite_diff.D8_NOISE * EPS * 5 * 1e3 / 1e-3            # eps K sum|dy||y| / h, amplified
    assert noisy.tolerance - quiet.tolerance == pytest.approx(10 * rounding, rel=1e-6)
    na = directional(3.3, abs_output_dot=1e3, dtype="float16")        # float16 rounding / h swamps the derivative
    assert na.verdict == NA and "not applicable" in na.note
    assert na.error == pytest.approx(0.3, rel=1e-9) and na.relative == pytest.approx(0.3 / 3.0, rel=1e-9)


def test_a_kink_inside_the_stencil_is_reported_not_judged():
    kinked = lambda t: abs(t - 5e-4) + 2 * t                       # noqa: E731  kink at t = h / 2
    c = directional(2.0, phi=kinked)
    assert c.verdict == KINK and "not smooth" in c.note
    smooth_curved = lambda t: math.exp(3 * t)                      # noqa: E731  one-sided jumps double with h
    assert directional(3.0, phi=smooth_curved).verdict == PASS
    # a small change of slope (1e-3) is still a kink: the jumps are compared in units of the derivative
    assert directional(2.0, phi=lambda t: 2 * t + 1e-3 * abs(t - 5e-4)).verdict == KINK
    # jumps growing as h^1.3 deviate from doubling by 19% of the larger jump: inside the 25% band, smooth enough
    c = directional(2.0, phi=lambda t: 2 * t + abs(t) ** 2.3)
    assert c.verdict == PASS, c
    # a kink counts once its one-sided jump at 4h exceeds 1e-6 of the derivative's scale: c |t - h/2| jumps by
    # 1.75 c there
    assert directional(2.0, phi=lambda t: 2 * t + (3e-6 / 1.75) * abs(t - 5e-4), scale=2.0).verdict == KINK
    assert directional(2.0, phi=lambda t: 2 * t + (1e-6 / 1.75) * abs(t - 5e-4), scale=100.0).verdict == PASS
    # jumps growing as h^1.6 deviate by 34%: outside the band, not a smooth function at this scale
    c = directional(2.2, phi=lambda t: 2 * t + abs(t) ** 2.6, scale=2.2)
    assert c.verdict == KINK and c.error == pytest.approx(0.2, rel=1e-6) and c.relative == pytest.approx(0.2 / 2.2,
                                                                                                        rel=1e-6)
    c = directional(3.0, kink_reason="the input lies 1e-4 from a kink")
    assert c.verdict == KINK and "the input lies 1e-4 from a kink" in c.note


def test_check_argument_and_elementwise_gradient_of_a_square():
    x = np.array([[1.0, -2.0, 0.5]])
    arrays = {"x": x, "c": np.array(3.0)}

    def forward(a):
        return a["x"] ** 2 * a["c"]

    dy = np.array([[1.0, 2.0, -1.0]])
    grad = 6 * x * dy                                                 # d/dx sum dy c x^2 = 2 c x dy
    v = np.array([[1.0, -0.5, 0.75]])
    c = finite_diff.check_argument(forward, arrays, "x", grad, dy, forward(arrays), v, 1)
    assert c.verdict == PASS and c.quantity == "dx" and c.expected == pytest.approx(np.sum(grad * v), rel=1e-12)
    assert finite_diff.check_argument(forward, arrays, "x", grad * (1 + 1e-6), dy, forward(arrays), v,
                                      1).verdict == FAIL
    out = finite_diff.fd_gradient(forward, arrays, "x", dy, grad)
    # D8's rounding here: eps |phi| D8_NOISE / h ~ 5e-12 relative; each element stays within its own tolerance
    np.testing.assert_allclose(out.estimate, grad, rtol=1e-11)
    assert all(abs(out.estimate[k] - grad[k]) <= e.tolerance for k, e in out.elements.items())
    assert set(out.elements) == {(0, 0), (0, 1), (0, 2)} and all(e.passed for e in out.elements.values())
    wrong = grad.copy()
    wrong[0, 1] *= 1 + 1e-6
    elements = finite_diff.fd_gradient(forward, arrays, "x", dy, wrong).elements
    assert [k for k, e in elements.items() if not e.passed] == [(0, 1)]
    assert finite_diff.fd_gradient(forward, arrays, "x", dy).elements == {}       # nothing claimed, nothing judged


def test_directions_are_aligned_with_the_gradient_and_bounded():
    rng = np.random.default_rng(0)
    g = np.array([3.0, -1e-9, 0.0, np.nan, -4.0] * 40)
    v = finite_diff.direction_for(g, rng)
    assert np.all((np.abs(v) >= 0.5) & (np.abs(v) <= 1.0))
    assert np.min(np.abs(v)) < 0.6 and np.max(np.abs(v)) > 0.9          # random magnitudes, not all 1
    known = np.isfinite(g) & (g != 0)
    assert np.all(np.sign(v[known]) == np.sign(g[known]))
    assert {1.0, -1.0} <= set(np.sign(v[~known]))                     # random signs where g says nothing
    u = finite_diff.direction_for(np.ones(200), rng, aligned=False)
    assert np.all((np.abs(u) >= 0.5) & (np.abs(u) <= 1.0)) and {1.0, -1.0} == set(np.sign(u))


# ---- tolerance policy 3: the adjoint test -----------------------------------------------------------------------


def test_dot_product_test_values():
    Au, v, u, ATv = np.array([3.0, 4.0]), np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([6.0, 1.5])
    lhs, rhs, err, scale = dot_product_test(Au, v, u, ATv)
    assert (lhs, rhs, err) == (3.0, 3.0, 0.0)
    assert scale == pytest.approx(5.0 * 1.0 + 2.0 * math.hypot(6.0, 1.5), rel=1e-15)
    assert dot_product_test(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))[3] == tolerance.TINY


def test_adjoint_bound_is_1e_12_of_the_cauchy_schwarz_scale():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((20, 12))
    u, v = rng.standard_normal(12), rng.standard_normal(20)
    c = check_pair("dw", A @ u, v, u, A.T @ v)
    assert c.verdict == PASS and c.oracle == "adjoint" and c.quantity == "dw"
    assert c.expected == pytest.approx(float(v @ A @ u), rel=1e-12) and "<A u, v>" in c.note
    scale = np.linalg.norm(A @ u) * np.linalg.norm(v) + np.linalg.norm(u) * np.linalg.norm(A.T @ v)
    assert c.tolerance == pytest.approx(1e-12 * scale, rel=1e-12)
    # an error at 1e-10 of the transpose fails; one of 1e-14 passes
    assert check_pair("dw", A @ u, v, u, A.T @ v + 1e-10 * np.abs(A.T @ v)).verdict == FAIL
    assert check_pair("dw", A @ u, v, u, A.T @ v * (1 + 1e-14)).verdict == PASS
    assert check_pair("dw", A @ u, v, u, A.T @ v, note="mine").note == "mine"
    na = check_pair("dw", A @ u, v, u, A.T @ v * (1 + 1e-3), dtype="float16")
    _, _, err, scale = dot_product_test(A @ u, v, u, A.T @ v * (1 + 1e-3))
    assert na.verdict == NA and na.error == err and na.relative == pytest.approx(err / scale, rel=1e-12)


def test_adjoint_passes_at_its_tolerance_and_fails_one_ulp_above():
    """<A u, v> = e against <u, A^T v> = 0, with e the tolerance itself (a fixed point: the scale contains e)."""
    s = 2.0**40
    e = 1.0

    def pair(e):
        return check_pair("dx", np.array([e, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, s]))

    for _ in range(20):
        e = pair(e).tolerance
    at = pair(e)
    assert at.error == at.tolerance == e and at.verdict == PASS
    assert pair(np.nextafter(e, np.inf)).verdict == FAIL


def test_adjoint_step_keeps_piecewise_linear_pieces():
    relu = get_spec("relu")
    case = relu.make_case({"N": 1, "K": 3, "offset": 0.0}, seed=0)
    u = np.array([[0.5, -1.0, 0.75]])
    assert step_for(get_spec("dense"), "x", get_spec("dense").make_case({"N": 1, "m": 1, "n": 1}, 0), u) == 1.0
    t = step_for(relu, "x", case, u)
    reach = min(tolerance.ADJOINT_PIECEWISE_REACH, float(np.min(np.abs(case.arrays["x"]))) * 0.25)
    assert t == 2.0 ** math.floor(math.log2(reach))                 # the largest power of two within reach
    # policy 4: the reach is MARGIN / 8 = 1.25e-3 (this case lies >= MARGIN from 0, so that bound is the binding one)
    assert float(np.min(np.abs(case.arrays["x"]))) >= 1e-2
    assert step_for(relu, "x", case, np.array([[1.25e-3, -1e-3, 5e-4]])) == 1.0
    assert step_for(relu, "x", case, np.array([[1.26e-3, -1e-3, 5e-4]])) == 0.5
    # close to a kink, a quarter of the case's distance to it is the binding bound
    near = Case("relu", case.config, {"x": np.array([[2e-3, -0.5, 0.7]])}, case.dy, case.seed)
    assert step_for(relu, "x", near, np.array([[5e-4, -1e-4, 2e-4]])) == 1.0
    assert step_for(relu, "x", near, np.array([[5.1e-4, -1e-4, 2e-4]])) == 0.5
    on_kink = relu.make_case({"N": 1, "K": 3, "offset": 0.0}, seed=0)
    on_kink.arrays["x"][0, 1] = 0.0
    assert step_for(relu, "x", on_kink, u) == 0.0
    (c,) = check_case(relu, relu.reference, on_kink, oracles=("adjoint",)).comparisons
    assert c.verdict == KINK and "sits on a non-differentiable point" in c.note
    assert c.error == c.relative == c.tolerance == 0.0                 # no error is claimed for a kink
    assert step_for(relu, "x", case, np.zeros((1, 3))) == 0.0


# ---- the oracles on one case ------------------------------------------------------------------------------------

CONV = get_spec("conv2d")
CONV_CONFIG = {"N": 1, "C_in": 2, "C_out": 2, "H": 4, "W": 5, "kh": 2, "kw": 3, "sh": 1, "sw": 2, "ph": 0, "pw": 1,
               "dilh": 1, "dilw": 1}


def scaled(spec, index, factor, what="backward"):
    """The reference with one gradient (or the forward) multiplied by factor."""
    def forward(*arrays, **hyper):
        y = spec.reference.forward(*arrays, **hyper)
        return y * factor if what == "forward" else y

    def backward(dy, *arrays, **hyper):
        grads = list(spec.reference.backward(dy, *arrays, **hyper))
        if what == "backward":
            grads[index] = grads[index] * factor
        return tuple(grads)
    return Implementation(f"{spec.name} {what} {index} * {factor}", forward, backward)


def by_oracle(result):
    out = {}
    for c in result.comparisons:
        out.setdefault(c.oracle, {})[c.quantity] = c.verdict
    return out


def test_every_oracle_passes_a_right_implementation_and_names_each_quantity():
    case = CONV.make_case(CONV_CONFIG, seed=3)
    plugin = Implementation("copy of the reference", CONV.reference.forward, CONV.reference.backward)
    verdicts = by_oracle(check_case(CONV, plugin, case))
    everything = {"forward": PASS, "dx": PASS, "dw": PASS, "db": PASS}
    assert verdicts == {"pytorch": everything, "reference": everything, "sparse matrix": everything,
                        "finite differences": {"dx": PASS, "dw": PASS, "db": PASS},
                        "adjoint": {"dx": PASS, "dw": PASS, "db": PASS}}
    # the reference is never compared with itself, nor with an equal copy of itself
    assert "reference" not in by_oracle(check_case(CONV, CONV.reference, case))
    twin = Implementation(CONV.reference.name, CONV.reference.forward, CONV.reference.backward)
    assert "reference" not in by_oracle(check_case(CONV, twin, case))


def test_an_argument_the_torch_version_does_not_use_has_gradient_zero_there():
    dense = get_spec("dense")
    no_bias = replace(dense, torch_forward=lambda x, W, b: x @ W)
    case = dense.make_case({"N": 2, "m": 3, "n": 2}, seed=0)
    verdicts = by_oracle(check_case(no_bias, dense.reference, case, oracles=("pytorch",)))["pytorch"]
    assert verdicts == {"forward": FAIL, "dx": PASS, "dW": PASS, "db": FAIL}
    zero_db = Implementation("db = 0", lambda x, W, b: x @ W,
                             lambda dy, x, W, b: (*dense.reference.backward(dy, x, W, b)[:2], np.zeros(2)))
    assert check_case(no_bias, zero_db, case, oracles=("pytorch",)).passed


def test_adjoint_test_judges_the_second_difference_relative_to_the_outputs_size():
    """With W ~ 1e5, rounding leaves a second difference ~eps |y| |v| ~ 1e-11 in x: far below 1e-6 |A d| |v|, the
    relative bound. With W ~ 1e-3, a curvature of 1e-7 |x|^2 is above it (though below 1e-6 / (|A d| |v|)). The
    test of x alone (``adjoint._check_argument``) judges it; the joint test first tries a direction over x, W and b,
    where a quadratic is exact in the symmetric differences and the gradient verdict stands without it."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=0)
    case.arrays["W"] = case.arrays["W"] * 1e5
    (c,) = [c for c in check_case(dense, dense.reference, case, oracles=("adjoint",)).comparisons
            if c.quantity == "dx"]
    assert c.verdict == PASS, c
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=0)
    case.arrays["W"] = case.arrays["W"] * 1e-3
    x0 = case.arrays["x"].copy()      # curvature centred on the case: it shows in the second difference only

    def alone(impl):
        return _check_argument(dense, impl, case, evaluate(dense, impl, case), "x",
                               np.random.default_rng(case.seed ^ 0xAD70))
    curved = Implementation("slightly curved dense", lambda x, W, b: dense.reference.forward(x, W, b)
                            + 1e-7 * np.sum((x - x0) ** 2), dense.reference.backward)
    c = alone(curved)
    assert c.verdict == FAIL and "not affine in x" in c.note
    # 1/2000 of that curvature is about a third of the bound (1e-6 of |A d| |v| with this seed's u and v): below
    # it, the map counts as affine
    barely = Implementation("barely curved dense", lambda x, W, b: dense.reference.forward(x, W, b)
                            + 5e-11 * np.sum((x - x0) ** 2), dense.reference.backward)
    c = alone(barely)
    assert c.verdict == PASS, c


def test_a_float32_forward_that_cancels_gets_finite_differences_sized_by_its_terms():
    """y = x W with x = (100, -100), W = (1, 1): y = 0 from terms of size 100, whose float32 rounding the
    differences amplify by 1/h. Judged at the terms' size (policy 6) there is no false alarm; a wrong gradient
    still fails. The float32 storage of the moved W (policy 2's input rounding, 8 eps32 |g (|W| + reach |v|)|_2,
    amplified by sum|weights| / h) bounds the oracle's resolution here at a few percent: a gradient wrong by 10%,
    twice that, fails."""
    dense = get_spec("dense")
    arrays = {"x": np.array([[100.0, -100.0]]), "W": np.array([[1.0], [1.0]]), "b": np.array([0.0])}
    case = Case("dense", {"N": 1, "m": 2, "n": 1}, arrays, np.array([[1.0]]), seed=0)

    def float32(factor):
        def backward(dy, x, W, b):
            dx, dW, db = dense.reference.backward(dy, x, W, b)
            return dx.astype(np.float32), (dW * factor).astype(np.float32), db.astype(np.float32)
        return Implementation(f"float32 dense {factor}", lambda x, W, b: (x.astype(np.float32) @ W.astype(np.float32)
                                                                          + b.astype(np.float32)), backward)

    right = check_case(dense, float32(1.0), case, oracles=("finite differences",))
    verdicts = {c.quantity: c.verdict for c in right.comparisons}
    assert verdicts["dW"] == PASS and FAIL not in verdicts.values(), right.comparisons  # dx, db: n/a in float32
    (dW,) = [c for c in right.comparisons if c.quantity == "dW"]
    assert 1e-3 < dW.resolution < 0.05                 # float32 rounding / h is seen, and still decides at 5%
    wrong = check_case(dense, float32(1.1), case, oracles=("finite differences",))
    assert {c.quantity: c.verdict for c in wrong.comparisons}["dW"] == FAIL


@pytest.mark.parametrize("index, quantity", [(0, "dx"), (1, "dw"), (2, "db")])
def test_every_oracle_catches_a_gradient_wrong_by_1e_6(index, quantity):
    case = CONV.make_case(CONV_CONFIG, seed=4)
    verdicts = by_oracle(check_case(CONV, scaled(CONV, index, 1 + 1e-6), case))
    for oracle in ("pytorch", "reference", "sparse matrix", "finite differences", "adjoint"):
        assert verdicts[oracle][quantity] == FAIL, oracle
        assert all(v == PASS for q, v in verdicts[oracle].items() if q != quantity), oracle


def test_exact_oracles_catch_a_forward_wrong_by_1e_6_and_finite_differences_judge_the_gradient():
    case = CONV.make_case(CONV_CONFIG, seed=5)
    verdicts = by_oracle(check_case(CONV, scaled(CONV, 0, 1 + 1e-6, "forward"), case))
    for oracle in ("pytorch", "reference", "sparse matrix"):
        assert verdicts[oracle] == {"forward": FAIL, "dx": PASS, "dw": PASS, "db": PASS}


def test_the_gradient_of_a_nonlinear_op_is_judged_against_autograd_and_differences():
    spec = get_spec("sigmoid")
    case = spec.make_case({"N": 2, "K": 3, "offset": 0.0}, seed=1)
    assert by_oracle(check_case(spec, scaled(spec, 0, 1 + 1e-6), case)) == {
        "pytorch": {"forward": PASS, "dx": FAIL}, "reference": {"forward": PASS, "dx": FAIL},
        "finite differences": {"dx": FAIL}}
    assert check_case(spec, Implementation("copy", spec.reference.forward, spec.reference.backward), case).passed


def test_a_case_closer_to_a_kink_than_the_stencil_gets_a_kink_verdict():
    relu = get_spec("relu")
    case = relu.make_case({"N": 1, "K": 3, "offset": 0.0}, seed=0)
    case.arrays["x"][0, 0] = 1e-3                                   # within KINK_CLEARANCE of 0
    result = check_case(relu, relu.reference, case, oracles=("finite differences",))
    (c,) = result.comparisons
    assert c.verdict == KINK and "closer than the stencil's reach" in c.note
    far = relu.make_case({"N": 1, "K": 3, "offset": 0.0}, seed=0)
    assert check_case(relu, relu.reference, far, oracles=("finite differences",)).comparisons[0].verdict == PASS
    x = far.arrays["x"].copy()
    x[0, 0] = tolerance.KINK_CLEARANCE                              # exactly at the clearance: not closer
    at = Case("relu", far.config, {"x": x}, far.dy, far.seed)
    assert check_case(relu, relu.reference, at, oracles=("finite differences",)).comparisons[0].verdict == PASS
    x[0, 0] = np.nextafter(tolerance.KINK_CLEARANCE, 0.0)
    closer = Case("relu", far.config, {"x": x}, far.dy, far.seed)
    assert check_case(relu, relu.reference, closer, oracles=("finite differences",)).comparisons[0].verdict == KINK


def test_a_forward_that_is_not_affine_in_a_linear_argument_fails_the_adjoint_test():
    dense = get_spec("dense")
    case = dense.make_case({"N": 2, "m": 3, "n": 2}, seed=0)

    def forward(x, W, b):
        return dense.reference.forward(x, W, b) + 1e-3 * np.sum(x**2)

    calls = []                                                       # (kind, x or dy), in call order

    def recording_forward(x, W, b):
        calls.append(("forward", x, W))
        return forward(x, W, b)

    def recording_backward(dy, x, W, b):
        calls.append(("backward", dy, None))
        return dense.reference.backward(dy, x, W, b)

    result = check_case(dense, Implementation("curved dense", recording_forward, recording_backward), case,
                        oracles=("adjoint",))
    verdicts = {c.quantity: c for c in result.comparisons}
    assert verdicts["dx"].verdict == FAIL and "not affine in x" in verdicts["dx"].note
    # the reported second difference is <f(a + u) + f(a - u) - 2 f(a), v>: the two forward calls at a moved x
    # alone (the joint test over x, W, b comes first: it is not exact here, so each argument is tested alone), and v
    # the upstream gradient of the backward call that follows them
    a, W, b = case.arrays["x"], case.arrays["W"], case.arrays["b"]
    first = next(i for i, (kind, x, w) in enumerate(calls)
                 if kind == "forward" and not np.array_equal(x, a) and np.array_equal(w, W))
    (_, plus, _), (_, minus, _) = calls[first], calls[first + 1]
    v = next(dy for kind, dy, _ in calls[first + 2:] if kind == "backward")
    second = forward(plus, W, b) + forward(minus, W, b) - 2 * forward(a, W, b)
    expected = abs(float(np.sum(second * v)))
    reported = float(verdicts["dx"].note.split("2 f(a), v> = ")[1].split(";")[0])
    assert reported == pytest.approx(expected, rel=2e-3)
    assert verdicts["dW"].verdict == PASS and verdicts["db"].verdict == PASS


def test_the_adjoint_tests_backward_call_cannot_change_the_case():
    """A plug-in that scribbles on its inputs in the adjoint test's call gets copies: the case stays as generated."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 2, "m": 3, "n": 2}, seed=0)
    before = {n: a.copy() for n, a in case.arrays.items()}

    def backward(dy, x, W, b):
        grads = dense.reference.backward(dy, x, W, b)
        if not np.array_equal(dy, case.dy):                        # only in the adjoint test's calls
            x[...] = 0.0
            W[...] = 0.0
        return grads

    check_case(dense, Implementation("scribbling dense", dense.reference.forward, backward), case,
               oracles=("adjoint",))
    assert all(np.array_equal(case.arrays[n], before[n]) for n in before)


def test_a_forward_that_scribbles_on_perturbed_inputs_changes_neither_the_case_nor_the_verdict():
    """The witnesses hand each perturbed forward call fresh arrays (a + t u) and read none of them again: a forward
    that zeroes its inputs after computing y (only in the perturbed calls, so the evaluation's guard cannot see it)
    leaves the case as generated and the differences d = (a + t u) - (a - t u) exact, and the correct gradients
    pass."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 2, "m": 3, "n": 2}, seed=0)
    before = {n: a.copy() for n, a in case.arrays.items()}

    def forward(x, W, b):
        y = dense.reference.forward(x, W, b)
        if not np.array_equal(x, case.arrays["x"]):                 # only in the witnesses' perturbed calls
            x[...] = 0.0
            W[...] = 0.0
        return y

    result = check_case(dense, Implementation("scribbling dense", forward, dense.reference.backward), case,
                        oracles=("finite differences", "adjoint"))
    assert not result.failures and {c.verdict for c in result.comparisons} == {PASS}
    assert all(np.array_equal(case.arrays[n], before[n]) for n in before)


def test_a_float32_layer_with_a_large_bias_passes_the_adjoint_test():
    """float32 rounding of f(a +- u) ~ eps32 |b| leaves a second difference above 1e-6 |A d| |v|: in float32 the
    pieces-held check is judged at the float32 adjoint bound (5.4e-4), not at 1e-6."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=1)
    case.arrays["b"] = case.arrays["b"] + 300.0

    def forward(x, W, b):
        return x.astype(np.float32) @ W.astype(np.float32) + b.astype(np.float32)

    def backward(dy, x, W, b):
        return tuple(g.astype(np.float32) for g in dense.reference.backward(dy, x, W, b))

    result = check_case(dense, Implementation("float32 dense", forward, backward), case, oracles=("adjoint",))
    assert [c.verdict for c in result.comparisons] == [PASS, PASS, PASS], result.comparisons


def test_in_float32_the_pieces_held_check_uses_the_float32_adjoint_bound():
    """A curvature of 8e-4 |A d| |v| lies above float32's bound (5.4e-4): the float32 layer is not affine."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=0)
    case.arrays["W"] = case.arrays["W"] * 1e-3
    x0 = case.arrays["x"].copy()

    def forward(x, W, b):
        return (dense.reference.forward(x, W, b) + 1.33e-6 * np.sum((x - x0) ** 2)).astype(np.float32)

    def backward(dy, x, W, b):
        return tuple(g.astype(np.float32) for g in dense.reference.backward(dy, x, W, b))

    result = check_case(dense, Implementation("curved float32 dense", forward, backward), case, oracles=("adjoint",))
    (c,) = [c for c in result.comparisons if c.quantity == "dx"]
    assert c.verdict == FAIL and "not affine in x" in c.note


def test_finite_differences_pass_at_their_tolerance_and_fail_one_ulp_above():
    flat = lambda t: 0.0                                            # noqa: E731  D6 = 0, no truncation, no rounding
    tol = directional(0.0, phi=flat, scale=2.0).tolerance
    assert directional(tol, phi=flat, scale=2.0).verdict == PASS
    assert directional(np.nextafter(tol, np.inf), phi=flat, scale=2.0).verdict == FAIL


def test_the_finite_difference_scale_is_the_sum_of_the_terms_not_their_mean():
    """<g, v> = 10 - 10 + 0.1 cancels: the resolution 1e-8 applies to sum |g_i v_i| = 20.1, not to 0.1 or 6.7."""
    arrays = {"x": np.array([1.0, 2.0, 3.0])}
    forward = lambda a: 2.0 * a["x"]                               # noqa: E731  exactly linear: D6 = <2 dy, v>
    dy, grad, v = np.ones(3), np.full(3, 2.0), np.array([5.0, -5.0, 0.05])
    c = finite_diff.check_argument(forward, arrays, "x", grad + np.array([0.0, 0.0, 3e-6]), dy, forward(arrays), v, 1)
    assert c.verdict == PASS and c.error == pytest.approx(1.5e-7, rel=1e-6)


def test_rounding_allows_a_smooth_function_its_deviation_from_doubling():
    """Jumps growing as h^1.43 deviate from doubling by 26% (just outside the 25% band) by ~2e-6; a forward whose
    rounding (amplified by 1/h) is 2e-5 cannot be called kinked on that evidence."""
    c = directional(2.0, phi=lambda t: 2 * t + abs(t) ** 2.4344, scale=2.0, abs_output_dot=1.1e7)
    assert c.verdict == PASS, c
    assert directional(2.0, phi=lambda t: 2 * t + abs(t) ** 2.4344, scale=2.0).verdict == KINK   # without rounding
