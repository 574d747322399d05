"""docs/plugins.md's limits table names, for every registered op, exactly the limit names the op accepts (the
names are found by asking each op's strategy: cnn_gradcheck.options.limit_names)."""
from pathlib import Path

from cnn_gradcheck.options import limit_names
from cnn_gradcheck.registry import all_specs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
COLUMNS = ("fields", "aliases", "other", "derived")


def _documented() -> dict[str, tuple[set, ...]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            names = tuple({n.strip() for n in cell.split(",")} - {"—"} for cell in cells[1:])
            for op in cells[0].split(","):
                rows[op.strip().strip("`")] = names
    return rows


def test_the_limits_table_lists_every_op_and_every_name_it_accepts():
    documented = _documented()
    assert set(documented) == set(all_specs())
    for name, spec in all_specs().items():
        accepted = limit_names(spec)
        assert documented[name] == tuple(set(accepted[c]) for c in COLUMNS), name
