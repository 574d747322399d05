"""Resolution is a verdict too (tolerance policy 7): a comparison whose tolerance is too wide to see an error never
counts as agreement about it. Each Comparison records its relative resolution (tolerance / scale) and answers
``could_resolve(discrepancy)`` for a relative discrepancy found by another oracle."""
import numpy as np
import torch

from cnn_gradcheck import tolerance
from cnn_gradcheck.compare import PASS, Comparison, compare_arrays
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation

CONV = get_spec("conv2d")
CONFIG = {"N": 2, "C_in": 2, "C_out": 2, "H": 5, "W": 5, "kh": 3, "kw": 3, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
          "dilh": 1, "dilw": 1}


def conv_with_dw_scaled(dtype, factor=1.001):
    """The reference conv, results stored in ``dtype``, dw ``factor`` times too big."""
    def forward(x, w, b, **hyper):
        return torch.nn.functional.conv2d(*(torch.tensor(a, dtype=dtype) for a in (x, w, b)), **hyper)

    def backward(dy, x, w, b, **hyper):
        dx, dw, db = CONV.reference.backward(dy, x, w, b, **hyper)
        return tuple(torch.tensor(g, dtype=dtype) for g in (dx, dw * factor, db))
    return Implementation(f"conv in {dtype}, dw x {factor}", forward, backward)


def test_the_helper_compares_a_discrepancy_with_the_resolution():
    c = compare_arrays("test", "dx", np.ones(3), np.ones(3), 10)
    assert c.resolution == c.tolerance / 1.0
    assert c.could_resolve(1e-6) and not c.could_resolve(c.resolution / 2)
    assert tolerance.resolves(1e-8, 1e-6) and not tolerance.resolves(1e-3, 1e-6)
    assert Comparison("x", "dx", PASS, 0.0, 0.0, 0.0).could_resolve(1e-30)  # nothing recorded: not second-guessed


def test_a_float32_dw_off_by_1e_3_every_comparison_either_sees_it_or_says_it_cannot():
    """The exact oracles see the 1.001 factor; an oracle that passed dw must answer could_resolve(1e-3) False, so
    that its 'agreement' is never counted as evidence that dw is right."""
    case = CONV.make_case(CONFIG, 0)
    result = check_case(CONV, conv_with_dw_scaled(torch.float32), case)
    dw = [c for c in result.comparisons if c.quantity == "dw"]
    assert {c.oracle for c in result.failures if c.quantity == "dw"} >= {"pytorch"}
    for c in dw:
        assert c.resolution is not None
        if c.verdict == PASS:
            assert not c.could_resolve(1e-3), f"{c.oracle} passed dw yet claims it could see 1e-3: {c}"
        else:
            assert c.could_resolve(1e-3), c


def test_in_float64_every_oracle_resolves_a_1e_6_error():
    case = CONV.make_case(CONFIG, 0)
    result = check_case(CONV, conv_with_dw_scaled(torch.float64, 1 + 1e-6), case)
    dw = [c for c in result.comparisons if c.quantity == "dw"]
    assert {c.oracle for c in dw} >= {"pytorch", "finite differences", "adjoint"}
    assert all(c.could_resolve(1e-6) and c.verdict != PASS for c in dw), [str(c) for c in dw]
