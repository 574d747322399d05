"""Issue 15, the last false alarm of an exact zero (checks/tolerance.py, policy 1b at float64; docs/rounding.md).

LayerNorm over one element (D = 1) is exactly constant: y = beta, dx = 0 and dgamma = 0 whatever x is. Torch's
float64 dx there is a rounding residue, fl((rstd dy) gamma) - fl((dy gamma) rstd), of about eps |dy gamma| rstd
(rstd = 1/sqrt(eps_ln): 2.8e-14 at eps_ln = 1e-5), zero two times in three. The float32 probe has its own residue,
zero two times in three too and independently, and scaled by eps(float64) / eps(float32) it said nothing: a correct
layer returning exactly 0 was rejected with a tolerance of 2e-22. A gradient is exactly linear in dy, so the float64
gradients at c dy, divided by c, are further realisations of the oracle's own rounding, at its own precision.
These tests pin the cause, the fix, and that a relative error of 1e-6 is still caught where it is visible."""
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, settings, strategies as st

from cnn_gradcheck import probes, tolerance
from cnn_gradcheck.generic import check
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Case, Implementation

import test_generic as user  # the user's numpy layers (tests/ is on sys.path)

EPS64 = tolerance.eps_of("float64")
#: the registered specs with their declared term sizes removed: what a spec author who declares none gets
LAYERNORM = replace(get_spec("layernorm"), magnitudes=None)
BATCHNORM = replace(get_spec("batchnorm2d"), magnitudes=None)
SOFTMAX = get_spec("softmax")                                  # declares none
FEW = settings(max_examples=40, deadline=None, derandomize=True, database=None,
               phases=[Phase.explicit, Phase.generate])


def user_ln_forward(x, gamma, beta, normalized_shape=None, eps=1e-5):
    """A correct numpy LayerNorm over the last axis (test_generic's, in the spec's signature); over one element it
    returns beta and dx = 0 exactly."""
    return user.layernorm_forward(x, gamma, beta, eps)


def user_ln_backward(dy, x, gamma, beta, normalized_shape=None, eps=1e-5):
    return user.layernorm_backward(dy, x, gamma, beta, eps)


USER_LN = Implementation("user's numpy layernorm", user_ln_forward, user_ln_backward)


def off_by(impl: Implementation, index: int, relative: float) -> Implementation:
    def backward(dy, *arrays, **hyper):
        grads = list(impl.backward(dy, *arrays, **hyper))
        grads[index] = np.asarray(grads[index]) * (1 + relative)
        return tuple(grads)
    return Implementation(f"{impl.name}, gradient {index} * (1 + {relative:g})", impl.forward, backward)


def known_case() -> Case:
    """The minimal case the generic check reported (x, gamma, beta of one element, eps 1e-5): torch's dx is
    7.1e-15, the float32 probe's exactly 0."""
    arrays = {"x": np.array([[0.345584192064786]]), "gamma": np.array([0.8216181435011584]),
              "beta": np.array([0.33043707618338714])}
    return Case("layernorm", {"N": 1, "K": 1, "eps": 1e-5, "offset": 0.0}, arrays,
                np.random.default_rng(0).standard_normal((1, 1)), 0)


def residue_size(case: Case) -> float:
    """eps |dy gamma| rstd, the size of torch's residue (var = 0 at D = 1: rstd = 1 / sqrt(eps_ln))."""
    return EPS64 * float(np.max(np.abs(case.dy * case.arrays["gamma"]))) / np.sqrt(case.config["eps"])


# ---- what torch computes, and why the float32 probe missed it ---------------------------------------------------

def test_torch_computes_dx_over_one_element_as_the_residue_of_two_associations():
    case = known_case()
    _, g64 = probes.torch_outputs(LAYERNORM, case)
    _, g32 = probes.torch_outputs(LAYERNORM, case, dtype=torch.float32)
    dy, gamma = case.dy, case.arrays["gamma"]
    rstd = 1 / np.sqrt(0.0 + case.config["eps"])
    assert np.array_equal(g64["x"], (rstd * dy) * gamma - (dy * gamma) * rstd)   # bit for bit
    assert 0 < np.max(np.abs(g64["x"])) <= 2 * residue_size(case)
    assert np.all(g32["x"] == 0)                                  # float32 rounds both associations alike here
    # so the float32 probe alone gave a tolerance far below the residue: the old false alarm
    one = probes.rounding_estimates(LAYERNORM, case, 1)["dx"]
    assert tolerance.rounding_tolerance(g64["x"], 2, estimate=one) < 1e-20


def test_the_float64_realisations_are_of_the_residues_size():
    case = known_case()
    _, g64 = probes.torch_outputs(LAYERNORM, case)
    every = probes.rounding_estimates(LAYERNORM, case)["dx"]
    assert every.measured * EPS64 >= np.max(np.abs(g64["x"]))     # never below torch's own residue here
    assert every.measured * EPS64 <= 4 * residue_size(case)      # and no more than the residue's size
    assert tolerance.realised_noise(np.array([0.0, -4 * EPS64, np.nan])) == 4.0
    assert all(k >= 1 for k in tolerance.PROBE_DY_SHIFTS)     # c = 2^k + 1 is no power of 2 (those round alike)


def test_the_float64_realisations_are_error_free_around_the_backward():
    """c dy and c g64 are split exactly (TwoSum): where the backward itself does not round (ReLU: dy where x > 0)
    the realisations differ from g64 by exactly 0, not by the rounding of c dy or of a division by c."""
    relu = get_spec("relu")
    case = relu.make_case({"N": 3, "K": 4, "offset": 0.0}, 1)
    _, g64 = probes.torch_outputs(relu, case)
    realised = probes._realised_gradients(relu, case, g64, len(tolerance.PROBE_DY_SHIFTS))
    assert len(realised) == len(tolerance.PROBE_DY_SHIFTS)
    assert all(np.all(r["x"] == 0) for r in realised)
    s, e = probes._two_sum(2.0 * case.dy, case.dy)              # fl(3 dy) and its exact remainder
    assert np.any(e != 0)                                         # 3 dy does round here ...
    assert all(Fraction(a) + Fraction(b) == 3 * Fraction(d)       # ... and s + e is 3 dy exactly
               for a, b, d in zip(s.ravel(), e.ravel(), case.dy.ravel()))


# ---- the false alarm is gone ---------------------------------------------------------------------------------------

def test_a_correct_layernorm_over_one_element_passes_against_torch():
    """The user's layer (exactly 0) and the op's loop reference, against torch's residues, without declared term
    sizes: every configuration of one element per row, 15 seeds each."""
    for impl in (USER_LN, LAYERNORM.reference):
        for seed in range(15):
            for n in (1, 2, 3):
                for eps_ln, offset in ((1e-5, 0.0), (1e-5, 10.0), (0.1, 0.0)):
                    case = LAYERNORM.make_case({"N": n, "K": 1, "eps": eps_ln, "offset": offset}, seed)
                    result = check_case(LAYERNORM, impl, case, oracles=("pytorch", "reference"))
                    assert result.passed, [str(c) for c in result.failures]


def test_the_known_case_gets_a_tolerance_of_the_residues_size_not_2e_22():
    result = check_case(LAYERNORM, USER_LN, known_case(), oracles=("pytorch",))
    (dx,) = [c for c in result.comparisons if c.quantity == "dx"]
    assert dx.passed and dx.error == pytest.approx(7.105427357601002e-15, rel=1e-12)
    assert dx.error <= dx.tolerance <= 64 * residue_size(known_case())           # was 2.1e-22


def test_the_generic_check_passes_a_correct_layernorm_over_one_element_against_torch():
    @st.composite
    def one_element(draw):
        n, rng = draw(st.integers(1, 3)), np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return {"x": draw(st.sampled_from((0.0, 10.0))) + rng.standard_normal((n, 1)),
                "gamma": rng.standard_normal(1), "beta": rng.standard_normal(1)}
    report = check(user_ln_forward, user_ln_backward, one_element(), settings=FEW,
                   reference=lambda x, g, b: F.layer_norm(x, x.shape[-1:], g, b, 1e-5))
    assert report.examples >= 40 and {"pytorch", "finite differences"} <= report.oracles_seen


# ---- still tight: a relative 1e-6 is caught wherever it is visible -------------------------------------------------

def _rejected_by(spec, impl, config, seed, quantity):
    result = check_case(spec, impl, spec.make_case(config, seed))
    failed = {c.oracle for c in result.failures if c.quantity == quantity}
    for c in result.comparisons:  # with a margin: x - mu cancels at two elements, dx is 1e-6 small, ratio ~ 170
        if c.oracle == "pytorch" and c.quantity == quantity:
            assert c.tolerance < 0.02 * c.error, str(c)
    return failed


@pytest.mark.parametrize("n", [1, 3])
def test_layernorm_over_one_element_still_rejects_dbeta_off_by_1e_6(n):
    """At D = 1 dx and dgamma are exactly 0 (no relative error can show); dbeta = sum_r dy is not."""
    wrong = off_by(USER_LN, 2, 1e-6)
    for seed in range(3):
        assert {"pytorch", "finite differences"} <= _rejected_by(
            LAYERNORM, wrong, {"N": n, "K": 1, "eps": 1e-5, "offset": 10.0}, seed, "dbeta")


@pytest.mark.parametrize("index, quantity", [(0, "dx"), (1, "dgamma"), (2, "dbeta")])
def test_layernorm_from_two_elements_still_rejects_each_gradient_off_by_1e_6(index, quantity):
    wrong = off_by(USER_LN, index, 1e-6)
    for seed, (k, eps_ln, offset) in enumerate(((2, 1e-5, 0.0), (2, 1e-5, 10.0), (4, 0.1, 10.0))):
        assert "pytorch" in _rejected_by(LAYERNORM, wrong, {"N": 2, "K": k, "eps": eps_ln, "offset": offset},
                                         seed, quantity)


@pytest.mark.parametrize("index, quantity", [(0, "dx"), (1, "dgamma"), (2, "dbeta")])
def test_batchnorm_without_term_sizes_still_rejects_each_gradient_off_by_1e_6(index, quantity):
    """Two elements per channel (the worst cancellation) and more."""
    wrong = off_by(BATCHNORM.reference, index, 1e-6)
    for seed, shape in enumerate(((1, 1, 1, 2), (2, 2, 1, 1), (3, 2, 2, 3))):
        config = {**dict(zip("NCHW", shape)), "eps": 1e-5, "offset": 10.0}
        assert "pytorch" in _rejected_by(BATCHNORM, wrong, config, seed, quantity)


def test_softmax_over_one_class_passes_and_from_two_classes_rejects_dx_off_by_1e_6():
    """Softmax over one class is the constant 1 (dx exactly 0, as torch computes it); from two classes on a
    relative 1e-6 in dx fails against torch."""
    for seed in range(5):
        for offset in (0.0, -800.0):
            case = SOFTMAX.make_case({"N": 2, "K": 1, "offset": offset}, seed)
            assert check_case(SOFTMAX, SOFTMAX.reference, case).passed
            assert "pytorch" in _rejected_by(SOFTMAX, off_by(SOFTMAX.reference, 0, 1e-6),
                                             {"N": 2, "K": 3, "offset": offset}, seed, "dx")
