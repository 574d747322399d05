"""The errata: every printed formula of the seeds gets a verdict, the wrong ones a minimal counterexample and a
correction, and the section lists them all."""
import pytest

from dataclasses import replace

from cnn_gradcheck.errata import (CONFIRMED, PRINTED, WRONG, ErratumResult, check_printed, format_errata,
                           printed_implementation, unexpected)
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case

#: the formulas that are wrong as printed (the rest must be confirmed)
WRONG_AS_PRINTED = {
    "conv dE/dw, bounds M-2(m/2)",
    "conv dE/db, first line",
    "conv dE/db, m in the j bound even with exact halving",
    "conv dE/dx, zero only for i-s < 0",
    "max pooling backward at ties",
    "ReLU backward",
    "softmax dy_i/dx_j, intermediate step",
    "dense dE/dy, expanded row",
    "conv dE/dw, cross-correlation",
}

#: a few examples: enough to find each printed mistake (the search is derandomized) and to keep the suite fast
EXAMPLES = 10


@pytest.fixture(scope="module")
def results():
    return {f.name: check_printed(f, EXAMPLES) for f in PRINTED}


def test_names_are_unique_and_cover_the_expected_errata():
    names = [f.name for f in PRINTED]
    assert len(names) == len(set(names))
    assert WRONG_AS_PRINTED <= set(names)
    assert {f.name for f in PRINTED if f.expected == WRONG} == WRONG_AS_PRINTED   # the recorded verdicts


def test_each_printed_formula_gets_the_right_verdict(results):
    verdicts = {name: r.verdict for name, r in results.items()}
    assert {n for n, v in verdicts.items() if v == WRONG} == WRONG_AS_PRINTED
    assert all(v == CONFIRMED for n, v in verdicts.items() if n not in WRONG_AS_PRINTED)


def test_wrong_formulas_come_with_counterexample_explanation_and_correction(results):
    for name in WRONG_AS_PRINTED:
        r = results[name]
        assert r.counterexample, name
        assert r.details, f"{name}: no explanation of the failure"
        assert r.formula.correction, f"{name}: no corrected formula"


def test_counterexamples_are_minimal_and_name_the_mistake(results):
    stride = results["conv dE/dw, cross-correlation"]
    assert "sh=1" in stride.counterexample and "sw=2" in stride.counterexample  # the stride only along j
    assert "stride misapplied" in stride.details[0]
    assert "local derivative dropped" in results["ReLU backward"].details[0]
    assert "sign flipped" in results["softmax dy_i/dx_j, intermediate step"].details[0]
    assert "kh=1" in results["conv dE/dw, bounds M-2(m/2)"].counterexample      # m = 1 already overruns
    assert "outside its shape" in results["conv dE/dx, zero only for i-s < 0"].details[0]
    assert "<dx, v> = 2" in results["max pooling backward at ties"].details[0]


def test_section_lists_every_wrong_formula_with_its_counterexample(results):
    text = format_errata(list(results.values()))
    for name in WRONG_AS_PRINTED:
        r = results[name]
        assert f"* {name} ({r.formula.source})" in text
        assert r.counterexample in text and r.formula.correction in text
    assert "Confirmed as printed:" in text
    assert f"{len(WRONG_AS_PRINTED)} of {len(PRINTED)} printed formulas are wrong" in text


def test_a_verdict_that_changes_is_flagged_and_fails_the_section(results):
    """The section's ok flag: False only when a formula no longer gets its recorded verdict."""
    assert not unexpected(list(results.values()))
    relu = results["ReLU backward"]
    now_passes = ErratumResult(relu.formula, CONFIRMED)                     # recorded as wrong, found right
    now_fails = ErratumResult(replace(relu.formula, name="x", correction=""), WRONG, "relu(N=1)")
    assert unexpected([now_passes, now_fails, relu]) == [now_passes, now_fails]
    text = format_errata([now_passes, now_fails])
    assert "ERRATA CHECK CHANGED: ReLU backward (000) is recorded as wrong but now gets the verdict confirmed" in text
    assert "ERRATA CHECK CHANGED: x (000) is recorded as confirmed but now gets the verdict wrong" in text


def test_a_confirmed_transcription_really_runs_the_printed_code():
    """The confirmed verdicts are not vacuous: the printed implementation differs from the reference object and
    agrees with every oracle on a case in scope."""
    (formula,) = [f for f in PRINTED if f.name == "conv dE/dy, cross-correlation"]
    spec = get_spec(formula.op)
    impl = printed_implementation(spec, formula)
    assert impl.backward is not spec.reference.backward
    config = dict(N=1, C_in=1, C_out=1, kh=2, sh=2, dilh=1, ph=0, H=5, kw=3, sw=2, dilw=1, pw=0, W=7)
    assert check_case(spec, impl, spec.make_case(config, 4)).passed
