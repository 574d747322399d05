"""The main job's verdicts: a formula row is validated only when some oracle judged every quantity it names, and a
breaking formula becomes a FAILED row (the job still prints its table), never a crash."""
import json

from cnn_gradcheck import validate
from cnn_gradcheck.spec import Formula


def test_every_declared_formula_names_quantities_of_its_op():
    from cnn_gradcheck.registry import all_formulas
    for formula in all_formulas():
        validate.check_formula_quantities(formula)  # raises ValueError naming the formula


def test_a_formula_naming_an_unknown_quantity_fails_instead_of_validating_by_nothing():
    row = validate.validate_formula(Formula("dense dE/dW, misspelt", "dE/dW = x^T delta", "004", "dense", ("w",)))
    assert row.verdict == validate.FAILED and "not quantities of dense" in row.detail


def test_a_formula_of_an_unknown_op_fails():
    row = validate.validate_formula(Formula("no such op", "-", "-", "conv9d", ("forward",)))
    assert row.verdict == validate.FAILED and "conv9d" in row.detail


def test_rows_list_only_oracles_that_judged_the_quantities():
    row = validate.validate_formula(Formula("dense dE/db", "dE/db = sum delta", "004", "dense", ("b",)))
    assert row.verdict == validate.VALIDATED
    assert set(row.validated_by) == {"pytorch", "finite differences", "adjoint"}


def test_the_json_summary_has_one_record_per_row(tmp_path):
    rows = [validate.validate_formula(Formula("ReLU", "y = max(0, x)", "004", "relu", ("forward", "x")))]
    path = tmp_path / "summary.json"
    validate.write_summary(rows, "ci", str(path))
    (record,) = json.loads(path.read_text())["formulas"]
    assert record["formula"] == "ReLU" and record["verdict"] == "validated"
    assert record["oracles"] == rows[0].validated_by and record["examples"] == rows[0].examples
