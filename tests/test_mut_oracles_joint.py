"""checks/oracles.py pinned where its complete mutation run after the joint witnesses (2026-11-30, docs/mutation.md)
found it unpinned: the jittered probe points (policy 1b), the float64 realisations at c dy (TwoSum identities on
constructed inputs), the measured noise where torch has no float32 version, policy 6's magnitude for a
lower-precision plug-in, the single-argument path of the finite-difference oracle and the per-argument resolution
of a joint pass (tolerance / sum|g_a v_a|)."""
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from cnn_gradcheck import oracles, probes, tolerance
from cnn_gradcheck.compare import FAIL, PASS, Comparison
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Case, Implementation, OpSpec, as_grad_dict

EPS = 2.0**-52
J = tolerance.PROBE_JITTER


def two_argument_relu_spec():
    """y = relu(x) * w: a kink at x = 0 (kink distance min|x|) and a second array w, which the jitter's reach
    (PROBE_JITTER * the largest |a| over every array) must also see."""
    return OpSpec(
        name="relu_times_w", arg_names=("x", "w"), configs=lambda **fixed: st.just({"n": 3}),
        make_arrays=lambda c, rng: {"x": rng.standard_normal(c["n"]), "w": rng.standard_normal(c["n"])},
        output_shape=lambda c: (c["n"],), hyper=lambda c: {},
        torch_forward=lambda x, w: torch.relu(x) * w,
        reference=Implementation("relu times w", lambda x, w: np.maximum(x, 0) * w,
                                 lambda dy, x, w: (dy * w * (x > 0), dy * np.maximum(x, 0))),
        reduction_length=lambda c: 1, description="relu(x) * w",
        kink_distance=lambda c, arrays: float(np.min(np.abs(arrays["x"]))))


def relu_case(x, w=None):
    if w is None:
        return Case("relu", {"N": 1, "K": len(x)}, {"x": np.array([x])}, np.ones((1, len(x))), seed=0)
    return Case("relu_times_w", {"n": len(x)}, {"x": np.array(x), "w": np.array(w)}, np.ones(len(x)), seed=0)


# --- the jittered probe points --------------------------------------------------------------------------------------

def test_the_jitters_reach_is_the_largest_input_over_every_array_and_element():
    """reach = PROBE_JITTER * max over arrays of max|a|, compared with ADJOINT_KINK_SHARE * kink distance: x = 0.5
    and 0.0008 from its kink (reach 1.2e-4 < 2e-4) is jittered; the same x with w = 8 (reach 2e-3) is not, nor is x
    of size 8 whatever the smallest |x|; an input below 1 is taken at its own size (not floored at 1: 2.4e-4)."""
    relu, two = get_spec("relu"), two_argument_relu_spec()
    assert probes._jittered(relu, relu_case([0.5, -0.0008, 0.1]), np.random.default_rng(0)) is not None
    assert probes._jittered(two, relu_case([0.5, -0.0008, 0.1], [0.1, 0.2, 0.3]), np.random.default_rng(0)) \
        is not None
    assert probes._jittered(two, relu_case([0.5, -0.0008, 0.1], [0.1, 8.0, 0.3]), np.random.default_rng(0)) is None
    assert probes._jittered(relu, relu_case([8.0, -0.004, 1.0]), np.random.default_rng(0)) is None


def test_a_jitter_reaching_exactly_a_quarter_of_the_kink_distance_still_moves_the_inputs():
    """reach > ADJOINT_KINK_SHARE * distance refuses, equality does not: 8 * 2^-12 = 2^-9 = 2^-7 / 4 exactly."""
    relu = get_spec("relu")
    at = relu_case([8.0, -2.0**-7, 1.0])
    assert J * 8.0 == tolerance.ADJOINT_KINK_SHARE * 2.0**-7
    assert probes._jittered(relu, at, np.random.default_rng(0)) is not None
    assert probes._jittered(relu, relu_case([8.0, -2.0**-7 * (1 - 1e-12), 1.0]), np.random.default_rng(0)) is None


def test_a_jittered_point_is_each_element_times_1_plus_jitter_times_a_uniform_draw_in_minus_1_1():
    """The documented move, a random relative PROBE_JITTER: a * (1 + PROBE_JITTER u), u uniform on [-1, 1], drawn
    from the probe's generator for each array in order and then for dy; over 200 elements the moves go both ways
    and reach most of the jitter."""
    dense = get_spec("dense")
    rng = np.random.default_rng(7)
    arrays = {"x": rng.standard_normal((10, 10)), "W": rng.standard_normal((10, 10)), "b": rng.standard_normal(10)}
    case = Case("dense", {"N": 10, "m": 10, "n": 10}, arrays, rng.standard_normal((10, 10)), seed=7)
    nearby = probes._jittered(dense, case, np.random.default_rng(42))
    draws = np.random.default_rng(42)
    for n in ("x", "W", "b"):
        expected = arrays[n] * (1 + J * draws.uniform(-1, 1, size=arrays[n].shape))
        assert np.array_equal(nearby.arrays[n], expected), n
    assert np.array_equal(nearby.dy, case.dy * (1 + J * draws.uniform(-1, 1, size=case.dy.shape)))
    relative = np.concatenate([(nearby.arrays[n] / arrays[n] - 1).ravel() for n in arrays])
    assert relative.min() < -J / 2 and relative.max() > J / 2 and np.all(np.abs(relative) <= J * (1 + 1e-9))


# --- no float32 version of the op -----------------------------------------------------------------------------------

def float64_only_spec():
    """y = 2 x in torch, but only in float64 (a float32 tensor raises): no measured noise, no forward error."""
    def forward(x):
        if x.dtype != torch.float64:
            raise TypeError("float64 only")
        return 2 * x
    return OpSpec(
        name="float64_only_double", arg_names=("x",), configs=lambda **fixed: st.just({"n": 3}),
        make_arrays=lambda c, rng: {"x": rng.standard_normal(c["n"])}, output_shape=lambda c: (c["n"],),
        hyper=lambda c: {}, torch_forward=forward,
        reference=Implementation("double", lambda x: 2 * np.asarray(x, dtype=np.float64), lambda dy, x: (2 * dy,)),
        reduction_length=lambda c: 1, description="2 x, float64 only")


def test_an_op_without_a_float32_version_has_no_measured_noise_only_its_floor():
    """Policy 1b needs the float32 probe; without it the measured noise is 0 (not 1 eps32), the floor remains, and
    the float64 realisations of dx (2 c dy rounds exactly: powers of 2) add nothing."""
    spec = float64_only_spec()
    case = spec.make_case({"n": 3}, seed=2)
    estimates = probes.rounding_estimates(spec, case)
    assert estimates["forward"].measured == 0.0 and estimates["dx"].measured == 0.0
    x, dy = case.arrays["x"], case.dy
    assert estimates["forward"].floor == pytest.approx(np.sum(np.abs(2 * dy * x)) / np.sum(np.abs(dy)), rel=1e-14)
    assert probes.forward_error(spec, case) is None
    assert check_case(spec, spec.reference, case, oracles=("pytorch",)).passed


def test_realisations_that_torch_cannot_compute_are_an_empty_list():
    """torch could not compute the op at c dy: no realisations (the other terms of policy 1 remain)."""
    spec = float64_only_spec()
    failing = OpSpec(**{**spec.__dict__, "torch_forward": lambda x: (_ for _ in ()).throw(RuntimeError("no"))})
    case = failing.make_case({"n": 3}, seed=2)
    assert probes._realised_gradients(failing, case, {"x": 2 * case.dy}, 2) == []


# --- the float64 realisations at c dy ---------------------------------------------------------------------------------

def test_two_sum_gives_the_rounded_sum_and_its_exact_remainder():
    """s = fl(a + b) and e = a + b - s exactly, |e| <= eps |s| / 2."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(50) * 3.0, rng.standard_normal(50) * 1e-3
    s, e = probes._two_sum(a, b)
    assert np.array_equal(s, a + b)
    assert np.any(e != 0) and np.all(np.abs(e) <= EPS / 2 * np.abs(s))
    assert all(Fraction(si) + Fraction(ei) == Fraction(ai) + Fraction(bi) for si, ei, ai, bi in zip(s, e, a, b))


def scaled_sum_spec(weights):
    """y = sum_i w_i x_i (one output): dx = dy w, a single rounded product per element, which torch rounds as numpy
    does, so the documented realisation can be computed by hand."""
    w = np.asarray(weights, dtype=np.float64)
    return OpSpec(
        name="weighted_sum", arg_names=("x",), configs=lambda **fixed: st.just({"n": len(w)}),
        make_arrays=lambda c, rng: {"x": rng.standard_normal(c["n"])}, output_shape=lambda c: (),
        hyper=lambda c: {}, torch_forward=lambda x: (x * torch.tensor(w, dtype=x.dtype)).sum(),
        reference=Implementation("weighted sum", lambda x: np.dot(w, x), lambda dy, x: (dy * w,)),
        reduction_length=lambda c: len(w), description="sum w x")


def test_the_float64_realisations_are_the_backwards_rounding_at_3_dy_and_5_dy_over_c():
    """For c = 2^k + 1 (k = 1, 2): ((g(fl(c dy)) - hi) + (g(e) - lo)) / c with fl(c dy) + e = c dy and hi + lo = c g64
    by TwoSum: here dx = fl(dy w), so each realisation is (fl(fl(c dy) w) - hi + fl(e w) - lo) / c, not divided by
    c - 1 or 2^k, nor with the remainder's term subtracted."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(64)
    spec = scaled_sum_spec(w)
    dy = np.array(1.0 / 3.0 + 1e-3)
    case = Case("weighted_sum", {"n": 64}, {"x": rng.standard_normal(64)}, dy, seed=1)
    g64 = {"x": dy * w}
    realised = probes._realised_gradients(spec, case, g64, 2)
    assert len(realised) == 2
    for k, got in zip((1, 2), realised):
        c = 2.0**k + 1
        dy_c, e = probes._two_sum(dy * 2.0**k, dy)
        hi, lo = probes._two_sum(g64["x"] * 2.0**k, g64["x"])
        expected = ((dy_c * w - hi) + (e * w - lo)) / c
        assert e != 0 and np.any(e * w - lo != 0)
        assert np.array_equal(got["x"], expected), k
        assert np.any(got["x"] != 0)


# --- policy 6: the magnitude of a lower-precision plug-in's forward ------------------------------------------------

def test_a_lower_precision_plug_ins_forward_is_sized_by_its_terms_and_a_float64_ones_is_not():
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=3)
    m = probes.low_precision_magnitude(dense, case, SimpleNamespace(dtype="float32"))
    np.testing.assert_array_equal(m, probes.magnitudes(dense, case)["forward"])
    assert probes.low_precision_magnitude(dense, case, SimpleNamespace(dtype="float64")) is None


# --- finite differences: one argument, and the shares of a joint pass ---------------------------------------------

def counted(spec, scale=0.0):
    calls = {"forward": 0}

    def forward(*args, **hyper):
        calls["forward"] += 1
        return spec.reference.forward(*args, **hyper)

    def backward(*args, **hyper):
        return {n: g * (1 + scale) for n, g in as_grad_dict(spec, spec.reference.backward(*args, **hyper)).items()}

    return Implementation("counted", forward, backward), calls


def test_an_op_of_one_argument_is_judged_by_its_one_direction_alone():
    """With one differentiable argument the joint direction is that argument's: its comparison is reported as it
    is (no "joint direction over dx" note, no share resolution), and a wrong gradient is not checked a second time
    along another direction: 1 evaluation + 4 (short stencil) + 8 (D8) forward calls."""
    sigmoid = get_spec("sigmoid")
    case = sigmoid.make_case({"N": 2, "K": 3}, seed=3)
    impl, calls = counted(sigmoid)
    (c,) = [c for c in check_case(sigmoid, impl, case, oracles=("finite differences",)).comparisons]
    assert c.verdict == PASS and c.quantity == "dx" and "joint direction" not in c.note
    assert calls["forward"] == 1 + 4
    wrong, calls = counted(sigmoid, 1e-3)
    (c,) = check_case(sigmoid, wrong, sigmoid.make_case({"N": 2, "K": 3}, seed=3),
                      oracles=("finite differences",)).comparisons
    assert c.verdict == FAIL and c.quantity == "dx"
    assert calls["forward"] == 1 + 4 + 8


def joint_comparison(tolerance_, resolution):
    return Comparison("finite differences", "dx + dW", PASS, 0.0, 0.0, tolerance_, resolution=resolution)


def test_a_joint_pass_resolves_each_argument_at_the_tolerance_over_its_share_sum_g_v():
    """share = sum |g_a v_a| (1*0.5 + 2*0.25 + 3*1 = 4): resolution tolerance / share; where the share is 0 (a zero
    gradient), the joint's own resolution; a share below 1 divides too (0.5: twice the tolerance)."""
    joint = joint_comparison(1e-9, 3e-7)
    g, v = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.25, -1.0])
    assert oracles._share_resolution(joint, g, v) == 1e-9 / 4
    assert oracles._share_resolution(joint, np.zeros(3), v) == 3e-7
    assert oracles._share_resolution(joint, np.array([1.0, 0.0, 0.0]), v) == 1e-9 / 0.5


def test_the_dense_joint_pass_reports_each_arguments_share_resolution():
    """Through the oracle: a passing dense case reports, for each of dx, dW, db, the joint tolerance over
    sum |g_a v_a| along the joint stencil's direction."""
    from cnn_gradcheck import finite_diff
    from cnn_gradcheck.calls import evaluate
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=3)
    evaluation = evaluate(dense, dense.reference, case)
    comparisons = oracles.finite_difference_oracle(dense, dense.reference, case, evaluation)
    assert [c.quantity for c in comparisons] == ["dx", "dW", "db"] and all(c.verdict == PASS for c in comparisons)
    grads = {n: evaluation.grads[n] for n in dense.differentiable}
    stencil = finite_diff.joint_stencil(evaluation, case.arrays, list(grads), case.seed)
    for c, n in zip(comparisons, grads):
        share = np.sum(np.abs(np.asarray(grads[n], dtype=np.float64) * stencil.directions[n]))
        assert c.resolution == pytest.approx(c.tolerance / share, rel=1e-12), n
        assert c.note.startswith("joint direction over dx, dW, db")
