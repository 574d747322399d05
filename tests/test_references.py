"""Every reference passes every oracle on generated configurations (the property suite, run on the references)."""
import pytest

from checks.property import check_op
from checks.registry import all_specs

SPECS = all_specs()


@pytest.mark.parametrize("op", sorted(SPECS))
def test_reference_passes_every_oracle(op):
    spec = SPECS[op]
    seen = []
    check_op(spec, spec.reference, on_case=seen.append)
    assert seen and all(r.passed for r in seen)
    oracles = {c.oracle for r in seen for c in r.comparisons}
    assert {"pytorch", "finite differences"} <= oracles
