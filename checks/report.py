"""Human-readable reports of a case's comparisons: what disagreed, by how much, where (a table of the worst
elements), and what mistake explains it (cnn_gradcheck.diagnosis)."""
from __future__ import annotations

import re

import numpy as np

from .compare import NA, Comparison

#: oracles that differentiate the implementation's OWN forward; every other oracle computes the TRUE op
OWN_FORWARD_ORACLES = ("finite differences", "adjoint")
#: a relative error above this means the expected values are (almost) zero: absolute figures say more
ABSURD_RELATIVE = 1e6

#: rows of the worst-elements table
WORST_ROWS = 5


def _index(c: Comparison) -> str:
    if c.worst_index is None:
        return ""
    return f"[{', '.join(map(str, c.worst_index))}]" if c.worst_index else "[()]"


def _expected_all_zero(c: Comparison) -> bool:
    """The true value is exactly 0: every expected element, or the directional derivative."""
    if c.arrays:
        return not np.any(c.arrays["expected"])
    return c.expected == 0.0


def _figures(c: Comparison) -> str:
    """Max errors and tolerance; absolute figures alone when a relative error would be absurd (the expected values
    are exactly or almost 0, e.g. a shrunk window that reads only padding)."""
    absolute = f"max abs error {c.error:.3e}, tolerance {c.tolerance:.3e} (absolute)"
    if _expected_all_zero(c) and np.isfinite(c.error):
        what = "output" if c.quantity == "forward" else "derivative"
        return f"{what} exactly 0: {absolute}"
    if not np.isfinite(c.relative) or c.relative > ABSURD_RELATIVE:
        if np.isfinite(c.error):
            return f"{absolute}; the expected values are almost 0, so no relative error is given"
    return f"max abs error {c.error:.3e}, max rel error {c.relative:.3e}, tolerance {c.tolerance:.3e}"


def readable(note: str) -> str:
    """A note with absurd percentages (a tolerance relative to a derivative that is ~0) written as 'far above'."""
    return re.sub(r"\b\d{5,}%", "far more than 100%", note)


def describe_comparison(c: Comparison) -> str:
    where = (f"worst element {c.quantity}{_index(c)}: expected {c.expected:.10g}, got {c.got:.10g}"
             if c.worst_index is not None else
             (f"expected {c.expected:.10g}, got {c.got:.10g}" if c.expected is not None else ""))
    parts = [f"{c.quantity} vs {c.oracle}: {_figures(c)}"]
    if where:
        parts.append(where)
    if c.note:
        parts.append(readable(c.note))
    return "; ".join(parts)


def relative_resolution(c: Comparison) -> float:
    """The smallest relative error the comparison could see: its tolerance over the expected values' scale (the
    largest element; for a directional derivative or an inner product, its own value: a gradient off by a factor
    1 + e moves it by e of itself)."""
    # TODO(compare.py): use the Comparison's own resolution field once compare.py records it
    if c.arrays:
        scale = float(np.max(np.abs(c.arrays["expected"]), initial=0.0))
    elif c.expected is not None:
        scale = abs(c.expected)
    else:
        scale = c.error / c.relative if c.relative > 0 and np.isfinite(c.relative) else 0.0
    return c.tolerance / scale if scale > 0 else np.inf


def discrepancy(result, quantity: str) -> float:
    """The relative error the failing oracles found in ``quantity`` (the largest finite one; 0 if none)."""
    found = [c.relative for c in result.failures if c.quantity == quantity and np.isfinite(c.relative)]
    return max(found, default=0.0)


def cannot_resolve(result, c: Comparison) -> bool:
    """A passing oracle whose tolerance is above the discrepancy that the failing oracles found in the same
    quantity: it could not have seen it, so its pass is no agreement."""
    found = discrepancy(result, c.quantity)
    return found > 0 and relative_resolution(c) >= found


def true_op_agrees(result, quantity: str) -> bool:
    """Every oracle of the TRUE op that judged ``quantity`` passed it (at least one did)."""
    true = [c for c in result.comparisons if c.quantity == quantity and c.verdict != NA
            and c.oracle not in OWN_FORWARD_ORACLES]
    return bool(true) and all(c.passed for c in true)


def forward_wrong_lines(result) -> list[str]:
    """When the forward is wrong, oracles of the TRUE op (pytorch, reference, derivations) and oracles of the
    implementation's OWN forward (finite differences, adjoint) judge the backward differently; say which one it
    matches instead of diagnosing a gradient that equals the true one."""
    if not any(c.quantity == "forward" for c in result.failures):
        return []
    true_ok, own_ok, neither = [], [], []
    for quantity in sorted({c.quantity for c in result.comparisons} - {"forward"}):
        own = [c for c in result.comparisons if c.quantity == quantity and c.verdict != NA
               and c.oracle in OWN_FORWARD_ORACLES]
        if true_op_agrees(result, quantity):
            true_ok.append(quantity)
        elif own and all(c.passed for c in own):
            own_ok.append(quantity)
        else:
            neither.append(quantity)
    lines = ["  the forward is wrong, so the backward was judged against the true op and against the "
             "implementation's own forward:"]
    if true_ok:
        lines.append(f"    {', '.join(true_ok)} match the TRUE op's gradient (pytorch/reference): the backward is "
                     f"right; finite differences/adjoint disagree only because they differentiate the wrong forward")
    if own_ok:
        lines.append(f"    {', '.join(own_ok)} match the implementation's OWN forward (finite differences/adjoint), "
                     f"not the true op: the backward is consistent with the wrong forward; fix the forward first")
    if neither:
        lines.append(f"    {', '.join(neither)} match neither the true op nor the implementation's own forward")
    return lines


def worst_elements(expected, got, rows: int = WORST_ROWS) -> list[tuple[tuple, float, float]]:
    """The ``rows`` elements with the largest |got - expected|, largest first: (index, expected, got)."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    diff = np.abs(got - expected)
    diff = np.where(np.isnan(diff), np.inf, diff).reshape(-1)
    top = np.argpartition(-diff, rows)[:rows] if diff.size > rows else np.arange(diff.size)  # O(n), not a sort
    order = top[np.lexsort((top, -diff[top]))]  # largest first, ties by position
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
    only_own = [q for q in wrong if q != "forward" and true_op_agrees(result, q)]
    wrong = [q for q in wrong if q not in only_own]
    lines = [f"{result.spec.name}: {', '.join(wrong)} wrong in {result.impl.name}"
             + (f" ({', '.join(only_own)} disagree only with its own forward)" if only_own else ""),
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {describe_comparison(c)}" for c in failures]
    lines += forward_wrong_lines(result)
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
    unresolved = [c for c in result.comparisons if c.passed and cannot_resolve(result, c)]
    if unresolved:
        dtype = getattr(result, "dtype", "float64")
        lines.append(f"  cannot resolve this at {dtype} (tolerance above the discrepancy found): "
                     + ", ".join(f"{c.quantity} ({c.oracle}, tolerance {relative_resolution(c):.1e} relative)"
                                 for c in unresolved))
    passed = sorted({f"{c.quantity} ({c.oracle})" for c in result.comparisons
                     if c.passed and not any(c is u for u in unresolved)})
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
    return [f"  not applicable: {oracle} ({quantity}): {readable(note)}" for oracle, (quantity, note) in seen.items()]


def kink_report(result) -> str:
    lines = [f"{result.spec.name}: not differentiable at this input (no gradient verdict) for {result.impl.name}",
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {c.quantity}: {c.note}" for c in result.kinks]
    return "\n".join(lines)
