"""The oracles. Each takes (spec, impl, case, evaluation) and returns Comparisons; the implementation's forward and
backward are evaluated once per case (``Evaluation``) and shared by every oracle.

- "pytorch":            the same op through torch.nn.functional in float64; forward and autograd gradients for the
                        same upstream gradient, compared element-wise (tolerance policy 1).
- "reference":          the loop-based reference of the spec (only when the implementation is not the reference).
- "alternatives":       independent derivations of the same op declared by the spec (e.g. conv as a sparse matrix),
                        each reported under its own label.
- "finite differences": directional central differences of the implementation's own forward, one direction per
                        differentiable argument (tolerance policy 2).
- "adjoint":            <A u, v> = <u, A^T v> for the arguments the op is (piecewise) linear in (``cnn_gradcheck.adjoint``,
                        tolerance policy 3).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from . import finite_diff, tolerance
from .adjoint import adjoint_oracle, exact_step
from .compare import PASS, Comparison, compare_arrays
from .evaluation import Evaluation  # noqa: F401 -- re-exported: the record every oracle reads
from .probes import forward_error, low_precision_magnitude, magnitudes, rounding_estimates, torch_reference
from .spec import (Case, Implementation, OpSpec, as_grad_dict, forward_terms, kink_distance, ordered_arrays,
                   quantity_label)


def _compare_outputs(oracle: str, spec: OpSpec, case: Case, evaluation: Evaluation, y, grads) -> list[Comparison]:
    k = spec.reduction_length(case.config)
    m = magnitudes(spec, case)
    pairs = [("forward", y, evaluation.y), *((quantity_label(n), grads[n], evaluation.grads[n])
                                             for n in spec.differentiable)]

    def compare(label, expected, got, samples):
        return compare_arrays(oracle, label, expected, got, k, evaluation.dtype, m.get(label),
                              rounding_estimates(spec, case, samples)[label])
    # one probe realisation first; all of them only where that one would not pass (they can only widen it)
    out = [compare(label, expected, got, 1) for label, expected, got in pairs]
    return [c if c.passed else compare(label, expected, got, None) for c, (label, expected, got) in zip(out, pairs)]


def pytorch_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation: Evaluation) -> list[Comparison]:
    y, grads = torch_reference(spec, case)
    return _compare_outputs("pytorch", spec, case, evaluation, y, grads)


def _against(label: str, other: Implementation, spec: OpSpec, impl: Implementation, case: Case,
             evaluation: Evaluation) -> list[Comparison]:
    """Compare with another implementation of the op (never with itself)."""
    if impl is other or impl == other:
        return []
    hyper = spec.hyper(case.config)
    arrays = ordered_arrays(spec, case.arrays)
    y = other.forward(*arrays, **hyper)
    grads = as_grad_dict(spec, other.backward(case.dy, *arrays, **hyper))
    return _compare_outputs(label, spec, case, evaluation, y, grads)


def reference_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation: Evaluation) -> list[Comparison]:
    return _against("reference", spec.reference, spec, impl, case, evaluation)


def alternatives_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation: Evaluation) -> list[Comparison]:
    """Each independent derivation of the op (``OpSpec.alternatives``) as an oracle under its own label."""
    return [c for label, other in spec.alternatives.items()
            for c in _against(label, other, spec, impl, case, evaluation)]


def kink_reason(spec: OpSpec, case: Case) -> str:
    """A sentence if the case lies closer to a non-differentiable point than the stencil reaches."""
    distance = kink_distance(spec, case)
    reach = tolerance.KINK_CLEARANCE
    if distance < reach:
        return (f"the input lies {distance:.1e} from a non-differentiable point ({spec.nondifferentiable}), "
                f"closer than the stencil's reach {reach:.1e}")
    return ""


def finite_difference_oracle(spec: OpSpec, impl: Implementation, case: Case,
                             evaluation: Evaluation) -> list[Comparison]:
    """One joint direction over all differentiable arguments first, whatever their number: the short stencil (four
    forward calls, shared with the adjoint test where the op is (piecewise) linear in every argument: then at the
    adjoint's step, where the differences are exact), the full one only where that does not settle it. Only when
    the joint check does not pass, one direction per argument, so that the report names the wrong gradient."""
    reason = kink_reason(spec, case)
    k = forward_terms(spec, case.config)  # the noise of <dy, f>: the forward's sums
    magnitude = low_precision_magnitude(spec, case, evaluation)
    error = forward_error(spec, case)
    grads = {n: evaluation.grads[n] for n in spec.differentiable}
    labels = [quantity_label(n) for n in grads]
    stencil = finite_diff.joint_stencil(evaluation, case.arrays, list(grads), case.seed)
    short = exact_step(spec, case, stencil.directions) or tolerance.FD_SHORT_STEP
    joint = finite_diff.check_joint(evaluation.forward, case.arrays, grads, case.dy, evaluation.y,
                                    stencil.directions, k, reason, evaluation.dtype, magnitude, error,
                                    " + ".join(labels), stencil=stencil, short_step=short)
    if len(grads) == 1:
        return [joint]
    if joint.verdict == PASS:
        note = f"joint direction over {', '.join(labels)}: {joint.note}"
        return [replace(joint, quantity=label, note=note, resolution=_share_resolution(joint, grads[n],
                                                                                       stencil.directions[n]))
                for n, label in zip(grads, labels)]
    directions = finite_diff.directions_for(grads, case.seed)
    return [finite_diff.check_argument(evaluation.forward, case.arrays, name, grads[name], case.dy, evaluation.y,
                                       v, k, reason, evaluation.dtype, magnitude, error)
            for name, v in directions.items()]


def _share_resolution(joint: Comparison, grad: np.ndarray, direction: np.ndarray) -> float:
    """The resolution of a joint pass for one argument: a relative error e in its gradient moves the claimed
    derivative by e sum|g_a v_a| (v aligned with g), seen above the joint's tolerance."""
    share = finite_diff.share(grad, direction)
    return joint.tolerance / share if share > 0 else joint.resolution


#: name -> oracle; cnn_gradcheck.runner runs them in this order
ORACLES: dict[str, Callable[[OpSpec, Implementation, Case, Evaluation], list[Comparison]]] = {
    "pytorch": pytorch_oracle,
    "reference": reference_oracle,
    "alternatives": alternatives_oracle,
    "finite differences": finite_difference_oracle,
    "adjoint": adjoint_oracle,
}
