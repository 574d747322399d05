"""tools/mutation.py's mutator: each operator makes the edit it names and nothing else, every mutant is valid Python,
docstrings, annotations and messages are left alone, and mutants land in the scratch copy's package, never in the
working tree."""
import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
mutation = sys.modules["mutation_tool"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(mutation)

SOURCE = '''"""Module docstring 0 + 1."""
import numpy as np


def f(x: int, y: list[int] = 2) -> float:
    """Docstring: a < b."""
    if x < 0 and not y:
        return -x
    total = x + y * 3 - x / 2.5
    total += x[1, k:n]
    message = f"{x + 1} items"
    return np.max(total) if total == 1 else None
'''


@pytest.fixture
def mutants(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "m.py").write_text(SOURCE)
    return {(m.lineno, m.description): m for m in mutation.mutants_of("reference/m.py", tmp_path)}


def mutated_line(m):
    return m.apply(SOURCE).splitlines()[m.lineno - 1].strip()


def test_each_operator_makes_its_edit(mutants):
    expected = {
        (5, "`2` -> `3`"): "def f(x: int, y: list[int] = (3)) -> float:",
        (7, "`<` -> `<=`"): "if (x <= 0) and not y:",
        (7, "`and` -> `or`"): "if (x < 0 or not y):",
        (7, "`not` removed"): "if x < 0 and (y):",
        (7, "condition negated"): "if (not (x < 0 and (not y))):",
        (8, "unary `-` removed"): "return (x)",
        (8, "returned value -> `None`"): "return None",
        (9, "`+` -> `-`"): "total = (x - y * 3) - x / 2.5",
        (9, "`*` -> `/`"): "total = x + (y / 3) - x / 2.5",
        (9, "`/` -> `*`"): "total = x + y * 3 - (x * 2.5)",
        (9, "`2.5` -> `5.0`"): "total = x + y * 3 - x / (5.0)",
        (10, "`+=` -> `-=`"): "total -= x[1, k:n]",
        (10, "index `1` + 1"): "total += x[(1 + 1), k:n]",
        (10, "slice bound `k` + 1"): "total += x[1, (k + 1):n]",
        (10, "slice bound `n` + 1"): "total += x[1, k:(n + 1)]",
        (12, "`np.max` -> `np.min`"): "return np.min(total) if total == 1 else None",
        (12, "`==` -> `!=`"): "return np.max(total) if (total != 1) else None",
    }
    for key, line in expected.items():
        assert key in mutants, key
        assert mutated_line(mutants[key]) == line, key
        assert mutants[key].original == SOURCE.splitlines()[key[0] - 1].strip()


def test_docstrings_annotations_and_messages_are_not_mutated(mutants):
    lines = {line for line, _ in mutants}
    assert not lines & {1, 2, 6, 11}                     # docstrings, the import, the f-string message
    assert not any("list[int]" in d or "int" == d for _, d in mutants)
    assert (5, "`2` -> `3`") in mutants                   # the default value is code
    for m in mutants.values():
        ast.parse(m.apply(SOURCE))


def test_sample_is_seeded_per_file_and_mutants_go_into_the_scratch_package(mutants):
    ms = sorted(mutants.values(), key=lambda m: (m.lineno, m.col))
    assert mutation.sample(ms, 5, 0) == mutation.sample(ms, 5, 0) and len(mutation.sample(ms, 5, 0)) == 5
    assert mutation.sample(ms, 500, 0) == ms
    tree = Path("/scratch/tree")
    assert mutation.installed_path(tree, "checks/compare.py") == tree / "_pkgroot/cnn_gradcheck/compare.py"
    assert mutation.installed_path(tree, "reference/dense.py") == tree / "_pkgroot/cnn_gradcheck/reference/dense.py"
    with pytest.raises(ValueError, match="only files of checks/, reference/ and examples/"):
        mutation.installed_path(tree, "tests/test_x.py")


def test_every_default_module_has_a_selection_of_existing_tests():
    assert set(mutation.DEFAULT_MODULES) <= set(mutation.SELECTIONS)
    for module in mutation.DEFAULT_MODULES:
        assert (ROOT / module).is_file(), module
        for arg in mutation.SELECTIONS[module]:
            if arg.startswith("tests/"):
                assert (ROOT / arg).is_file(), arg


def test_every_listed_equivalent_mutant_still_exists():
    """An entry whose line changed would silently stop applying: each must name a mutant of the current code."""
    mutants_of = {path: mutation.mutants_of(path, check_syntax=False)  # each module's once
                  for path, _, _ in mutation.EQUIVALENT}
    for path, description, original in mutation.EQUIVALENT:
        assert any(m.description == description and m.original == original
                   for m in mutants_of[path]), (path, description, original)
