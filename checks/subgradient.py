"""The subgradient check: the verdict on a gradient at a kink or a tie, where finite differences cannot judge.

Cases whose inputs sit exactly on a non-differentiable point on purpose (``OpSpec.kink_values``: exact zeros fed to
ReLU, tied maxima in pooling windows), and explicit examples within the stencil's reach of one, are judged here
instead of by the other oracles:

- "pytorch" judges the forward (continuous at a kink, so still exact);
- "subgradient" judges each gradient against the admissible gradient nearest to the one returned
  (``OpSpec.subgradient``): every upstream value routed to exactly one of the tied cells of its window (the sum over
  the tied cells is the upstream value, the rest 0), ReLU'(0) one value in {0, 1} for every exact zero alike.
  The comparison is tolerance policy 1 (two exact computations of the same sums).

A max-pool backward that routes the upstream value to every tied cell, or halves it between them, is caught; one
that picks any single tied cell (the first, the last, torch's) passes.
"""
from __future__ import annotations

from .compare import Comparison, compare_arrays
from .probes import magnitudes, torch_outputs
from .spec import Case, Implementation, OpSpec, kink_distance, quantity_label
from . import tolerance

ORACLE = "subgradient"


def at_kink(spec: OpSpec, case: Case) -> bool:
    """Judge this case by the subgradient check: special values on a kink on purpose, or an explicit example within
    the stencil's reach of one (only for ops that declare their subgradients)."""
    if spec.subgradient is None:
        return False
    if case.values in spec.kink_values:
        return True
    return case.explicit and kink_distance(spec, case) < tolerance.KINK_CLEARANCE


def subgradient_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation) -> list[Comparison]:
    k = spec.reduction_length(case.config)
    m = magnitudes(spec, case)
    y, _ = torch_outputs(spec, case)
    out = [compare_arrays("pytorch", "forward", y, evaluation.y, k, evaluation.dtype, m.get("forward"))]
    admissible = spec.subgradient(case.config, case.arrays, case.dy, evaluation.grads)
    for name in spec.differentiable:
        label = quantity_label(name)
        c = compare_arrays(ORACLE, label, admissible[name], evaluation.grads[name], k, evaluation.dtype,
                           m.get(label))
        c.note = (f"at a kink or tie ({spec.nondifferentiable}): compared with the admissible subgradient nearest "
                  f"to the one returned") + (f"; {c.note}" if c.note else "")
        out.append(c)
    return out
