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

from typing import Callable

import numpy as np
import torch

from . import finite_diff, tolerance
from .adjoint import adjoint_oracle
from .compare import Comparison, compare_arrays
from .evaluation import Evaluation  # noqa: F401 -- re-exported: the record every oracle reads
from .spec import Case, Implementation, OpSpec, as_grad_dict, derived, kink_distance, ordered_arrays, quantity_label


def torch_outputs(spec: OpSpec, case: Case, absolute: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Forward and autograd gradients of the torch version of the op, in float64. ``absolute``: on |arrays| with
    upstream gradient |dy|, the magnitude of the terms behind each element (tolerance policy 1)."""
    lift = np.abs if absolute else np.asarray
    tensors = {name: torch.tensor(lift(np.asarray(a, dtype=np.float64)), dtype=torch.float64,
                                  requires_grad=name in spec.differentiable)
               for name, a in case.arrays.items()}
    y = spec.torch_forward(*[tensors[n] for n in spec.arg_names], **spec.hyper(case.config))
    inputs = [tensors[n] for n in spec.differentiable]
    grads = torch.autograd.grad(y, inputs, grad_outputs=torch.tensor(lift(case.dy), dtype=torch.float64),
                                allow_unused=True)
    return (y.detach().numpy(),
            {n: (g.numpy() if g is not None else np.zeros_like(case.arrays[n]))
             for n, g in zip(spec.differentiable, grads)})


def magnitudes(spec: OpSpec, case: Case) -> dict[str, np.ndarray]:
    """quantity label -> magnitude of the terms summed into it (the op on |inputs|, |dy|); computed once per case,
    and only if an oracle that needs it runs."""
    return derived(spec, case, "magnitudes", lambda: _magnitudes(spec, case))


def _magnitudes(spec: OpSpec, case: Case) -> dict[str, np.ndarray]:
    y, grads = torch_outputs(spec, case, absolute=True)
    out = {"forward": y, **{quantity_label(n): g for n, g in grads.items()}}
    if spec.magnitudes is not None:  # the op's own term sizes where its formulas cancel internally
        out.update(spec.magnitudes(case.config, case.arrays, case.dy))
    return out


def _compare_outputs(oracle: str, spec: OpSpec, case: Case, evaluation: Evaluation, y, grads) -> list[Comparison]:
    k = spec.reduction_length(case.config)
    m = magnitudes(spec, case)
    out = [compare_arrays(oracle, "forward", y, evaluation.y, k, evaluation.dtype, m.get("forward"))]
    for name in spec.differentiable:
        label = quantity_label(name)
        out.append(compare_arrays(oracle, label, grads[name], evaluation.grads[name], k, evaluation.dtype,
                                  m.get(label)))
    return out


def pytorch_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation: Evaluation) -> list[Comparison]:
    y, grads = torch_outputs(spec, case)
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


def _low_precision_magnitude(spec: OpSpec, case: Case, evaluation: Evaluation):
    """For a lower-precision plug-in, the magnitude of the forward's terms bounds its rounding (policy 6)."""
    return None if evaluation.dtype == "float64" else magnitudes(spec, case).get("forward")


def finite_difference_oracle(spec: OpSpec, impl: Implementation, case: Case,
                             evaluation: Evaluation) -> list[Comparison]:
    rng = np.random.default_rng(case.seed ^ 0x5EED)
    reason = kink_reason(spec, case)
    out = []
    for name in spec.differentiable:
        grad = evaluation.grads[name]
        v = finite_diff.direction_for(grad, rng)
        out.append(finite_diff.check_argument(evaluation.forward, case.arrays, name, grad, case.dy, evaluation.y,
                                              v, spec.reduction_length(case.config), reason,
                                              evaluation.dtype, _low_precision_magnitude(spec, case, evaluation)))
    return out


#: name -> oracle; cnn_gradcheck.runner runs them in this order
ORACLES: dict[str, Callable[[OpSpec, Implementation, Case, Evaluation], list[Comparison]]] = {
    "pytorch": pytorch_oracle,
    "reference": reference_oracle,
    "alternatives": alternatives_oracle,
    "finite differences": finite_difference_oracle,
    "adjoint": adjoint_oracle,
}
