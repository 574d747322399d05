"""Property checks driven by Hypothesis: every generated case of an op must pass every oracle. On failure Hypothesis
shrinks to the smallest configuration that still fails, and the raised report names it."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from hypothesis import Phase, given, settings as hyp_settings

from .runner import CaseResult, check_case
from .spec import Case, Implementation, OpSpec


def check_op(spec: OpSpec, impl: Implementation, *, fixed: Mapping[str, Any] | None = None, settings=None,
             oracles=None, on_case: Callable[[CaseResult], None] | None = None) -> None:
    """Run the property for ``impl`` over ``spec.cases(**fixed)``; raises the shrunk failure's report."""

    def body(case: Case) -> None:
        result = check_case(spec, impl, case, oracles)
        if on_case is not None:
            on_case(result)
        result.raise_for_failures()

    test = given(spec.cases(**(fixed or {})))(body)
    if settings is not None:
        test = settings(test)
    test()


def minimal_failure(spec: OpSpec, impl: Implementation, *, fixed=None, max_examples: int = 200, oracles=None):
    """The smallest failing case Hypothesis finds (or None), with its result: for tests and diagnostics."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    def fails(case: Case) -> bool:
        return not check_case(spec, impl, case, oracles).passed

    try:
        # no "explain" phase: it re-runs the check many times to annotate the example, which find() never shows
        case = find(spec.cases(**(fixed or {})), fails,
                    settings=hyp_settings(max_examples=max_examples, deadline=None, database=None,
                                          derandomize=True, phases=[p for p in Phase if p != Phase.explain]))
    except NoSuchExample:
        return None
    return check_case(spec, impl, case, oracles)
