"""Run every applicable oracle on one case and turn failures into a report that names what went wrong."""
from __future__ import annotations

from dataclasses import dataclass, field

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


def essential_verdict(error: BaseException):
    """The harness's own verdict (a failure, a kink, a misbehaving implementation) inside whatever Hypothesis wrapped
    it in (flaky-failure or exception groups when several examples failed differently); None if there is none."""
    from .calls import ImplementationError
    if isinstance(error, (ImplementationError, GradientCheckFailure, NotDifferentiableHere)):
        return error
    for inner in getattr(error, "exceptions", ()) or ():
        found = essential_verdict(inner)
        if found is not None:
            return found
    return None


@dataclass
class CaseResult:
    spec: OpSpec
    impl: Implementation
    case: Case
    comparisons: list[Comparison] = field(default_factory=list)

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
    result = CaseResult(spec, impl, case)
    # at a kink or tie on purpose only the subgradient check can judge the gradient (cnn_gradcheck.subgradient)
    chosen = {"subgradient": subgradient_oracle} if at_kink(spec, case) else ORACLES
    for name, oracle in chosen.items():
        if oracles is None or name in oracles:
            result.comparisons.extend(oracle(spec, impl, case, evaluation))
    return result


def assert_case(spec: OpSpec, impl: Implementation, case: Case, oracles=None) -> CaseResult:
    return check_case(spec, impl, case, oracles).raise_for_failures()
