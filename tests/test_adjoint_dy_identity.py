"""Policy 3b: the joint adjoint test's second identity, <A d, dy> = sum_a <d_a, g_a(dy)>, judged by each side's own
rounding (the forward's realistic noise of <dy, f>, the backward's 1e-12 per argument) instead of Cauchy-Schwarz.
dy is independent of A d, so a bound proportional to |A d| |dy| diluted every share by sqrt(len(y)): a convolution
at 1e5 elements had dx and dw tested alone (4 forward + 2 backward calls more). These tests pin what the change
gives (every share resolved by the joint test at that size, 5 + 2 calls) and that it still catches what the
adjoint test is for: a gradient off by a relative 1e-10."""
import numpy as np
import pytest
import torch

from cnn_gradcheck import tolerance
from cnn_gradcheck.adjoint import check_dy_pair
from cnn_gradcheck.compare import FAIL, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation, forward_terms

CONV = get_spec("conv2d")
#: x has 2 * 3 * 128 * 128 = 98,304 elements, y 65,536: the size where the Cauchy-Schwarz bound gave up
LARGE_CONV = {"N": 2, "C_in": 3, "C_out": 2, "H": 128, "W": 128, "kh": 3, "kw": 3, "sh": 1, "sw": 1, "ph": 1,
              "pw": 1, "dilh": 1, "dilw": 1}
WITNESSES = ("finite differences", "adjoint")


def torch_conv(scale_dw: float = 1.0):
    """conv2d by torch (fast at this size), its backward through autograd, dw scaled by ``scale_dw``; calls
    counted."""
    calls = {"forward": 0, "backward": 0}

    def forward(x, w, b, **hyper):
        calls["forward"] += 1
        with torch.no_grad():
            return CONV.torch_forward(*(torch.from_numpy(a) for a in (x, w, b)), **hyper).numpy()

    def backward(dy, x, w, b, **hyper):
        calls["backward"] += 1
        tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = CONV.torch_forward(*tensors, **hyper)
        dx, dw, db = torch.autograd.grad(y, tensors, torch.from_numpy(np.ascontiguousarray(dy)))
        return dx.numpy(), dw.numpy() * scale_dw, db.numpy()

    return Implementation(f"torch conv2d, dw x {scale_dw!r}", forward, backward), calls


def test_the_dy_identity_settles_every_argument_of_a_convolution_at_1e5_elements():
    impl, calls = torch_conv()
    result = check_case(CONV, impl, CONV.make_case(LARGE_CONV, seed=5), oracles=WITNESSES)
    adjoint = {c.quantity: c for c in result.comparisons if c.oracle == "adjoint"}
    assert set(adjoint) == {"dx", "dw", "db"} and not result.failures
    assert all(c.note.startswith("joint direction") for c in adjoint.values()), adjoint
    assert all(c.resolution <= tolerance.ADJOINT_JOINT_ACCEPT for c in adjoint.values())
    assert calls == {"forward": 1 + 4, "backward": 1 + 1}


def test_a_1e_10_error_in_dw_of_a_large_convolution_fails_the_adjoint_test_and_is_named():
    """Finite differences resolve 1e-8 at best: they pass it. The joint test fails, so each argument is tested
    alone, and the report names dw."""
    impl, _ = torch_conv(1 + 1e-10)
    result = check_case(CONV, impl, CONV.make_case(LARGE_CONV, seed=5), oracles=WITNESSES)
    verdicts = {(c.oracle, c.quantity): c.verdict for c in result.comparisons}
    assert verdicts[("adjoint", "dw")] == FAIL
    assert verdicts[("adjoint", "dx")] == PASS and verdicts[("adjoint", "db")] == PASS
    assert all(verdicts[("finite differences", q)] == PASS for q in ("dx", "dw", "db"))


def test_the_forward_noise_is_sized_by_the_terms_of_one_output():
    """forward_reduction_length: a convolution's output sums C_in kh kw products and the bias, while its bias
    gradient sums N Ho Wo terms (reduction_length, policy 1's K)."""
    assert forward_terms(CONV, LARGE_CONV) == 3 * 3 * 3 + 1
    assert CONV.reduction_length(LARGE_CONV) == 2 * 128 * 128
    dense = get_spec("dense")
    assert forward_terms(dense, {"N": 8, "m": 300, "n": 2}) == 301
    assert forward_terms(get_spec("relu"), {"N": 2, "K": 5}) == get_spec("relu").reduction_length({"N": 2, "K": 5})


def test_policy_3b_adds_the_forwards_noise_of_two_evaluations_and_the_backwards_rounding():
    assert tolerance.adjoint_dy_tolerance(1e-15, 100.0) == tolerance.FD_SAFETY * 2 * 1e-15 + 1e-12 * 100.0
    # at float32 the backward's part keeps the same multiple of eps (policy 6); the noise comes in at its dtype
    assert tolerance.adjoint_dy_tolerance(0.0, 1.0, "float32") == pytest.approx(1e-12 * 2.0**-23 / 2.0**-52)


def test_the_dy_identity_fails_a_discrepancy_above_its_tolerance_and_passes_one_below():
    """<A d, dy> against sum_a <d_a, g_a>, the backward's bound per argument (|d_a| |g_a|, not |d| |g| of the
    concatenation)."""
    Ad, dy = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    d = {"x": np.array([3.0, 0.0]), "b": np.array([0.0])}
    exact = {"x": np.array([1.0, 0.0]), "b": np.array([0.0])}
    tol = tolerance.adjoint_dy_tolerance(0.0, 3.0 * 1.0)
    assert tol == 3e-12
    assert check_dy_pair("dx + db", Ad, dy, d, exact, 0.0).verdict == PASS
    off = {"x": np.array([1.0 + 2e-12, 0.0]), "b": np.array([0.0])}  # rhs off by 6e-12 > 3e-12
    assert check_dy_pair("dx + db", Ad, dy, d, off, 0.0).verdict == FAIL
    near = {"x": np.array([1.0 + 0.5e-12, 0.0]), "b": np.array([0.0])}  # off by 1.5e-12 < 3e-12
    assert check_dy_pair("dx + db", Ad, dy, d, near, 0.0).verdict == PASS


def test_the_dy_identity_passes_a_discrepancy_exactly_at_its_tolerance():
    """err <= tol: d = (1, 1, 1, 1), g = (1, -1, 1, -1): the right side is 0 and the backward's bound
    1e-12 |d| |g| = 4e-12 exactly (no noise); a left side of 4e-12 sits on it and passes."""
    d, g = {"x": np.ones(4)}, {"x": np.array([1.0, -1.0, 1.0, -1.0])}
    assert tolerance.adjoint_dy_tolerance(0.0, 4.0) == 4e-12
    assert check_dy_pair("dx", np.array([4e-12]), np.array([1.0]), d, g, 0.0).verdict == PASS
    assert check_dy_pair("dx", np.array([4.000000000000001e-12]), np.array([1.0]), d, g, 0.0).verdict == FAIL


def test_largest_magnitude_reads_both_signs():
    from cnn_gradcheck.adjoint import _largest
    assert _largest(np.array([-3.0, 1.0])) == 3.0
    assert _largest(np.array([0.25, -0.5])) == 0.5
    assert _largest(np.array([0.25, 0.125])) == 0.25
    assert _largest(np.zeros(0)) == 0.0


# --- the noise each witness reads: computed once per stencil, over the steps it read ------------------------------

def _stencil_noises(oracles, case, impl=None, spec=None):
    from cnn_gradcheck.calls import evaluate
    spec = spec or get_spec("meanpool2d")
    impl = impl or spec.reference
    evaluation = evaluate(spec, impl, case)
    from cnn_gradcheck.oracles import ORACLES
    for name in oracles:
        ORACLES[name](spec, impl, case, evaluation)
    (stencil,) = evaluation.stencils.values()
    return stencil


MEANPOOL_CONFIG = {"N": 1, "C": 2, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0}


def test_the_adjoint_test_alone_sizes_its_noise_by_the_two_steps_it_read():
    """Mean pooling is affine along u: the test reads f(a + t u) and f(a - t u) only (t = 1), and its noise is
    computed over those two steps."""
    spec = get_spec("meanpool2d")
    stencil = _stencil_noises(("adjoint",), spec.make_case(MEANPOOL_CONFIG, seed=3))
    assert set(stencil.noises) == {(frozenset({1.0, -1.0}), "float64")}


def test_the_adjoint_test_after_finite_differences_reads_their_noise_over_more_steps():
    """After the short stencil (t, -t, 2t, -2t) the adjoint test's two steps are a subset: the noise computed over
    the four (a larger size, a longer reach: never narrower) is read, not computed again."""
    spec = get_spec("meanpool2d")
    stencil = _stencil_noises(("finite differences", "adjoint"), spec.make_case(MEANPOOL_CONFIG, seed=3))
    assert set(stencil.noises) == {(frozenset({1.0, -1.0, 2.0, -2.0}), "float64")}


def test_the_full_stencil_after_the_short_one_computes_its_own_noise():
    """A short stencil that does not settle the check hands it to D8 at h = FD_STEP, whose eight steps are no
    subset of the short ones: their noise is computed over them (not read from the short stencil's)."""
    from cnn_gradcheck import finite_diff
    x = np.array([0.3, -0.7, 1.1])
    dy = np.array([1.0, -2.0, 0.5])
    grads = {"x": 3 * x ** 2 * dy}
    stencil = finite_diff.Stencil(lambda arrays: arrays["x"] ** 3, {"x": x}, {"x": np.sign(grads["x"])}, x ** 3)
    wrong = {"x": grads["x"] * (1 + 1e-3)}  # the short stencil disagrees: D8 decides
    c = finite_diff.check_joint(stencil.forward, {"x": x}, wrong, dy, x ** 3, stencil.directions, 1, stencil=stencil,
                                short_step=tolerance.FD_SHORT_STEP)
    h, t = tolerance.FD_STEP, tolerance.FD_SHORT_STEP
    assert c.verdict == FAIL
    assert set(stencil.noises) == {(frozenset(s * k * t for k in (1, 2) for s in (1, -1)), "float64"),
                                   (frozenset(s * k * h for k in (0.5, 1, 2, 4) for s in (1, -1)), "float64")}


def test_a_stencils_noise_is_policy_2_over_its_steps_outputs_and_their_reach():
    """Stencil.noise = output_noise(dy, y0, K, dtype, size = max |f| over y0 and the steps, the measured error,
    input sensitivity at the largest |t|)."""
    from cnn_gradcheck import finite_diff
    x = np.array([0.3, -0.7, 1.1])
    dy = np.array([1.0, -2.0, 0.5])
    grads = {"x": 3 * x ** 2 * dy}
    stencil = finite_diff.Stencil(lambda arrays: arrays["x"] ** 3, {"x": x}, {"x": np.sign(grads["x"])}, x ** 3)
    steps = [0.5, -0.5, 1.0, -1.0]
    error = np.array([1e-9, -2e-9, 0.0])
    noise = stencil.noise(steps, dy, grads, 4, "float64", None, error)
    size = np.max([np.abs(stencil.at(t)) for t in [0.0, *steps]], axis=0)
    assert noise == tolerance.output_noise(dy, x ** 3, 4, "float64", size, error,
                                           finite_diff._input_sensitivity(grads, stencil, 1.0))
    assert stencil.noise([0.5, -0.5], dy, grads, 4, "float64", None, error) == noise  # a subset: read
