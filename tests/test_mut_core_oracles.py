"""The oracles' rounding inputs (tolerance policy 1a, 1b, 1c) on a constructed dense case, pinned where the mutation
run of checks/oracles.py (docs/mutation.md) found them unpinned: the terms' magnitudes are the op on |inputs| with
|dy|, the forward's floor is sum_i |g_i x_i| / sum |dy|, and the measured noise is the largest of PROBE_SAMPLES
realisations, the further ones at jittered points nearby."""
import numpy as np
import pytest

from cnn_gradcheck import probes, tolerance
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Case

DENSE = get_spec("dense")


def dense_case(seed=3):
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((4, 5)), "W": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
    return Case("dense", {"N": 4, "m": 5, "n": 3}, arrays, rng.standard_normal((4, 3)), seed=seed)


def test_magnitudes_are_the_op_on_absolute_inputs_and_upstream_gradient():
    case = dense_case()
    x, W, b, dy = case.arrays["x"], case.arrays["W"], case.arrays["b"], case.dy
    m = probes.magnitudes(DENSE, case)
    np.testing.assert_allclose(m["forward"], np.abs(x) @ np.abs(W) + np.abs(b), rtol=1e-14)
    np.testing.assert_allclose(m["dx"], np.abs(dy) @ np.abs(W).T, rtol=1e-14)
    np.testing.assert_allclose(m["dW"], np.abs(x).T @ np.abs(dy), rtol=1e-14)
    np.testing.assert_allclose(m["db"], np.abs(dy).sum(axis=0), rtol=1e-14)


def test_the_forwards_floor_is_the_inputs_rounding_carried_through_the_op():
    case = dense_case()
    x, W, b, dy = case.arrays["x"], case.arrays["W"], case.arrays["b"], case.dy
    dx, dW, db = dy @ W.T, x.T @ dy, dy.sum(axis=0)
    floor = (np.sum(np.abs(dx * x)) + np.sum(np.abs(dW * W)) + np.sum(np.abs(db * b))) / np.sum(np.abs(dy))
    estimates = probes.rounding_estimates(DENSE, case)
    assert estimates["forward"].floor == pytest.approx(floor, rel=1e-12)
    assert all(estimates[q].floor == 0.0 for q in ("dx", "dW", "db"))       # gradients: measured noise only


def test_the_measured_noise_is_the_largest_of_probe_samples_realisations():
    case = dense_case()
    one = probes.rounding_estimates(DENSE, case, 1)
    every = probes.rounding_estimates(DENSE, dense_case(), tolerance.PROBE_SAMPLES)
    default = probes.rounding_estimates(DENSE, dense_case())
    assert set(one) == set(every) == {"forward", "dx", "dW", "db"}
    assert all(default[q] == every[q] for q in every)                      # the default is PROBE_SAMPLES
    assert all(every[q].measured >= one[q].measured > 0 for q in every)
    assert any(every[q].measured > one[q].measured for q in every)         # the jittered points count
    # the further realisations are nearby: their noise is of the same size, not of inputs shrunk or blown up
    assert all(every[q].measured < 20 * one[q].measured for q in every)


def test_a_jittered_case_moves_every_input_and_dy_by_at_most_probe_jitter_relative():
    case = dense_case()
    nearby = probes._jittered(DENSE, case, np.random.default_rng(0))
    assert nearby is not None and nearby.config == case.config and nearby.seed == case.seed
    for n, a in case.arrays.items():
        moved = nearby.arrays[n]
        assert not np.array_equal(moved, a)
        assert np.all(np.abs(moved - a) <= tolerance.PROBE_JITTER * np.abs(a) * (1 + 1e-12))
    assert np.all(np.abs(nearby.dy - case.dy) <= tolerance.PROBE_JITTER * np.abs(case.dy) * (1 + 1e-12))


def test_forward_error_is_the_float32_forward_minus_the_float64_forward():
    """Policy 2's measured noise of <dy, f>: y32 - y64 of the torch op with its inputs stored in float32."""
    import torch
    case = dense_case()
    x, W, b = (torch.tensor(case.arrays[n], dtype=torch.float32) for n in ("x", "W", "b"))
    y32 = (x @ W + b).to(torch.float64).numpy()
    y64 = case.arrays["x"] @ case.arrays["W"] + case.arrays["b"]
    error = probes.forward_error(DENSE, case)
    assert error is not None and np.max(np.abs(error)) > 0
    np.testing.assert_allclose(error, y32 - y64, rtol=0, atol=1e-12)


def test_forward_error_reads_the_pytorch_oracles_float64_forward_where_it_ran():
    """Where the pytorch oracle computed the float64 torch forward already (``probes.torch_reference``), the probe
    reads it: one torch forward call (the float32 one) instead of two, and the same error vector."""
    from dataclasses import replace
    calls = []

    def counted(x, W, b):
        calls.append(x.dtype)
        return DENSE.torch_forward(x, W, b)

    spec = replace(DENSE, torch_forward=counted)
    fresh = probes.forward_error(spec, dense_case())
    assert len(calls) == 2
    case = dense_case()
    probes.torch_reference(spec, case)
    calls.clear()
    error = probes.forward_error(spec, case)
    assert [str(d) for d in calls] == ["torch.float32"]
    assert error is not None and np.array_equal(error, fresh)


def test_forward_error_takes_read_only_and_reversed_arrays():
    """The probe shares the inputs' memory where torch allows (writable, no negative stride) and copies them
    otherwise: the same error vector either way, never None (a reversed view gave None, and the torch oracle an
    error, before)."""
    case = dense_case()
    plain = probes.forward_error(DENSE, dense_case())
    read_only = {n: a.copy() for n, a in case.arrays.items()}
    for a in read_only.values():
        a.flags.writeable = False
    reversed_ = {n: np.ascontiguousarray(a[::-1])[::-1] for n, a in case.arrays.items()}  # same values
    assert any(s < 0 for s in reversed_["x"].strides)
    for arrays in (read_only, reversed_):
        other = Case(case.op, case.config, arrays, case.dy, case.seed)
        error = probes.forward_error(DENSE, other)
        assert error is not None and np.array_equal(error, plain)
        y, grads = probes.torch_outputs(DENSE, other)  # the pytorch oracle's torch run takes them too
        assert np.array_equal(y, probes.torch_outputs(DENSE, case)[0])


def test_a_comparison_that_fails_with_one_probe_realisation_is_judged_with_all_of_them():
    """The exact oracles draw one probe realisation first and all PROBE_SAMPLES only for a comparison that would
    fail with one (more can only widen a tolerance). Constructed so that the two differ: y = (x + 2^27) - 2^27,
    whose float32 probe is exact at inputs that are multiples of 16 (the case: 2^27 + x is a float32 there) and
    rounds the jittered points nearby back to the case, an error of the whole jitter (up to 2^-12 |x|). An
    implementation off by 1e-13 relative lies above the one-realisation tolerance (the arithmetic and the inputs'
    rounding: 8 eps |x| ~ 2e-15 |x|) and below the jittered realisations' (16 eps 2^-12 |x| / eps32 ~ 1e-11 |x|):
    it passes, judged by all three."""
    import torch
    from cnn_gradcheck.compare import FAIL, PASS
    from cnn_gradcheck.runner import check_case
    from cnn_gradcheck.spec import Implementation, OpSpec
    from hypothesis import strategies as st

    big = 2.0 ** 27
    spec = OpSpec(
        name="shifted_identity", arg_names=("x",), configs=lambda **fixed: st.just({"n": 3}),
        make_arrays=lambda c, rng: {"x": 16.0 * rng.integers(1, 5, size=c["n"])},
        output_shape=lambda c: (c["n"],), hyper=lambda c: {},
        torch_forward=lambda x: (x + big) - big,
        reference=Implementation("identity", lambda x: np.array(x, dtype=np.float64), lambda dy, x: (dy,)),
        reduction_length=lambda c: 1, description="the identity, computed through a large shift")
    case = spec.make_case({"n": 3}, seed=1)
    assert np.all(case.arrays["x"] % 16 == 0)
    one = probes.rounding_estimates(spec, case, 1)["forward"]
    every = probes.rounding_estimates(spec, case)["forward"]
    assert one.measured == 0.0 and every.measured > 0.0                    # the case rounds exactly, nearby not
    off = Implementation("identity off by 1e-13", lambda x: np.asarray(x, dtype=np.float64) * (1 + 1e-13),
                         lambda dy, x: (dy,))
    (forward,) = [c for c in check_case(spec, off, case, oracles=("pytorch",)).comparisons
                  if c.quantity == "forward"]
    assert forward.verdict == PASS, forward
    one_tolerance = tolerance.rounding_tolerance(case.arrays["x"], 1, "float64", None, one)
    assert forward.error > one_tolerance                                   # one realisation alone would fail it
    far_off = Implementation("identity off by 1e-6", lambda x: np.asarray(x, dtype=np.float64) * (1 + 1e-6),
                             lambda dy, x: (dy,))
    assert [c.verdict for c in check_case(spec, far_off, case, oracles=("pytorch",)).comparisons
            if c.quantity == "forward"] == [FAIL]
