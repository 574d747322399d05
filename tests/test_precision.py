"""Tolerance policy 7: where the arithmetic cannot give a verdict, the harness says so instead of passing.

A float16/bfloat16 result carries rounding of ~1e-3/1e-2 per operation: finite differences of such a forward
(rounding amplified by 1/h) and the adjoint test cannot resolve anything and report themselves not applicable, while
the exact oracles (pytorch, reference) still judge, and fail with "no verdict possible" when sums are so long that
their own bound would accept a zero, negated or doubled result."""
import numpy as np
import torch

from cnn_gradcheck.compare import FAIL, NA, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.report import failure_report
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation

SIGMOID = get_spec("sigmoid")
RELU = get_spec("relu")
CONV = get_spec("conv2d")


def in_float16(spec, negate=False):
    """The reference, with results rounded to float16 (and dx negated if asked)."""
    def forward(*arrays, **hyper):
        return np.asarray(spec.reference.forward(*arrays, **hyper)).astype(np.float16)

    def backward(dy, *arrays, **hyper):
        return tuple((-1 if negate else 1) * np.asarray(g).astype(np.float16)
                     for g in spec.reference.backward(dy, *arrays, **hyper))
    return Implementation(f"{spec.name} in float16{' (dx negated)' if negate else ''}", forward, backward)


def verdicts(result, oracle):
    return {c.verdict for c in result.comparisons if c.oracle == oracle}


def test_float16_results_are_judged_by_the_exact_oracles_and_finite_differences_step_aside():
    case = SIGMOID.make_case({"N": 2, "K": 3, "offset": 0.0}, seed=1)
    result = check_case(SIGMOID, in_float16(SIGMOID), case)
    assert result.passed
    assert verdicts(result, "pytorch") == {PASS} and verdicts(result, "reference") == {PASS}
    assert verdicts(result, "finite differences") == {NA}
    assert "not applicable: finite differences (dx): not applicable: at float16" in failure_report(result)


def test_a_wrong_float16_gradient_is_still_caught():
    case = SIGMOID.make_case({"N": 2, "K": 3, "offset": 0.0}, seed=1)
    result = check_case(SIGMOID, in_float16(SIGMOID, negate=True), case)
    assert {c.quantity for c in result.failures} == {"dx"}
    assert {c.oracle for c in result.failures} == {"pytorch", "reference"}


def test_the_adjoint_test_is_not_applicable_in_float16():
    case = RELU.make_case({"N": 1, "K": 4, "offset": 0.0}, seed=2)
    result = check_case(RELU, in_float16(RELU), case)
    (adjoint,) = [c for c in result.comparisons if c.oracle == "adjoint"]
    assert adjoint.verdict == NA and "Cauchy-Schwarz" in adjoint.note


def test_long_sums_in_bfloat16_get_no_verdict_rather_than_a_pass():
    """K = C_in kh kw + 1 = 49 terms in bfloat16 (eps 7.8e-3): the rounding bound exceeds the values themselves,
    so even a negated gradient would fit it; the exact oracles fail with 'no verdict possible'."""
    def forward(x, w, b, **hyper):
        return torch.nn.functional.conv2d(*(torch.tensor(a).to(torch.bfloat16) for a in (x, w, b)), **hyper)

    def backward(dy, x, w, b, **hyper):
        return tuple(-torch.tensor(g).to(torch.bfloat16) for g in CONV.reference.backward(dy, x, w, b, **hyper))

    config = {"N": 1, "C_in": 3, "C_out": 1, "H": 4, "W": 4, "kh": 4, "kw": 4, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
              "dilh": 1, "dilw": 1}
    result = check_case(CONV, Implementation("conv in bfloat16, gradients negated", forward, backward),
                        CONV.make_case(config, seed=0))
    assert not result.passed
    coarse = [c for c in result.failures if "no verdict possible at bfloat16" in c.note]
    assert coarse and {c.oracle for c in coarse} >= {"pytorch", "reference"}
    assert all(c.verdict != PASS for c in result.comparisons if c.oracle in ("finite differences", "adjoint"))
    assert FAIL in verdicts(result, "pytorch")
