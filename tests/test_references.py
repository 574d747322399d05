"""Every reference passes every oracle on generated configurations (the property suite, run on the references),
and every oracle the spec makes applicable actually judged it."""
import pytest

from cnn_gradcheck.compare import PASS
from cnn_gradcheck.property import check_op
from cnn_gradcheck.registry import all_specs

SPECS = all_specs()


def expected_oracles(spec) -> set[str]:
    """pytorch and finite differences always; the adjoint test where an argument enters (piecewise) linearly; each
    alternative derivation the spec declares (the reference oracle compares with itself, so it never runs here); the
    subgradient check where the op declares kinks fed on purpose."""
    expected = {"pytorch", "finite differences", *spec.alternatives}
    if spec.linear_args or spec.piecewise_linear_args:
        expected.add("adjoint")
    if spec.kink_values:  # ties and exact kinks fed on purpose (an explicit example in every run)
        expected.add("subgradient")
    return expected


@pytest.mark.parametrize("op", sorted(SPECS))
def test_reference_passes_every_oracle(op):
    spec = SPECS[op]
    seen = []
    check_op(spec, spec.reference, on_case=seen.append)  # raises the shrunk failure's report on any disagreement
    judged = {c.oracle for r in seen for c in r.comparisons if c.verdict == PASS}
    assert judged == expected_oracles(spec), f"{op}: oracles that judged {sorted(judged)}"
