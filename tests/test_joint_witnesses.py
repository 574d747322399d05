"""The witnesses at their cost floor (issue 16): one joint direction over every differentiable argument, the short
stencil first, and one adjoint test over every linear argument with a single backward call, which still catch a
wrong gradient in any one argument."""
import numpy as np
import pytest

from cnn_gradcheck import finite_diff, tolerance
from cnn_gradcheck.adjoint import exact_step, step_for
from cnn_gradcheck.compare import FAIL, NA, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation, as_grad_dict

WITNESSES = ("finite differences", "adjoint")
#: small cases where the joint tests resolve every argument: (op, config)
SMALL = [
    ("dense", {"N": 3, "m": 4, "n": 3}),
    ("conv2d", {"N": 2, "C_in": 1, "C_out": 2, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0,
                "pw": 0, "dilh": 1, "dilw": 1}),
    ("maxpool2d", {"N": 1, "C": 2, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0,
                   "dilh": 1, "dilw": 1}),
    ("softmax_cross_entropy", {"N": 3, "K": 4, "scale": 1.0, "offset": 0.0, "targets": "one-hot"}),
]


def counted(spec, scale_of=None):
    """The op's loop reference with its calls counted (and one gradient scaled by 1 + e, if asked)."""
    calls = {"forward": 0, "backward": 0}

    def forward(*args, **hyper):
        calls["forward"] += 1
        return spec.reference.forward(*args, **hyper)

    def backward(*args, **hyper):
        calls["backward"] += 1
        grads = as_grad_dict(spec, spec.reference.backward(*args, **hyper))
        for name, e in (scale_of or {}).items():
            grads[name] = grads[name] * (1 + e)
        return grads

    return Implementation("counted reference", forward, backward), calls


@pytest.mark.parametrize("op, config", SMALL, ids=[op for op, _ in SMALL])
def test_a_passing_case_costs_the_floor_of_calls(op, config):
    """The evaluation (1 forward + 1 backward), the short stencil at t and 2t (4 forward, shared by the adjoint
    test where the op is (piecewise) linear in every argument) and one backward call for the adjoint test: 5 + 2
    (5 + 1 without linear arguments), whatever the number of arguments; every comparison passes."""
    spec = get_spec(op)
    impl, calls = counted(spec)
    result = check_case(spec, impl, spec.make_case(config, seed=3), oracles=WITNESSES)
    assert result.passed and result.comparisons, result.comparisons
    linear = any(n in spec.linear_args or n in spec.piecewise_linear_args for n in spec.differentiable)
    assert calls == {"forward": 5, "backward": 2 if linear else 1}
    assert all("short stencil" in c.note for c in result.comparisons if c.oracle == "finite differences")


@pytest.mark.parametrize("op, config", SMALL[:2], ids=[op for op, _ in SMALL[:2]])
@pytest.mark.parametrize("argument", [0, 1, 2])
def test_one_linear_gradient_off_by_1e_10_fails_the_adjoint_test(op, config, argument):
    """A joint test cannot let an error in one argument hide behind the others: each argument's pass stands only
    where its share of the inner product resolves ADJOINT_JOINT_ACCEPT; the wrong one is named."""
    spec = get_spec(op)
    name = spec.differentiable[argument]
    impl, _ = counted(spec, {name: 1e-10})
    result = check_case(spec, impl, spec.make_case(config, seed=3), oracles=("adjoint",))
    failed = {c.quantity for c in result.failures}
    assert failed == {f"d{name}"}, result.comparisons


EACH_ARGUMENT = [(op, config, name) for op, config in SMALL for name in get_spec(op).differentiable]


@pytest.mark.parametrize("op, config, name", EACH_ARGUMENT, ids=[f"{op}-d{n}" for op, _, n in EACH_ARGUMENT])
def test_one_gradient_off_by_1e_6_fails_finite_differences(op, config, name):
    """The short stencil's pass needs every argument resolved to FD_SHORT_ACCEPT (5e-7): a 1e-6 error in any one argument
    fails it, and the full stencil, run then, names the argument."""
    spec = get_spec(op)
    impl, _ = counted(spec, {name: 1e-6})
    result = check_case(spec, impl, spec.make_case(config, seed=3), oracles=("finite differences",))
    assert {c.quantity for c in result.failures} == {f"d{name}"}, result.comparisons


def test_a_backward_that_ignores_its_upstream_gradient_fails_the_joint_adjoint_test():
    """A cached pair whose backward returns the gradients of the last forward-backward pass, whatever dy it is
    given: right for the case's own dy, wrong for the adjoint test's v."""
    dense = get_spec("dense")
    case = dense.make_case({"N": 3, "m": 4, "n": 3}, seed=5)
    cache = {}

    def backward(dy, x, W, b):
        if "grads" not in cache:
            cache["grads"] = dense.reference.backward(dy, x, W, b)
        return cache["grads"]

    result = check_case(dense, Implementation("stale backward", dense.reference.forward, backward), case,
                        oracles=("adjoint",))
    assert {c.quantity for c in result.failures} == {"dx", "dW", "db"}


def test_the_exact_step_is_1_for_affine_arguments_and_keeps_piecewise_ones_inside_their_pieces():
    dense, pool, sigmoid = get_spec("dense"), get_spec("maxpool2d"), get_spec("sigmoid")
    case = dense.make_case({"N": 2, "m": 3, "n": 2}, seed=0)
    directions = {n: np.ones_like(a) for n, a in case.arrays.items()}
    assert exact_step(dense, case, directions) == 1.0
    case = pool.make_case(SMALL[2][1], seed=0)
    u = np.ones_like(case.arrays["x"])
    t = exact_step(pool, case, {"x": u})
    assert t == step_for(pool, "x", case, u) / 2 and 2 * t <= tolerance.ADJOINT_PIECEWISE_REACH
    assert exact_step(sigmoid, case, {"x": np.ones(3)}) == 0.0     # smooth: the short stencil's own step


def test_the_short_stencil_is_exact_on_a_cubic_and_judges_its_truncation_from_the_data():
    """phi(t) = 2 t + t^3: D4 is exact (the t^3 term cancels), |D(t) - D4| = t^2 is the estimate, and a claimed
    derivative off by more than the tolerance fails; a tolerance above half the scale decides nothing (n/a)."""
    phi = lambda t: 2 * t + t ** 3  # noqa: E731
    c = finite_diff.short_check(phi, 2.0, 2.0, 0.0, 1e-3, "dx")
    assert c.verdict == PASS and c.expected == pytest.approx(2.0, abs=1e-12)
    assert c.tolerance == pytest.approx(tolerance.fd_tolerance(1e-6, 0.0, finite_diff.D4_NOISE, 1e-3, 2.0),
                                        rel=1e-6)
    assert finite_diff.short_check(phi, 2.0 * (1 + 1e-3), 2.0, 0.0, 1e-3, "dx").verdict == FAIL
    assert finite_diff.short_check(phi, 2.0, 2.0, 0.0, 1.0, "dx").verdict == NA
    assert finite_diff.D4_NOISE == pytest.approx(1.5)


def test_a_short_stencil_that_cannot_resolve_hands_over_to_the_full_one():
    """A pass whose resolution is above FD_SHORT_ACCEPT is not kept: the D8 stencil decides (more calls)."""
    phi_calls = []
    forward = lambda arrays: (phi_calls.append(1), np.exp(3 * arrays["x"]))[1]  # noqa: E731
    x = np.array([1.0])
    y0 = forward({"x": x})
    grad = 3 * np.exp(3 * x)
    c = finite_diff.check_joint(forward, {"x": x}, {"x": grad}, np.ones(1), y0, {"x": np.ones(1)}, 1,
                                quantity="dx", short_step=1e-2)
    assert c.verdict == PASS and "short stencil" not in c.note and len(phi_calls) == 1 + 4 + 8


@pytest.mark.parametrize("op", ["mse", "toolbox_mse"])
def test_a_loss_at_its_exact_minimum_is_no_false_alarm(op):
    """y = t: the loss and its gradient are exactly 0 at the case, but phi = <dy, f> is not 0 at the stencil's
    points, and its rounding there (a D8 estimate of -3.8e-20, found by the soak at seed 3) was judged against a
    tolerance sized by f(a) = 0. Sized by the outputs over the stencil, finite differences cannot resolve a
    derivative of 0 (n/a, said so) and the exact oracle decides; a gradient that is not 0 there still fails."""
    spec = get_spec(op)
    config = {"N": 2, "K": 3, "scale": 1.0, "offset": 0.0, "targets": "one-hot", "values": "y equals t"}
    case = spec.make_case(config, seed=193)
    result = check_case(spec, spec.reference, case)
    (fd,) = [c for c in result.comparisons if c.oracle == "finite differences"]
    assert result.passed and fd.verdict == NA and fd.tolerance > abs(fd.expected), fd
    shifted = Implementation("gradient shifted by 1e-6", spec.reference.forward,
                             lambda dy, *a, **h: tuple(g + 1e-6 for g in spec.reference.backward(dy, *a, **h)))
    assert check_case(spec, shifted, spec.make_case(config, seed=193)).failures
