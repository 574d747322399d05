"""The joint adjoint test and the per-argument n/a path (checks/adjoint.py's docstring) pinned where the complete
mutation run of adjoint.py (2026-11-30, after the joint witnesses; docs/mutation.md) found them unpinned: the calls
a case costs where the docs promise a count, the exactness checks (second difference, odd parts at t and 2t) at
their bounds on constructed forwards, and the n/a comparison of an argument whose step its dtype cannot resolve."""
import re

import numpy as np
import pytest

from cnn_gradcheck import tolerance
from cnn_gradcheck.adjoint import exact_step
from cnn_gradcheck.compare import NA, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Case, Implementation, as_grad_dict

DENSE, MEANPOOL, CONV = get_spec("dense"), get_spec("meanpool2d"), get_spec("conv2d")
POOL_CONFIG = {"N": 1, "C": 2, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0, "dilh": 1,
               "dilw": 1}
CONV_CONFIG = {"N": 2, "C_in": 1, "C_out": 2, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
               "dilh": 1, "dilw": 1}
DENSE_CONFIG = {"N": 3, "m": 4, "n": 3}
JOINT = "joint direction"


def counted(spec, forward=None, backward=None, dtype=None):
    """An implementation (the op's reference unless given, results cast to ``dtype`` if asked) with its calls
    counted."""
    calls = {"forward": 0, "backward": 0}
    forward = forward or spec.reference.forward
    backward = backward or spec.reference.backward

    def cast(a):
        return np.asarray(a).astype(dtype) if dtype else a

    def f(*args, **hyper):
        calls["forward"] += 1
        return cast(forward(*args, **hyper))

    def b(*args, **hyper):
        calls["backward"] += 1
        return tuple(cast(g) for g in as_grad_dict(spec, backward(*args, **hyper)).values())

    return Implementation("counted", f, b), calls


def adjoint_only(spec, impl, case):
    return {c.quantity: c for c in check_case(spec, impl, case, oracles=("adjoint",)).comparisons}


# --- the cost the docs promise ------------------------------------------------------------------------------------

def test_meanpool_linear_in_x_alone_costs_one_plus_two_forward_and_one_plus_one_backward_calls():
    """Affine along u: the second difference vanishes, so the odd parts at 2t are never computed; the joint test
    settles dx (the evaluation's 1 + 1 calls, then 2 forward calls and 1 backward call)."""
    impl, calls = counted(MEANPOOL)
    result = adjoint_only(MEANPOOL, impl, MEANPOOL.make_case(POOL_CONFIG, seed=3))
    assert result["dx"].verdict == PASS and result["dx"].note.startswith(JOINT)
    assert calls == {"forward": 1 + 2, "backward": 1 + 1}


@pytest.mark.parametrize("spec, config", [(CONV, CONV_CONFIG), (DENSE, DENSE_CONFIG)], ids=["conv2d", "dense"])
def test_a_bilinear_forward_adds_the_odd_parts_at_2t_and_still_settles_every_argument_jointly(spec, config):
    """x * w + b has a second difference along the joint u, so the odd parts at 2t are computed (2 more forward
    calls: 1 + 4 in all); they agree (degree 2 in t), and every argument resolves: 2 backward calls in all."""
    impl, calls = counted(spec)
    result = adjoint_only(spec, impl, spec.make_case(config, seed=3))
    assert all(c.verdict == PASS and c.note.startswith(JOINT) for c in result.values()), result
    assert len(result) == 3 and calls == {"forward": 1 + 4, "backward": 2}


def test_exact_step_is_0_where_one_moved_argument_is_smooth_and_1_where_all_are_affine():
    """The smallest of the moved arguments' steps: batch norm is affine in gamma and beta (1 each) but smooth in x
    (0.0), so a joint direction over all three has no exact step."""
    bn = get_spec("batchnorm2d")
    case = bn.make_case({"N": 2, "C": 2, "H": 2, "W": 2, "eps": 1e-5, "offset": 0.0}, seed=0)
    directions = {n: np.ones_like(a) for n, a in case.arrays.items()}
    assert exact_step(bn, case, directions) == 0.0
    assert exact_step(bn, case, {n: directions[n] for n in ("gamma", "beta")}) == 1.0


def test_an_argument_the_joint_test_gives_no_share_is_tested_alone():
    """x = 0: dW = x^T dy is 0 for every upstream gradient, so W's share of the joint inner product is 0 and its
    resolution infinite: W is tested alone (one more backward call), x and b keep the joint verdict."""
    made = DENSE.make_case(DENSE_CONFIG, seed=3)
    case = Case("dense", DENSE_CONFIG, {**made.arrays, "x": np.zeros_like(made.arrays["x"])}, made.dy, seed=3)
    impl, calls = counted(DENSE)
    result = adjoint_only(DENSE, impl, case)
    assert all(c.verdict == PASS for c in result.values()), result
    assert result["dx"].note.startswith(JOINT) and result["db"].note.startswith(JOINT)
    assert not result["dW"].note.startswith(JOINT)
    assert calls["backward"] == 1 + 1 + 1


# --- policy 3 at float32: a step the dtype cannot resolve -----------------------------------------------------------

RESOLVABLE = 1e-12 / 2.0**-52     # |a|_inf / (t |u|_inf) above this: the stored a +- t u does not move as assumed


def scaled(case, sizes):
    """The case with the named arrays scaled to the given |a|_inf."""
    arrays = {n: a * (sizes[n] / np.max(np.abs(a))) if n in sizes else a for n, a in case.arrays.items()}
    return Case(case.op, case.config, arrays, case.dy, seed=case.seed)


NOTE = re.compile(r"not applicable: the step t \|u\| = (\S+) is below float32's resolution of inputs of size (\S+) "
                  r"\(the stored a \+- t u would not move as the test assumes\); the exact oracles decide")


def test_a_float32_dense_layer_at_4500_gets_na_adjoint_comparisons_and_costs_no_adjoint_calls():
    """|a|_inf = 4500 in every argument: t = 1 and |u|_inf < 1 (magnitudes in [0.5, 1]), so |a| / (t |u|) is
    above 4503.6 for the per-argument u and the smaller, balanced joint one. The joint test stops before its
    forward calls, and each argument gets an n/a comparison that measured nothing, with the documented note
    naming the step and |a|_inf: only the evaluation's 1 + 1 calls."""
    case = scaled(DENSE.make_case(DENSE_CONFIG, seed=3), {"x": 4500.0, "W": 4500.0, "b": 4500.0})
    impl, calls = counted(DENSE, dtype="float32")
    result = adjoint_only(DENSE, impl, case)
    assert set(result) == {"dx", "dW", "db"}
    for c in result.values():
        assert c.verdict == NA and (c.error, c.relative, c.tolerance) == (0.0, 0.0, 0.0)
        step, size = (float(s) for s in NOTE.fullmatch(c.note).groups())
        assert 0.5 <= step < 1.0 and size == 4.5e3 and size / step > RESOLVABLE
    assert calls == {"forward": 1, "backward": 1}


def test_a_float32_dense_layer_at_4000_is_resolved_and_each_argument_is_tested_alone():
    """x at 4000: 4000 / (t |u|_inf) is below 4503.6 for the per-argument direction (|u|_inf near 1 on 12 elements),
    so dx gets a verdict; the joint direction, balanced smaller, is not resolved (no joint calls), and each argument
    costs 2 forward calls and 1 backward call."""
    case = scaled(DENSE.make_case(DENSE_CONFIG, seed=3), {"x": 4000.0})
    impl, calls = counted(DENSE, dtype="float32")
    result = adjoint_only(DENSE, impl, case)
    assert all(c.verdict == PASS and not c.note.startswith(JOINT) for c in result.values()), result
    assert calls == {"forward": 1 + 3 * 2, "backward": 1 + 3}


RELU = get_spec("relu")
RELU_CONFIG = {"N": 1, "K": 4, "offset": 0.0}


def relu_case(x):
    made = RELU.make_case(RELU_CONFIG, seed=2)
    return Case("relu", RELU_CONFIG, {"x": np.array([x])}, made.dy, seed=2)


def test_a_float32_relu_with_inputs_below_1_is_judged_at_their_own_size():
    """|x|_inf = 0.2 and 4e-4 from the kink: t = 2^-14 (t |u| within a quarter of the kink distance, 1e-4, and
    above half of it), and 0.2 / 1e-4 = 2000 is below 4503.6: the per-argument test resolves (a scale floored at 1
    would not: 1 / 1e-4 = 10^4). The joint test's half step does not resolve (no joint calls): 1 + 2 forward,
    1 + 1 backward."""
    impl, calls = counted(RELU, dtype="float32")
    result = adjoint_only(RELU, impl, relu_case([0.2, -0.05, 4e-4, -0.1]))
    assert result["dx"].verdict == PASS and "t = 6.10352e-05" in result["dx"].note
    assert calls == {"forward": 1 + 2, "backward": 1 + 1}


def test_a_float32_relu_whose_joint_step_resolves_runs_the_joint_test_first():
    """|x|_inf = 0.3 and 1e-3 from the kink: the joint half step (at most 1.25e-4) resolves inputs of size 0.3 here
    (never inputs of size 1: 1 / 1.25e-4 = 8000 is above 4503.6), so the joint test runs (2 forward calls, 1
    backward call); at float32 its resolution is far above ADJOINT_JOINT_ACCEPT, so dx is tested alone as well:
    1 + 2 + 2 forward, 1 + 1 + 1 backward."""
    impl, calls = counted(RELU, dtype="float32")
    result = adjoint_only(RELU, impl, relu_case([0.3, -0.05, 1e-3, -0.1]))
    assert result["dx"].verdict == PASS and not result["dx"].note.startswith(JOINT)
    assert calls == {"forward": 1 + 2 + 2, "backward": 1 + 1 + 1}


# --- the exactness checks at their bounds: constructed forwards ---------------------------------------------------

def curved(spec, case, c2, c3=0.0):
    """The op's reference plus c2 f((x - x0)^2) + c3 f((x - x0)^3), x0 the case's x: the same gradient at the
    case (the added terms are flat there), a second difference of 2 c2 t^2 f(u^2) along u and an odd part of
    2 c3 t^3 f(u^3), counted."""
    ref, x0 = spec.reference.forward, case.arrays["x"]

    def forward(x, **hyper):
        e = x - x0
        return ref(x, **hyper) + c2 * ref(e * e, **hyper) + c3 * ref(e * e * e, **hyper)

    return counted(spec, forward=forward)


#: on this mean-pool case c2 = 6.02e-6 puts the relative second difference <f(a+) + f(a-) - 2 f(a), v> / (|A d| |v|)
#: at AFFINE_SECOND_DIFFERENCE = 1e-6; with c2 = 1e-3, c3 = 2.65e-7 puts the odd part's at it
C2_AT_BOUND, C3_AT_BOUND = 6.02e-6, 2.65e-7


def pool_case():
    return MEANPOOL.make_case(POOL_CONFIG, seed=3)


def test_a_second_difference_just_below_the_bound_is_affine_and_needs_no_odd_parts():
    """Relative second difference 0.9e-6: affine along u as far as the bound can tell, so no odd parts at 2t: the
    1 + 2 forward calls of the linear case, and the joint verdict."""
    impl, calls = curved(MEANPOOL, pool_case(), 0.9 * C2_AT_BOUND)
    result = adjoint_only(MEANPOOL, impl, pool_case())
    assert result["dx"].verdict == PASS and result["dx"].note.startswith(JOINT)
    assert calls == {"forward": 1 + 2, "backward": 1 + 1}


def test_a_second_difference_just_above_the_bound_computes_the_odd_parts_which_agree_for_degree_2():
    """Relative second difference 1.1e-6: the odd parts at 2t are computed (2 more forward calls); a quadratic
    term has none, so the joint verdict stands."""
    impl, calls = curved(MEANPOOL, pool_case(), 1.1 * C2_AT_BOUND)
    result = adjoint_only(MEANPOOL, impl, pool_case())
    assert result["dx"].verdict == PASS and result["dx"].note.startswith(JOINT)
    assert calls == {"forward": 1 + 4, "backward": 1 + 1}


def test_odd_parts_just_above_the_bound_stop_the_joint_test_before_its_backward_call():
    """A cubic term (relative odd part 1.1e-6) beside a quadratic one: the symmetric difference is not exact, the
    joint test stops before its backward call, and x tested alone is not affine as declared: 1 + 4 + 2 forward,
    1 + 1 backward."""
    impl, calls = curved(MEANPOOL, pool_case(), 1e-3, 1.1 * C3_AT_BOUND)
    result = adjoint_only(MEANPOOL, impl, pool_case())
    assert result["dx"].verdict == "fail" and "not affine in x as the spec declares" in result["dx"].note
    assert calls == {"forward": 1 + 4 + 2, "backward": 1 + 1}


def test_odd_parts_just_below_the_bound_reach_the_joint_backward_call_whose_test_then_fails():
    """Relative odd part 0.9e-6: the symmetric difference counts as exact, the joint backward call is made (one
    more), and its dot-product test (bound 1e-12) sees the cubic term: x is tested alone as above."""
    impl, calls = curved(MEANPOOL, pool_case(), 1e-3, 0.9 * C3_AT_BOUND)
    result = adjoint_only(MEANPOOL, impl, pool_case())
    assert result["dx"].verdict == "fail" and "not affine in x as the spec declares" in result["dx"].note
    assert calls == {"forward": 1 + 4 + 2, "backward": 1 + 1 + 1}


def test_a_piecewise_linear_forward_with_a_quadratic_term_is_settled_by_the_odd_parts_at_2t():
    """Max pooling (t = 2^-11) plus 100 (x - x0)^2: the second difference is far above the bound, the odd parts at
    +-2t (still inside the pieces) agree, and the joint verdict stands: 1 + 4 forward, 1 + 1 backward."""
    maxpool = get_spec("maxpool2d")
    case = maxpool.make_case(POOL_CONFIG, seed=3)
    impl, calls = curved(maxpool, case, 100.0)
    result = adjoint_only(maxpool, impl, case)
    assert result["dx"].verdict == PASS and result["dx"].note.startswith(JOINT)
    assert "t = 0.000488281" in result["dx"].note
    assert calls == {"forward": 1 + 4, "backward": 1 + 1}


# --- which upstream gradient settles an argument ----------------------------------------------------------------

def test_each_argument_takes_the_finer_of_its_two_shares():
    """An argument's joint pass stands where its share resolves ADJOINT_JOINT_ACCEPT for one of the two upstream
    gradients (v and the case's dy), the finer one. On this dense case (seed 2) every argument resolves with one of
    them (x and W at 4.8e-12 with dy, b at 2.8e-12 with v): 2 backward calls in all; with b scaled by 300 (the
    forward's rounding then grows with |y|, policy 3b), dy resolves every share at 5.5e-11, above 5e-11, and b still
    resolves at 2.8e-12 with v, its finer share, while x and W are tested alone."""
    impl, calls = counted(DENSE)
    result = adjoint_only(DENSE, impl, DENSE.make_case(DENSE_CONFIG, seed=2))
    assert all(c.verdict == PASS and c.note.startswith(JOINT) for c in result.values()), result
    assert all(c.resolution <= tolerance.ADJOINT_JOINT_ACCEPT for c in result.values())
    assert calls == {"forward": 1 + 4, "backward": 1 + 1}
    made = DENSE.make_case(DENSE_CONFIG, seed=2)
    impl, calls = counted(DENSE)
    result = adjoint_only(DENSE, impl, Case("dense", DENSE_CONFIG, {**made.arrays, "b": made.arrays["b"] * 300},
                                            made.dy, seed=2))
    assert result["db"].note.startswith(JOINT) and result["db"].resolution == pytest.approx(2.77e-12, rel=1e-2)
    assert not result["dx"].note.startswith(JOINT) and not result["dW"].note.startswith(JOINT)
    assert calls["backward"] == 1 + 1 + 2
