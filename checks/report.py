"""Human-readable reports of a case's comparisons."""
from __future__ import annotations

from .compare import Comparison


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


def failure_report(result) -> str:
    failures = result.failures
    wrong = sorted({c.quantity for c in failures}, key=lambda q: (q != "forward", q))
    lines = [f"{result.spec.name}: {', '.join(wrong)} wrong in {result.impl.name}",
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {describe_comparison(c)}" for c in failures]
    passed = sorted({f"{c.quantity} ({c.oracle})" for c in result.comparisons if c.passed})
    if passed:
        lines.append(f"  agreed: {', '.join(passed)}")
    return "\n".join(lines)


def kink_report(result) -> str:
    lines = [f"{result.spec.name}: not differentiable at this input (no gradient verdict) for {result.impl.name}",
             f"  configuration: {result.case.describe()}"]
    lines += [f"  - {c.quantity}: {c.note}" for c in result.kinks]
    return "\n".join(lines)
