"""Property checks driven by Hypothesis: every generated case of an op must pass every oracle. On failure Hypothesis
shrinks to the smallest configuration that still fails, and the raised report names it."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from hypothesis import Phase, example, given, settings as hyp_settings

from .calls import ImplementationError
from .explicit import typical_cases
from .runner import CaseResult, check_case
from .spec import Case, Implementation, OpSpec


def check_op(spec: OpSpec, impl: Implementation, *, fixed: Mapping[str, Any] | None = None, settings=None,
             oracles=None, on_case: Callable[[CaseResult], None] | None = None) -> None:
    """Run the property for ``impl`` over ``spec.cases(**fixed)``, after one typical case per kind of special values
    of the op (explicit examples); raises the shrunk failure's report."""

    def body(case: Case) -> None:
        result = check_case(spec, impl, case, oracles)
        if on_case is not None:
            on_case(result)
        result.raise_for_failures()

    test = given(spec.cases(**(fixed or {})))(body)
    # explicit examples first: one typical case per kind of special values (ties, exact zeros...), in every run
    for case, _ in reversed(typical_cases(spec, fixed or {}, ("contiguous",), corners=False)):
        test = example(case)(test)
    if settings is not None:
        test = settings(test)
    test()


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
