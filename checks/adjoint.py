"""The adjoint (dot-product) oracle: where an op is linear in an argument, its backward must be the exact transpose.

For an argument a in which the op is affine (``spec.linear_args``), f(a + d) - f(a) = A d for a linear map A, and the
backward called with upstream gradient v returns A^T v. For every u and v

    <A u, v> = <u, A^T v>

exactly, so only rounding separates the two sides (tolerance policy 3 in ``checks.tolerance``):

    |<A u, v> - <u, A^T v>| <= ADJOINT_RTOL * (|A u|_2 |v|_2 + |u|_2 |A^T v|_2)

No finite-difference truncation enters: a backward off by a relative 1e-10, invisible to finite differences
(resolution 1e-8), fails here.

How A u is obtained from the implementation's own forward, with the other arguments fixed (symmetric form):

    a+ = a + t u,  a- = a - t u,  d = a+ - a-  (computed: the direction actually applied),  A d = f(a+) - f(a-)

t = 1 for affine arguments (exact for any size). For piecewise-linear arguments (``spec.piecewise_linear_args``:
max pooling's routing, ReLU's mask) the active pieces must not change between a- and a+: t is a power of two with
t |u|_inf <= MARGIN / 8 (and below a quarter of the case's distance to a kink when the spec can measure it), well
inside the MARGIN that generated inputs keep from kinks. Using the computed d instead of 2 t u removes the rounding
of a +- t u; for the selections that make up max pooling and ReLU, f(a+) - f(a-) is then d at the selected
positions, exactly, whatever t is.

The check that the pieces held: f(a+) + f(a-) - 2 f(a) vanishes for an affine map. If it does not (relative to
|A d| |v|, above KINK_JUMP), a kink lay between a- and a+ (piecewise-linear argument: verdict "kink", no gradient
verdict) or the forward is not affine in a as the spec declares (linear argument: a failure that says so).

u is aligned with the claimed gradient (sign(A^T v) times a magnitude in [0.5, 1]; random sign where it is 0), so
that a scaled gradient shows fully in <u, A^T v>, as in the finite-difference oracle. Cost per case: one backward
call (dy = v, shared by every argument) and two forward calls per argument. Seeded from the case's seed.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from . import tolerance
from .compare import FAIL, KINK, PASS, Comparison
from .finite_diff import direction_for
from .spec import Case, Implementation, OpSpec, as_grad_dict, ordered_arrays, quantity_label

ORACLE = "adjoint"
#: perturbation reach (t |u|_inf) for piecewise-linear arguments, in data units: well inside MARGIN / 2
PIECEWISE_REACH = tolerance.MARGIN / 8


def dot_product_test(Au, v, u, ATv) -> tuple[float, float, float, float]:
    """(<A u, v>, <u, A^T v>, |difference|, Cauchy-Schwarz scale |Au||v| + |u||A^T v|)."""
    Au, v, u, ATv = (np.asarray(a, dtype=np.float64) for a in (Au, v, u, ATv))
    lhs, rhs = float(np.sum(Au * v)), float(np.sum(u * ATv))
    scale = float(np.linalg.norm(Au) * np.linalg.norm(v) + np.linalg.norm(u) * np.linalg.norm(ATv))
    return lhs, rhs, abs(lhs - rhs), max(scale, tolerance.TINY)


def check_pair(quantity: str, Au, v, u, ATv, note: str = "") -> Comparison:
    """One dot-product test as a Comparison (for the oracle, and for any linear map with a claimed transpose)."""
    lhs, rhs, err, scale = dot_product_test(Au, v, u, ATv)
    tol = tolerance.adjoint_tolerance(scale)
    verdict = PASS if err <= tol else FAIL
    return Comparison(ORACLE, quantity, verdict, err, err / scale, tol, None, lhs, rhs,
                      note=note or f"<A u, v> = {lhs:.17g} (forward) vs <u, A^T v> = {rhs:.17g} (backward)")


def step_for(spec: OpSpec, name: str, case: Case, u: np.ndarray) -> float:
    """t: 1 for an affine argument; for a piecewise-linear one the largest power of two keeping t |u|_inf within
    PIECEWISE_REACH and within a quarter of the case's distance to a kink (0 if the case sits on one)."""
    if name not in spec.piecewise_linear_args:
        return 1.0
    reach = PIECEWISE_REACH
    if spec.kink_distance is not None:
        reach = min(reach, spec.kink_distance(case.config, case.arrays) / 4)
    size = float(np.max(np.abs(u), initial=0.0))
    if reach <= 0 or size == 0:
        return 0.0
    return 2.0 ** math.floor(math.log2(reach / size))


def _backward_at(spec: OpSpec, impl: Implementation, case: Case, v: np.ndarray) -> dict:
    grads = as_grad_dict(spec, impl.backward(v, *ordered_arrays(spec, case.arrays), **spec.hyper(case.config)))
    return {name: np.asarray(g, dtype=np.float64) for name, g in grads.items()}


def adjoint_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation) -> list[Comparison]:
    """<A u, v> = <u, A^T v> for every linear and piecewise-linear argument, through ``impl`` (plug-ins too)."""
    names = [n for n in spec.differentiable if n in spec.linear_args or n in spec.piecewise_linear_args]
    if not names:
        return []
    rng = np.random.default_rng(case.seed ^ 0xAD70)
    y0 = np.asarray(evaluation.y, dtype=np.float64)
    v = rng.standard_normal(y0.shape)
    grads = _backward_at(spec, impl, case, v)
    return [_check_argument(spec, case, evaluation, name, v, grads.get(name), y0, rng) for name in names]


def _check_argument(spec, case, evaluation, name, v, ATv, y0, rng) -> Comparison:
    quantity = quantity_label(name)
    a = np.asarray(case.arrays[name], dtype=np.float64)
    if ATv is None or ATv.shape != a.shape:
        got = "nothing" if ATv is None else f"shape {ATv.shape}"
        return Comparison(ORACLE, quantity, FAIL, np.inf, np.inf, 0.0,
                          note=f"backward called with dy = v returned {got} for {quantity}; expected shape {a.shape}")
    u = direction_for(ATv, rng)
    t = step_for(spec, name, case, u)
    if t == 0.0:
        return Comparison(ORACLE, quantity, KINK, 0.0, 0.0, 0.0,
                          note=f"kink: the case sits on a non-differentiable point ({spec.nondifferentiable}); "
                               f"the pieces of the piecewise-linear map are not defined there, no adjoint verdict")
    plus, minus = a + t * u, a - t * u
    d = plus - minus
    y_plus = evaluation.forward({**case.arrays, name: plus})
    y_minus = evaluation.forward({**case.arrays, name: minus})
    Ad = y_plus - y_minus
    comparison = check_pair(quantity, Ad, v, d, ATv)
    comparison.note += f" (symmetric difference, t = {t:g})"

    # the pieces held (piecewise) / the map is affine (linear) iff the second difference vanishes
    curvature = abs(float(np.sum((y_plus + y_minus - 2 * y0) * v)))
    if curvature > tolerance.KINK_JUMP * max(np.linalg.norm(Ad) * np.linalg.norm(v), tolerance.TINY):
        if name in spec.piecewise_linear_args:
            comparison.verdict = KINK
            comparison.note = (f"kink: the forward changed pieces within +-{t * np.max(np.abs(u)):.1e} of the "
                               f"input ({spec.nondifferentiable}); second difference {curvature:.1e}; "
                               f"no adjoint verdict")
        else:
            comparison.verdict = FAIL
            comparison.note = (f"the forward is not affine in {name} as the spec declares: "
                               f"<f(a + u) + f(a - u) - 2 f(a), v> = {curvature:.3e}; " + comparison.note)
    return comparison
