"""Human-readable reports of a case's comparisons: what disagreed, by how much, where (a table of the worst
elements), and what mistake explains it (cnn_gradcheck.diagnosis)."""
from __future__ import annotations

import numpy as np

from .compare import NA, Comparison

#: rows of the worst-elements table
WORST_ROWS = 5


def _index(c: Comparison) -> str:
    if c.worst_index is None:
        return ""
    return f"[{', '.join(map(str, c.worst_index))}]" if c.worst_index else "[()]"


def describe_comparison(c: Comparison) -> str:
    where = (f"worst element {c.quantity}{_index(c)}: expected {c.expected:.10g}, got {c.got:.10g}"
             if c.worst_index is not None else
             (f"expected {c.expected:.10g}, got {c.got:.10g}" if c.expected is not None else ""))
    parts = [f"{c.quantity} vs {c.oracle}: max abs error {c.error:.3e}, max rel error {c.relative:.3e}, "
             f"tolerance {c.tolerance:.3e}"]
    if where:
        parts.append(where)
    if c.note:
        parts.append(c.note)
    return "; ".join(parts)


def worst_elements(expected, got, rows: int = WORST_ROWS) -> list[tuple[tuple, float, float]]:
    """The ``rows`` elements with the largest |got - expected|, largest first: (index, expected, got)."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    diff = np.abs(got - expected)
    diff = np.where(np.isnan(diff), np.inf, diff).reshape(-1)
    order = np.argsort(-diff, kind="stable")[:rows]
    return [(tuple(int(i) for i in np.unravel_index(int(f), expected.shape)),
             float(expected.reshape(-1)[f]), float(got.reshape(-1)[f])) for f in order if diff[f] > 0]


def worst_table(quantity: str, expected, got, rows: int = WORST_ROWS) -> list[str]:
    """The worst elements as aligned text lines (index, expected, got, got - expected)."""
    worst = worst_elements(expected, got, rows)
    if not worst:
        return []
    cells = [(f"{quantity}[{', '.join(map(str, i))}]", f"{e:.10g}", f"{g:.10g}", f"{g - e:.3e}") for i, e, g in worst]
    headers = ("index", "expected", "got", "got - expected")
    widths = [max(len(h), *(len(c[k]) for c in cells)) for k, h in enumerate(headers)]
    line = lambda values: "    " + "  ".join(v.rjust(w) for v, w in zip(values, widths))  # noqa: E731
    return [line(headers)] + [line(c) for c in cells]


def _diagnoses(result):
    from .diagnosis import diagnose_result

    try:
        return diagnose_result(result)
    except Exception as error:  # noqa: BLE001 -- a report must never fail because its diagnosis did
        return [f"diagnosis unavailable: {type(error).__name__}: {error}"]


def failure_report(result) -> str:
    failures = result.failures
    wrong = sorted({c.quantity for c in failures}, key=lambda q: (q != "forward", q))
    lines = [f"{result.spec.name}: {', '.join(wrong)} wrong in {result.impl.name}",
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {describe_comparison(c)}" for c in failures]
    for d in _diagnoses(result):
        lines.append(f"  {d if isinstance(d, str) else d.describe()}")
    tabled = set()
    for c in sorted(failures, key=lambda c: c.oracle != "pytorch"):
        if c.arrays and c.quantity not in tabled:
            tabled.add(c.quantity)
            table = worst_table(c.quantity, c.arrays["expected"], c.arrays["got"])
            if table:
                lines.append(f"  worst elements of {c.quantity} (expected: {c.oracle}):")
                lines += table
    passed = sorted({f"{c.quantity} ({c.oracle})" for c in result.comparisons if c.passed})
    if passed:
        lines.append(f"  agreed: {', '.join(passed)}")
    lines += not_applicable_lines(result)
    return "\n".join(lines)


def not_applicable_lines(result) -> list[str]:
    """One line per oracle that could not judge at this precision (tolerance policy 7), with its reason."""
    seen = {}
    for c in result.comparisons:
        if c.verdict == NA:
            seen.setdefault(c.oracle, (c.quantity, c.note))
    return [f"  not applicable: {oracle} ({quantity}): {note}" for oracle, (quantity, note) in seen.items()]


def kink_report(result) -> str:
    lines = [f"{result.spec.name}: not differentiable at this input (no gradient verdict) for {result.impl.name}",
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {c.quantity}: {c.note}" for c in result.kinks]
    return "\n".join(lines)
