"""Run every applicable oracle on one case and turn failures into a report that names what went wrong."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import report
from .calls import evaluate
from .compare import FAIL, KINK, Comparison
from .oracles import ORACLES
from .spec import Case, Implementation, OpSpec
from .subgradient import at_kink, subgradient_oracle


class GradientCheckFailure(AssertionError):
    """An oracle disagrees with the implementation; the message is the full report (with its diagnosis), built when
    first read: Hypothesis raises many of these while shrinking and reads only the last."""

    def __init__(self, result: "CaseResult"):
        self.result = result
        self._report = None
        super().__init__()

    def __str__(self) -> str:
        if self._report is None:
            self._report = report.failure_report(self.result)
        return self._report


class NotDifferentiableHere(AssertionError):
    """The case sits on a kink: finite differences cannot judge the gradient there (not a gradient mismatch)."""

    def __init__(self, result: "CaseResult"):
        self.result = result
        super().__init__(report.kink_report(result))


def verdicts(error: BaseException) -> list[BaseException]:
    """Every harness verdict (a failure, a kink, a misbehaving implementation) inside whatever Hypothesis wrapped
    them in (flaky-failure or exception groups when several examples failed differently), in the order found."""
    from .calls import ImplementationError
    if isinstance(error, (ImplementationError, GradientCheckFailure, NotDifferentiableHere)):
        return [error]
    return [v for inner in getattr(error, "exceptions", ()) or () for v in verdicts(inner)]


def verdict_case(verdict: BaseException) -> Case | None:
    """The case a verdict was found on: a wrong value carries its result; a misbehaviour its ``case`` attribute
    (set where the property catches it)."""
    result = getattr(verdict, "result", None)
    return result.case if result is not None else getattr(verdict, "case", None)


#: (size, kernel, stride, padding, dilation) config keys of the two spatial axes of windowed ops
WINDOW_AXES = (("H", "kh", "sh", "ph", "dilh"), ("W", "kw", "sw", "pw", "dilw"))


def _padding_only(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output positions along one axis whose window reads only padding: taps i*s - p + a*d, a < k, all outside
    [0, size)."""
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    taps = np.arange(max(out, 0))[:, None] * s - p + np.arange(k)[None, :] * d
    return int(np.sum(~np.any((taps >= 0) & (taps < size), axis=1)))


def padding_only_windows(config) -> int:
    """How many output rows and columns of a windowed op (conv, pooling) read only padding (0 for other ops)."""
    total = 0
    for keys in WINDOW_AXES:
        if not set(keys[:4]) <= config.keys():
            return 0
        n, k, s, p = (int(config[key]) for key in keys[:4])
        total += _padding_only(n, k, s, p, int(config.get(keys[4], 1)))
    return total


def case_size(case: Case | None) -> tuple:
    """How good a failing case is as a report, smaller first: windows that read only padding (a report where
    every window sees a real input reads more plainly), total input elements, then the configuration's values in
    order; an unknown case sorts last."""
    if case is None:
        return (float("inf"),)
    flat = []
    for v in case.config.values():
        flat.extend(v if isinstance(v, tuple) else (v,))
    return (padding_only_windows(case.config), sum(int(np.size(a)) for a in case.arrays.values()),
            tuple(float(v) for v in flat if isinstance(v, (int, float, np.integer, np.floating))))


def verdict_kind(verdict: BaseException) -> str:
    """What kind of failure a verdict is, in a few words: the wrong quantities, or the misbehaviour's problem."""
    result = getattr(verdict, "result", None)
    if isinstance(verdict, GradientCheckFailure):
        wrong = sorted({c.quantity for c in result.failures}, key=lambda q: (q != "forward", q))
        return f"{', '.join(wrong)} wrong"
    if isinstance(verdict, NotDifferentiableHere):
        return "not differentiable at the input"
    return getattr(verdict, "problem", type(verdict).__name__)


def smallest_verdict(error: BaseException) -> tuple[BaseException | None, list[BaseException]]:
    """The verdict on the smallest failing case (``case_size``) among all Hypothesis found, and one verdict per
    other distinct kind of failure (``verdict_kind``), smallest first: Hypothesis shrinks each kind separately and
    raises them together, in an order that is not by size."""
    found = sorted(verdicts(error), key=lambda v: case_size(verdict_case(v)))
    if not found:
        return None, []
    chosen, others, kinds = found[0], [], {verdict_kind(found[0])}
    for v in found[1:]:
        if verdict_kind(v) not in kinds:
            kinds.add(verdict_kind(v))
            others.append(v)
    return chosen, others


def _real_window_configs(config, fixed) -> list[dict]:
    """Configurations near ``config`` where every window reads a real input: the padding lowered to the largest
    that allows it, and the kernel widened so that each window reaches past the padding (k = ceil(p / d) + 1);
    fields fixed by limits are kept."""
    fixed = set(fixed or ())
    kept = {f for name in fixed for f in {"padding": ("ph", "pw"), "kernel": ("kh", "kw")}.get(name, (name,))}
    out = []
    for change in ("padding", "kernel"):
        new = dict(config)
        for keys in WINDOW_AXES:
            n, k, s, p = (int(new[key]) for key in keys[:4])
            d = int(new.get(keys[4], 1))
            if not _padding_only(n, k, s, p, d):
                continue
            if change == "padding" and keys[3] not in kept:
                new[keys[3]] = next(q for q in range(p, -1, -1) if (n + 2 * q - d * (k - 1) - 1) // s + 1 >= 1
                                    and not _padding_only(n, k, s, q, d))
            elif change == "kernel" and keys[1] not in kept:
                new[keys[1]] = max(k, -(-p // d) + 1)
        if new != config and not padding_only_windows(new):
            out.append(new)
    return out


def prefer_real_windows(verdict: BaseException, fixed=None, oracles=None) -> BaseException:
    """A wrong value shrunk to a configuration whose windows read only padding (expected values 0 there, a report
    that reads oddly) is re-checked on the same seed with less padding, or a kernel that reaches past the padding;
    the smallest of those where every window sees a real input and the same kind of failure remains is reported
    instead. Fields fixed by limits are kept; a failure that needs padding-only windows keeps its configuration."""
    result = getattr(verdict, "result", None)
    if not isinstance(verdict, GradientCheckFailure) or not padding_only_windows(result.case.config):
        return verdict
    found = []
    for config in _real_window_configs(result.case.config, fixed):
        try:
            other = check_case(result.spec, result.impl, result.spec.make_case(config, result.case.seed), oracles)
        except Exception:  # noqa: BLE001 -- invalid there, or a misbehaviour (another kind): not a replacement
            continue
        if other.failures and verdict_kind(GradientCheckFailure(other)) == verdict_kind(verdict):
            found.append(other)
    if not found:
        return verdict
    return GradientCheckFailure(min(found, key=lambda r: case_size(r.case)))


def essential_verdict(error: BaseException):
    """The harness's own verdict inside whatever Hypothesis wrapped it in: the one on the smallest case when there
    are several; None if there is none."""
    return smallest_verdict(error)[0]


def other_kinds_lines(others: list[BaseException]) -> list[str]:
    """One line per other distinct kind of failure found in the same run (each shrunk on its own)."""
    if not others:
        return []
    lines = ["  other kinds of failure found in the same run (each shrunk separately):"]
    for v in others:
        case = verdict_case(v)
        detail = (getattr(v, "detail", "") or "").split("\n")[0]
        lines.append(f"    - {verdict_kind(v)}" + (f": {detail}" if detail else "")
                     + (f" at {case.describe()}" if case is not None else ""))
    return lines


@dataclass
class CaseResult:
    spec: OpSpec
    impl: Implementation
    case: Case
    comparisons: list[Comparison] = field(default_factory=list)
    dtype: str = "float64"  # the precision the implementation computed in (its tolerances' epsilon)
    limits: Mapping[str, Any] = field(default_factory=dict)  # a plug-in's limits: a re-run stays inside them
    repeat_difference: float = 0.0  # largest difference between two identical calls (within rounding: policy 8)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == FAIL]

    @property
    def kinks(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == KINK]

    @property
    def passed(self) -> bool:
        """No failure and no kink; comparisons marked n/a (an oracle that cannot judge, policy 7) are neither."""
        return not self.failures and not self.kinks

    def raise_for_failures(self) -> "CaseResult":
        if self.failures:
            raise GradientCheckFailure(self)
        if self.kinks:
            raise NotDifferentiableHere(self)
        return self


def check_case(spec: OpSpec, impl: Implementation, case: Case, oracles=None) -> CaseResult:
    """All oracles (or the named ones) on one case; the implementation is evaluated once and shared."""
    evaluation = evaluate(spec, impl, case)
    result = CaseResult(spec, impl, case, dtype=evaluation.dtype, repeat_difference=evaluation.repeat_difference)
    # at a kink or tie on purpose only the subgradient check can judge the gradient (cnn_gradcheck.subgradient)
    chosen = {"subgradient": subgradient_oracle} if at_kink(spec, case) else ORACLES
    for name, oracle in chosen.items():
        if oracles is None or name in oracles:
            result.comparisons.extend(oracle(spec, impl, case, evaluation))
    return result


def assert_case(spec: OpSpec, impl: Implementation, case: Case, oracles=None) -> CaseResult:
    return check_case(spec, impl, case, oracles).raise_for_failures()
