"""Property checks driven by Hypothesis: every generated case of an op must pass every oracle. On failure Hypothesis
shrinks to the smallest configuration that still fails, and the raised report names it."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from hypothesis import Phase, example, given, settings as hyp_settings

from .calls import ImplementationError
from .explicit import typical_cases
from .runner import CaseResult, check_case, other_kinds_lines, prefer_real_windows, smallest_verdict
from .spec import Case, Implementation, OpSpec


def check_op(spec: OpSpec, impl: Implementation, *, fixed: Mapping[str, Any] | None = None, settings=None,
             oracles=None, on_case: Callable[[CaseResult], None] | None = None) -> None:
    """Run the property for ``impl`` over ``spec.cases(**fixed)``, after one typical case per kind of special values
    of the op (explicit examples); raises the shrunk failure's report."""

    def body(case: Case) -> None:
        try:
            result = check_case(spec, impl, case, oracles)
        except ImplementationError as error:
            error.case = case  # to pick the smallest of several failures
            raise
        if on_case is not None:
            on_case(result)
        result.raise_for_failures()

    test = given(spec.cases(**(fixed or {})))(body)
    # explicit examples first: one typical case per kind of special values (ties, exact zeros...), in every run
    for case, _ in reversed(typical_cases(spec, fixed or {}, ("contiguous",), corners=False)):
        test = example(case)(test)
    if settings is not None:
        test = settings(test)
    try:
        test()
    except Exception as error:
        chosen, others = smallest_verdict(error)
        chosen = chosen if chosen is None else prefer_real_windows(chosen, fixed, oracles)
        if chosen is None or (chosen is error and not others):
            raise
        for line in other_kinds_lines(others):  # the other kinds Hypothesis found, one line each
            chosen.add_note(line)
        raise chosen from None


#: seconds a check may spend shrinking a failure (from the first failure found) before it reports the smallest
#: failure found so far
DEFAULT_SHRINK_BUDGET = 60.0


class ShrinkBudget:
    """A time limit on shrinking. Hypothesis shrinks by re-running the test on smaller inputs; once ``seconds``
    have passed since the first failure, every input that has not failed before passes at once (``spent``), so
    the shrinker makes no more progress and ends quickly, and its final replay of the smallest failure found so
    far still fails (inputs that failed before are checked again, as usual).

        budget = ShrinkBudget(2.0)
        def body(case, ...):
            if budget.skip(key):
                return
            ... check; on a failure: budget.failed(key) and raise
    """

    def __init__(self, seconds: float | None):
        if seconds is not None and not seconds > 0:
            raise ValueError(f"shrink_budget must be a positive number of seconds (or None: no limit), not "
                             f"{seconds!r}")
        self.seconds = seconds
        self.first_failure: float | None = None
        self.seen_failing: set = set()
        self.spent = False

    def skip(self, key) -> bool:
        """True when the budget is spent and ``key`` has not failed before: the input passes unchecked."""
        if (self.seconds is None or self.first_failure is None or key in self.seen_failing
                or time.monotonic() - self.first_failure <= self.seconds):
            return False
        self.spent = True
        return True

    def failed(self, key) -> None:
        if self.first_failure is None:
            self.first_failure = time.monotonic()
        self.seen_failing.add(key)

    def note(self) -> str:
        """The report's line when the budget cut shrinking short ('' otherwise)."""
        if not self.spent:
            return ""
        return (f"  not fully shrunk (shrink budget {self.seconds:g} s spent): this is the smallest failure found "
                f"so far; a larger budget (shrink_budget=, --shrink-budget) may find a smaller one")


def minimal_failure(spec: OpSpec, impl: Implementation, *, fixed=None, max_examples: int = 200, oracles=None,
                    count_errors: bool = False):
    """The smallest failing case Hypothesis finds (or None), with its result: for tests and diagnostics.

    count_errors: an ImplementationError raised by the implementation (a read outside an array, NaN, a wrong
    shape...) also counts as a failure, and the answer is (result, error): the shrunk case's CaseResult (without
    comparisons when the implementation raised) and the error, or None for an error. Without it the error
    propagates and the answer is the CaseResult alone."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    def run(case: Case) -> tuple[CaseResult, ImplementationError | None]:
        try:
            return check_case(spec, impl, case, oracles), None
        except ImplementationError as error:
            if not count_errors:
                raise
            return CaseResult(spec, impl, case), error

    def fails(case: Case) -> bool:
        result, error = run(case)
        return error is not None or not result.passed

    try:
        # no "explain" phase: it re-runs the check many times to annotate the example, which find() never shows
        case = find(spec.cases(**(fixed or {})), fails,
                    settings=hyp_settings(max_examples=max_examples, deadline=None, database=None,
                                          derandomize=True, phases=[p for p in Phase if p != Phase.explain]))
    except NoSuchExample:
        return None
    result, error = run(case)
    return (result, error) if count_errors else result
