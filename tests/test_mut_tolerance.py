"""The tolerance policies (checks/tolerance.py's docstring) pinned where the complete mutation run of compare.py and
tolerance.py (2026-11-30, after the joint witnesses; docs/mutation.md) found them unpinned: each test states a
documented formula's value on constructed numbers, a verdict exactly at a boundary, or a constant's effect on what
a user sees (which stencil decides, how many calls a case costs, which argument a joint test settles)."""
import dataclasses

import numpy as np
import pytest

from cnn_gradcheck import finite_diff, oracles, probes, tolerance
from cnn_gradcheck.adjoint import adjoint_oracle
from cnn_gradcheck.calls import evaluate
from cnn_gradcheck.compare import PASS, compare_arrays
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Case, Implementation

EPS = 2.0**-52
EPS32 = 2.0**-23


# --- policy 1: the comparison's scale, the estimate's terms ---------------------------------------------------

def test_a_comparisons_relative_error_and_resolution_are_taken_at_the_expected_values_scale_below_1():
    """relative = error / max|E| and resolution = tolerance / max|E|, also where every |E| is below 1 (no floor of
    1 under the scale: a gradient of size 1e-3 off by 1e-9 is off by 1e-6 relative)."""
    expected = np.array([1e-3, -5e-4])
    c = compare_arrays("pytorch", "dx", expected, expected + np.array([1e-9, 0.0]), 1)
    assert c.relative == pytest.approx(1e-6, rel=1e-6)
    assert c.resolution == c.tolerance / 1e-3
    assert c.tolerance == 8 * EPS * 1e-3


def test_the_measured_noise_enters_policy_1b_times_estimate_safety_16():
    """1b: ESTIMATE_SAFETY * eps * measured, ESTIMATE_SAFETY = 16 (the largest of three realisations, which another
    summation order may exceed by a few times: worst ratio 8.8 measured)."""
    estimate = tolerance.Estimate(measured=1e3)
    assert tolerance.rounding_tolerance(np.array([1e-3]), 1, estimate=estimate) == 16 * EPS * 1e3
    assert tolerance.rounding_tolerance(np.array([1e-3]), 1, "float32", estimate=estimate) == 16 * EPS32 * 1e3


def test_an_estimate_with_only_a_floor_adds_no_measured_noise():
    """Estimate(floor=f): measured defaults to 0, so the tolerance is the larger of 1a and 1c (8 eps f), not 16 eps."""
    estimate = tolerance.Estimate(floor=1e-4)
    assert estimate.measured == 0.0
    assert tolerance.rounding_tolerance(np.array([1e-3]), 1, estimate=estimate) == 8 * EPS * 1e-3   # 1a > 1c
    assert tolerance.rounding_tolerance(np.array([1e-3]), 1, estimate=tolerance.Estimate(floor=1.0)) == 8 * EPS


def test_an_estimate_is_a_value_that_cannot_be_changed_once_computed():
    """Estimates are computed once per case and shared by every oracle that compares the same quantity: one
    comparison must not be able to widen another's tolerance by writing to it."""
    estimate = tolerance.Estimate(measured=2.0, floor=3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.measured = 1e12
    assert estimate == tolerance.Estimate(2.0, 3.0) and hash(estimate) == hash(tolerance.Estimate(2.0, 3.0))


# --- policy 1b: the probe's realisations --------------------------------------------------------------------------

def dense_case(seed=3, shape=(4, 5, 3)):
    n, m, k = shape
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((n, m)), "W": rng.standard_normal((m, k)), "b": rng.standard_normal(k)}
    return Case("dense", {"N": n, "m": m, "n": k}, arrays, rng.standard_normal((n, k)), seed=seed)


def test_the_probe_draws_three_realisations_by_default():
    """PROBE_SAMPLES = 3 (the case and two jittered points: 'the largest of three rarely' is small by chance). On
    this case a fourth realisation would raise the measured noise, so the default is not more than three."""
    dense = get_spec("dense")
    default = probes.rounding_estimates(dense, dense_case())
    three = probes.rounding_estimates(dense, dense_case(), 3)
    four = probes.rounding_estimates(dense, dense_case(), 4)
    assert all(default[q] == three[q] for q in three)
    assert any(four[q].measured > three[q].measured for q in three)


def test_the_probes_jitter_is_2_to_the_minus_12_relative():
    """PROBE_JITTER = 2^-12: every input and dy moves by at most that relative amount, and (uniform draws over 47
    elements) the largest move uses more than half of it."""
    dense = get_spec("dense")
    case = dense_case(shape=(6, 5, 3))
    nearby = probes._jittered(dense, case, np.random.default_rng(0))
    moves = [np.abs(nearby.arrays[n] / case.arrays[n] - 1) for n in case.arrays] + [np.abs(nearby.dy / case.dy - 1)]
    largest = max(float(np.max(m)) for m in moves)
    assert 2.0**-13 < largest <= 2.0**-12 * (1 + 1e-9)


def test_the_probe_is_not_jittered_where_2_to_the_minus_12_could_reach_a_quarter_of_the_kink_distance():
    """No jittered point where PROBE_JITTER * max|a| > ADJOINT_KINK_SHARE * kink distance: a ReLU input at 0.004
    from its kink with inputs of size 8 (reach 8 * 2^-12 = 0.00195 > 0.001) is not moved; at 0.01, it is."""
    relu = get_spec("relu")
    x = np.array([[8.0, -0.004, 1.0]])
    near = Case("relu", {"N": 1, "K": 3}, {"x": x}, np.ones((1, 3)), seed=0)
    assert probes._jittered(relu, near, np.random.default_rng(0)) is None
    x = np.array([[8.0, -0.01, 1.0]])
    far = Case("relu", {"N": 1, "K": 3}, {"x": x}, np.ones((1, 3)), seed=0)
    assert probes._jittered(relu, far, np.random.default_rng(0)) is not None
    # with a jitter of 2^-13 the first case would be jittered (reach 0.00098 < 0.001)
    assert 8 * 2.0**-13 < 0.25 * 0.004 < 8 * 2.0**-12


def _two_sum(a, b):
    s = a + b
    bv = s - a
    return s, (a - (s - bv)) + (b - bv)


def test_the_float64_realisations_of_a_gradient_are_at_3_dy_and_5_dy():
    """Policy 1b at float64: (g(c dy) - c g64) / c for c = 2^k + 1, k in PROBE_DY_SHIFTS = (1, 2), with c dy and
    c g64 split error-free (TwoSum). A dense layer of one input row and one output has single-product gradients
    (dx = dy W^T, dW = x^T dy), which torch rounds exactly as numpy does, so the documented formula can be
    evaluated here; at c = 9 (k = 3) it differs."""
    dense = get_spec("dense")
    rng = np.random.default_rng(11)
    arrays = {"x": rng.standard_normal((1, 7)), "W": rng.standard_normal((7, 1)), "b": rng.standard_normal(1)}
    case = Case("dense", {"N": 1, "m": 7, "n": 1}, arrays, rng.standard_normal((1, 1)), seed=11)
    dy = case.dy
    g64 = {"x": dy @ arrays["W"].T, "W": arrays["x"].T @ dy, "b": dy.sum(axis=0)}

    def realisation(k):
        c = 2.0**k + 1
        dy_c, remainder = _two_sum(dy * 2.0**k, dy)
        out = {}
        for n, (g_c, g_e) in {"x": (dy_c @ arrays["W"].T, remainder @ arrays["W"].T),
                              "W": (arrays["x"].T @ dy_c, arrays["x"].T @ remainder),
                              "b": (dy_c.sum(axis=0), remainder.sum(axis=0))}.items():
            hi, lo = _two_sum(g64[n] * 2.0**k, g64[n])
            out[n] = ((g_c - hi) + (g_e - lo)) / c
        return out

    realised = probes._realised_gradients(dense, case, g64, 2)
    assert len(realised) == 2
    for got, k in zip(realised, (1, 2)):
        for n in g64:
            assert np.array_equal(got[n], realisation(k)[n]), (k, n)
    assert any(not np.array_equal(realisation(3)[n], realisation(2)[n]) for n in ("x", "W"))
    # and they enter the gradients' estimates per unit eps(float64)
    estimates = probes.rounding_estimates(dense, case)
    for n in ("x", "W"):
        again = max(tolerance.realised_noise(r[n]) for r in realised)
        assert estimates[f"d{n}"].measured >= again


# --- policy 2: the forward's noise, the short stencil -------------------------------------------------------------

def test_output_noise_measured_term_is_16_times_the_larger_of_the_norm_and_the_sum_over_eps32():
    """output_noise's measured term: ESTIMATE_SAFETY max(|dy e|_2, |<dy, e>|) / eps(float32), times eps; y = 0 leaves
    no arithmetic term. A correlated error (every element the same way) counts by its sum, an alternating one by
    its norm; non-finite elements of e (float32 overflow) are left out."""
    dy, y = np.ones(4), np.zeros(4)
    e = np.full(4, 2.0**-20)                                       # |dy e|_2 = 2^-19, <dy, e> = 2^-18
    assert tolerance.output_noise(dy, y, 1, forward_error=e) == EPS * 16 * 2.0**-18 / EPS32
    alternating = e * np.array([1, -1, 1, -1])                     # sum 0: the norm 2^-19 counts
    assert tolerance.output_noise(dy, y, 1, forward_error=alternating) == EPS * 16 * 2.0**-19 / EPS32
    overflowed = np.array([2.0**-20, np.inf, 2.0**-20, np.nan])    # as if those two elements were 0
    assert tolerance.output_noise(dy, y, 1, forward_error=overflowed) == EPS * 16 * 2.0**-19 / EPS32


def test_the_short_stencil_of_a_smooth_forward_steps_by_fd_step_over_8():
    """FD_SHORT_STEP = FD_STEP / 8 = 1.25e-4: a smooth op's joint direction is probed at a +- t u and a +- 2t u with
    t = 1.25e-4, and the short stencil's pass stands (five forward calls in all)."""
    spec = get_spec("sigmoid")
    calls = []

    def forward(x):
        calls.append(np.array(x, dtype=np.float64, copy=True))
        return spec.reference.forward(x)

    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, size=(2, 3))
    case = Case("sigmoid", {"N": 2, "K": 3}, {"x": x}, rng.standard_normal((2, 3)), seed=2)
    impl = Implementation("recorded", forward, spec.reference.backward)
    evaluation = evaluate(spec, impl, case)
    [c] = oracles.finite_difference_oracle(spec, impl, case, evaluation)
    assert c.verdict == PASS and "short stencil" in c.note
    u = evaluation.stencils[("x",)].directions["x"]
    steps = sorted(float(np.mean((moved - x) / u)) for moved in calls[1:])
    assert len(calls) == 5
    np.testing.assert_allclose(steps, [-2.5e-4, -1.25e-4, 1.25e-4, 2.5e-4], rtol=1e-6)


def _exp_check(t):
    """phi(s) = exp(3 (1 + s)) along v = 1 at x = 1: the short stencil's truncation estimate |D(t) - D4| ~ 1.5 t^2
    phi' makes its resolution about 15 t^2 + 1e-8."""
    calls = []
    forward = lambda arrays: (calls.append(1), np.exp(3 * arrays["x"]))[1]  # noqa: E731
    x = np.array([1.0])
    y0 = forward({"x": x})
    grad = 3 * np.exp(3 * x)
    c = finite_diff.check_joint(forward, {"x": x}, {"x": grad}, np.ones(1), y0, {"x": np.ones(1)}, 1,
                                quantity="dx", short_step=t)
    short = finite_diff.short_check(lambda s: float(np.exp(3 * (1 + s))), float(grad[0]), float(grad[0]), 0.0, t,
                                    "dx")
    return c, len(calls), short


def test_the_short_stencils_pass_stands_at_a_resolution_of_5e_7_and_not_above():
    """FD_SHORT_ACCEPT = 5e-7: a short-stencil pass resolving 3e-7 stands (1 + 4 forward calls); one resolving 7e-7
    (between 5e-7 and 1e-6) is handed to the full D8 stencil (8 more calls), whose pass is finer."""
    c, n, short = _exp_check(1.4e-4)
    assert short.verdict == PASS and 2e-7 < short.resolution < 4e-7
    assert c.verdict == PASS and "short stencil" in c.note and n == 1 + 4
    c, n, short = _exp_check(2.15e-4)
    assert short.verdict == PASS and 6e-7 < short.resolution < 8e-7
    assert c.verdict == PASS and "short stencil" not in c.note and n == 1 + 4 + 8
    assert c.resolution < 5e-7


# --- policy 3: the joint adjoint test, the step, the pieces ------------------------------------------------------

def test_the_joint_adjoint_test_settles_an_argument_whose_share_resolves_5e_11_and_no_coarser(monkeypatch):
    """ADJOINT_JOINT_ACCEPT = 5e-11: on this dense case (b scaled by 300), the joint test resolves b's share at
    2.8e-12 and x's and W's at 5.5e-11, between 5e-11 and 1e-10. b's verdict is the joint one; x and W are tested
    alone (one backward call each: 1 + 1 + 2 in all)."""
    dense = get_spec("dense")
    config = {"N": 3, "m": 4, "n": 3}
    made = dense.make_case(config, seed=2)
    case = Case("dense", config, {**made.arrays, "b": made.arrays["b"] * 300}, made.dy, seed=2)
    calls = {"backward": 0}

    def backward(*args, **hyper):
        calls["backward"] += 1
        return dense.reference.backward(*args, **hyper)

    impl = Implementation("counted reference", dense.reference.forward, backward)
    result = {c.quantity: c for c in adjoint_oracle(dense, impl, case, evaluate(dense, impl, case))}
    assert all(c.verdict == PASS for c in result.values())
    assert result["db"].note.startswith("joint direction")
    assert not result["dx"].note.startswith("joint direction") and not result["dW"].note.startswith("joint direction")
    assert calls["backward"] == 1 + 1 + 2
    # where the joint test's resolutions lie (every argument accepted):
    monkeypatch.setattr(tolerance, "ADJOINT_JOINT_ACCEPT", np.inf)
    joint = {c.quantity: c for c in adjoint_oracle(dense, impl, case, evaluate(dense, impl, case))}
    assert joint["db"].resolution < 5e-11 < joint["dx"].resolution < 1e-10 and 5e-11 < joint["dW"].resolution < 1e-10


def test_the_adjoint_step_is_unresolved_exactly_where_the_inputs_rounding_exceeds_the_adjoint_bound():
    """Policy 3 at a lower precision: unresolved iff eps(dtype) |a| > ADJOINT_RTOL eps(dtype) / eps(float64) * step,
    i.e. |a| / step > 1e-12 / eps(float64) = 4503.6; at equality the test still resolves. Never in float64."""
    ratio = 1e-12 / EPS                                            # exactly the threshold of |a| / step
    assert tolerance.adjoint_step_unresolved(1.0, ratio, "float32") is False
    assert tolerance.adjoint_step_unresolved(1.0, ratio * (1 + 2**-40), "float32") is True
    step = 2.0**-10                                                # a piecewise-linear argument's step
    assert tolerance.adjoint_step_unresolved(step, 5.0, "float32") is True        # 5 / 2^-10 = 5120
    assert tolerance.adjoint_step_unresolved(step, 4.0, "float32") is False       # 4096
    assert tolerance.adjoint_step_unresolved(step, 5.0, "float16") is True
    assert tolerance.adjoint_step_unresolved(1e-3, 1e6, "float32") is True        # a float32 ReLU at 1e6
    assert not tolerance.adjoint_step_unresolved(1e-3, 1e6, "float64")


def test_the_affine_limit_at_float32_is_the_adjoints_own_rounding_level():
    """affine_limit: max(AFFINE_SECOND_DIFFERENCE, ADJOINT_RTOL eps(dtype) / eps(float64)): 1e-6 in float64,
    1e-12 * 2^29 = 5.4e-4 in float32; a relative second difference of 6e-4 at float32 means the pieces changed."""
    assert tolerance.affine_limit("float64") == 1e-6
    assert tolerance.affine_limit("float32") == 1e-12 * 2.0**29
    assert tolerance.pieces_changed(6e-4, 1.0, "float32")
    assert not tolerance.pieces_changed(5e-4, 1.0, "float32")


# --- policy 6: kinks ---------------------------------------------------------------------------------------------

def test_a_jump_exactly_at_the_kink_threshold_is_not_significant():
    """significant: |j_4h| > KINK_JUMP * scale + jump_noise (strictly); jumps that do not double."""
    not_doubling = [1e-3, 0.0]
    assert not tolerance.jumps_show_kink(not_doubling + [2e-6], 2.0, 0.0, 1e-3)    # 2e-6 = 1e-6 * 2: at it
    assert tolerance.jumps_show_kink(not_doubling + [2.0000001e-6], 2.0, 0.0, 1e-3)


def test_the_rounding_raises_the_kink_threshold():
    """jump_noise adds to KINK_JUMP * scale: with noise 1e-9 at h = 1e-3 (jump noise 1e-5), a last jump of 2e-6
    is rounding, however the smaller steps' jumps behave; without the noise it is a kink."""
    jumps = [1e-4, 0.0, 2e-6]
    assert tolerance.jump_noise(1e-9, 1e-3) == pytest.approx(1e-5)
    assert not tolerance.jumps_show_kink(jumps, 1.0, 1e-9, 1e-3)
    assert tolerance.jumps_show_kink(jumps, 1.0, 0.0, 1e-3)


def test_jumps_exactly_at_the_doubling_band_still_double():
    """doubling: |j_2k - 2 j_k| <= KINK_DOUBLING_BAND |j_2k| + rounding, at equality too: 3, 8, 16 (|8 - 6| = 0.25 * 8)
    is a smooth function's doubling, not a kink; 3, 8.5, 17 is outside the band."""
    assert not tolerance.jumps_show_kink([3.0, 8.0, 16.0], 1.0, 0.0, 1e-3)
    assert tolerance.jumps_show_kink([3.0, 8.5, 17.0], 1.0, 0.0, 1e-3)


# --- policy 7 and 8 ----------------------------------------------------------------------------------------------

def test_a_discrepancy_equal_to_the_resolution_is_not_resolved():
    """resolves: only a discrepancy strictly above the resolution could have been seen."""
    r = 3e-9
    assert not tolerance.resolves(r, r)
    assert tolerance.resolves(r, np.nextafter(r, 1.0))
    c = compare_arrays("pytorch", "dx", np.array([1.0]), np.array([1.0]), 1)
    assert not c.could_resolve(c.resolution) and c.could_resolve(2 * c.resolution)


def test_repeat_tolerances_of_values_below_1_are_taken_at_their_own_size():
    """Policy 8 with everything below 1: max|dy| max(1, max|a|) = max|dy| for inputs below 1, and
    ROUNDING_SAFETY eps K max(|first|, |second|, terms) with terms 0 by default: no floor of 1."""
    assert tolerance.repeat_term_scale(np.array([0.25, -0.125]), [np.array([0.5])]) == 0.25
    assert tolerance.repeat_term_scale(np.array([0.25]), [np.array([4.0])]) == 1.0
    first, second = np.array([0.5, -0.25]), np.array([0.125])
    assert tolerance.repeat_tolerance(first, second, 3) == 8 * EPS * 3 * 0.5
    assert tolerance.repeat_tolerance(second, second, 3) == 8 * EPS * 3 * 0.125
    assert tolerance.repeat_tolerance(second, first * 0.5, 3) == 8 * EPS * 3 * 0.25
