"""Calling an implementation: the one place where the harness runs user code, so that problems with what comes back
are reported as problems of the implementation (naming the op and the configuration), not as internal tracebacks."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .oracles import Evaluation
from .spec import Case, Implementation, OpSpec, as_grad_dict, ordered_arrays


class ImplementationError(AssertionError):
    """The implementation misbehaved (raised, returned the wrong shape, ...), as opposed to a wrong gradient."""


def evaluate(spec: OpSpec, impl: Implementation, case: Case) -> Evaluation:
    """Run the implementation's forward and backward once for a case."""
    hyper = spec.hyper(case.config)

    def forward(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(impl.forward(*ordered_arrays(spec, arrays), **hyper), dtype=np.float64)

    y = forward(case.arrays)
    grads = as_grad_dict(spec, impl.backward(case.dy, *ordered_arrays(spec, case.arrays), **hyper))
    missing = [name for name in spec.differentiable if name not in grads]
    if missing:
        raise ImplementationError(f"{impl.name}: backward returned no gradient for {missing} "
                                  f"(expected one per {spec.differentiable}) at {case.describe()}")
    return Evaluation(y, {n: np.asarray(g, dtype=np.float64) for n, g in grads.items()}, forward)
