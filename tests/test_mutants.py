"""Every check can fail: each deliberately wrong implementation is rejected, the report names the wrong quantity,
and Hypothesis shrinks to the smallest configuration that shows the mistake."""
import pytest

from cnn_gradcheck.property import minimal_failure
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.report import failure_report

from mutants import all_mutants

MUTANTS = all_mutants()


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m.op}: {m.name}" for m in MUTANTS])
def test_mutant_is_rejected_with_a_minimal_configuration(mutant):
    spec = get_spec(mutant.op)
    result = minimal_failure(spec, mutant.impl, fixed=mutant.fixed, oracles=mutant.oracles)
    assert result is not None, f"{mutant.name}: no generated case exposed this mistake"
    named = {c.quantity for c in result.failures}
    assert set(mutant.wrong) <= named, f"{mutant.name}: report names {named}, expected {mutant.wrong}"
    if mutant.oracles:  # only the oracles under test spoke ("alternatives" reports under each derivation's label)
        labels = {label for name in mutant.oracles
                  for label in (spec.alternatives if name == "alternatives" else (name,))}
        assert {c.oracle for c in result.failures} <= labels
    config = result.case.config
    off = {k: (config[k], v) for k, v in mutant.minimal.items() if config[k] != v}
    assert not off, f"{mutant.name}: shrunk configuration is not minimal in {off}: {result.case.describe()}"
    report = failure_report(result)
    assert result.case.describe() in report and mutant.op in report
