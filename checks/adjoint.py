"""The adjoint (dot-product) oracle: where an op is linear in an argument, its backward must be the exact transpose.

For an argument a in which the op is affine (``spec.linear_args``), f(a + d) - f(a) = A d for a linear map A, and the
backward called with upstream gradient v returns A^T v. For every u and v

    <A u, v> = <u, A^T v>

exactly, so only rounding separates the two sides (tolerance policy 3 in ``cnn_gradcheck.tolerance``):

    |<A u, v> - <u, A^T v>| <= ADJOINT_RTOL * (|A u|_2 |v|_2 + |u|_2 |A^T v|_2)

No finite-difference truncation enters: a backward off by a relative 1e-10, invisible to finite differences
(resolution 1e-8), fails here.

How A u is obtained from the implementation's own forward, with the other arguments fixed (symmetric form):

    a+ = a + t u,  a- = a - t u,  d = a+ - a-  (computed: the direction actually applied),  A d = f(a+) - f(a-)

t = 1 for affine arguments (exact for any size). For piecewise-linear arguments (``spec.piecewise_linear_args``:
max pooling's routing, ReLU's mask) the active pieces must not change between a- and a+: t is a power of two with
t |u|_inf <= ADJOINT_PIECEWISE_REACH = MARGIN / 8 (and below ADJOINT_KINK_SHARE of the case's kink distance when known), well
inside the MARGIN that generated inputs keep from kinks. Using the computed d instead of 2 t u removes the rounding
of a +- t u; for the selections that make up max pooling and ReLU, f(a+) - f(a-) is then d at the selected
positions, exactly, whatever t is.

The check that the pieces held: f(a+) + f(a-) - 2 f(a) vanishes for an affine map. If it does not (relative to
|A d| |v|, above KINK_JUMP), a kink lay between a- and a+ (piecewise-linear argument: verdict "kink", no gradient
verdict) or the forward is not affine in a as the spec declares (linear argument: a failure that says so).

u is random (random signs, magnitudes in [0.5, 1]); v is aligned with A d (sign(A d) times a random magnitude in
[0.5, 1], random sign where A d is 0). With a random v, <A d, v> would be about |A d| |v| / sqrt(len(y)): the
Cauchy-Schwarz scale would dilute an error by the square root of the output size (a bias gradient off by 1e-10 gave
a relative discrepancy of only 2e-12 on 24 outputs). Aligned, <A d, v> is a fixed fraction of |A d| |v| and a
backward off by a relative e shows as about e / 2 whatever the size (measured: 3e-11 to 5e-11 for e = 1e-10, on
images up to 12x12 with 3 channels). v keeps random magnitudes, so an error cannot hide behind a fixed choice of v. Cost per
argument: two forward calls and one backward call (dy = v). Seeded from the case's seed.

The joint test comes first (``_joint``): one direction u over every linear and piecewise-linear argument at once
(``finite_diff.joint_stencil``, shared with the finite-difference oracle when those are all the differentiable
arguments), A d = f(a + t u) - f(a - t u), and one backward call returning A_a^T v for every argument:
<A d, v> = sum_a <d_a, A_a^T v>. The case's own dy gives a second identity for free, <A d, dy> = <d, g(dy)>, in which
every argument has its share (u is aligned with g(dy) and balanced). The symmetric difference must be exact: the
second difference vanishes (the map is affine along u), or the odd parts at t and 2t agree (degree 2 in t: x * w +
b). The v identity is judged as above; the dy identity by each side's own rounding (policy 3b, ``check_dy_pair``):
dy is independent of A d, so Cauchy-Schwarz would dilute every share by sqrt(len(y)). A relative error e in one
argument's gradient moves the right-hand side by e <d_a, A_a^T w>: an argument's pass
stands where tolerance / |<d_a, A_a^T w>| is at most ADJOINT_JOINT_ACCEPT for one of the two upstream gradients.
Arguments it does not settle (a failure, a kink, a forward not affine as declared, too small a share) are tested
alone as above, so the report names the wrong one.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

import numpy as np

from . import calls, finite_diff, probes, tolerance
from .compare import FAIL, KINK, NA, PASS, Comparison
from .finite_diff import direction_for
from .spec import (Case, Implementation, OpSpec, forward_terms, kink_distance, ordered_arrays,
                   quantity_label)

ORACLE = "adjoint"


_norm = tolerance._norm2  # Euclidean norm without BLAS


def _largest(a) -> float:
    """max |a_i| (0 for an empty array) in two passes without a temporary |a|."""
    a = np.asarray(a, dtype=np.float64)
    return max(float(np.max(a, initial=0.0)), -float(np.min(a, initial=0.0)))


def _parts(x) -> list[np.ndarray]:
    """The float64 arrays of x: a dict's values in order (the arguments of a joint direction), or x itself."""
    return [np.asarray(a, dtype=np.float64) for a in (x.values() if isinstance(x, Mapping) else [x])]


def dot_product_test(Au, v, u, ATv) -> tuple[float, float, float, float]:
    """(<A u, v>, <u, A^T v>, |difference|, Cauchy-Schwarz scale |Au||v| + |u||A^T v|). u and A^T v may be dicts
    of the same keys (a joint direction over several arguments): then <u, A^T v> = sum_a <u_a, A_a^T v> and
    |u|^2 = sum_a |u_a|^2, without concatenating them (pairwise sums inside each part)."""
    Au, v = (np.asarray(a, dtype=np.float64) for a in (Au, v))
    us, gs = _parts(u), _parts(ATv)
    lhs, rhs = float(np.sum(Au * v)), float(sum(np.sum(a * b) for a, b in zip(us, gs)))
    norm = lambda parts: math.sqrt(sum(_norm(a) ** 2 for a in parts))  # noqa: E731
    scale = float(_norm(Au) * _norm(v) + norm(us) * norm(gs))
    return lhs, rhs, abs(lhs - rhs), max(scale, tolerance.TINY)


def check_pair(quantity: str, Au, v, u, ATv, note: str = "", dtype: str = "float64") -> Comparison:
    """One dot-product test as a Comparison (for the oracle, and for any linear map with a claimed transpose)."""
    lhs, rhs, err, scale = dot_product_test(Au, v, u, ATv)
    tol = tolerance.adjoint_tolerance(scale, dtype)
    # in terms of the gradient's own relative error: with v aligned, an error e shows as about e / 2
    resolution = tolerance.resolution(tol, scale) / tolerance.ADJOINT_VISIBLE_SHARE
    if tolerance.too_coarse(tol, scale):  # policy 7: in float16/bfloat16 the bound exceeds Cauchy-Schwarz itself
        return Comparison(ORACLE, quantity, NA, err, err / scale, tol, None, lhs, rhs,
                          note=f"not applicable: at {dtype} the adjoint tolerance is {tol / scale:.0%} of the "
                               f"Cauchy-Schwarz bound, which decides nothing", resolution=resolution)
    verdict = PASS if err <= tol else FAIL
    return Comparison(ORACLE, quantity, verdict, err, err / scale, tol, None, lhs, rhs,
                      note=note or f"<A u, v> = {lhs:.17g} (forward) vs <u, A^T v> = {rhs:.17g} (backward)",
                      resolution=resolution)


def check_dy_pair(quantity: str, Ad, dy, d: dict, grads: dict, noise: float, dtype: str = "float64") -> Comparison:
    """The joint test's second identity, <A d, dy> = sum_a <d_a, g_a(dy)>, with the case's own dy and the
    gradients the evaluation holds (no call): judged by policy 3b, the forward's realistic ``noise`` of one
    evaluation of <dy, f> (``finite_diff.Stencil.noise``) and the backward's rounding per argument."""
    lhs = float(np.sum(np.asarray(Ad, dtype=np.float64) * np.asarray(dy, dtype=np.float64)))
    rhs = float(sum(np.sum(d[n] * np.asarray(g, dtype=np.float64)) for n, g in grads.items()))
    backward = float(sum(_norm(d[n]) * _norm(g) for n, g in grads.items()))
    tol = tolerance.adjoint_dy_tolerance(noise, backward, dtype)
    scale = max(backward, abs(lhs), tolerance.TINY)
    err = abs(lhs - rhs)
    verdict = NA if tolerance.too_coarse(tol, scale) else PASS if err <= tol else FAIL
    return Comparison(ORACLE, quantity, verdict, err, err / scale, tol, None, lhs, rhs,
                      note=f"<A u, dy> = {lhs:.17g} (forward) vs <u, A^T dy> = {rhs:.17g} (backward)",
                      resolution=tolerance.resolution(tol, scale))


def step_for(spec: OpSpec, name: str, case: Case, u: np.ndarray) -> float:
    """t: 1 for an affine argument; for a piecewise-linear one the largest power of two keeping t |u|_inf within
    ADJOINT_PIECEWISE_REACH and within ADJOINT_KINK_SHARE of the case's distance to a kink (0 if the case sits on
    one)."""
    if name not in spec.piecewise_linear_args:
        return 1.0
    reach = tolerance.ADJOINT_PIECEWISE_REACH
    reach = min(reach, kink_distance(spec, case) * tolerance.ADJOINT_KINK_SHARE)
    size = _largest(u)
    if reach <= 0 or size == 0:
        return 0.0
    return 2.0 ** math.floor(math.log2(reach / size))


def _backward_at(spec: OpSpec, impl: Implementation, case: Case, v: np.ndarray, names) -> dict[str, np.ndarray]:
    """A^T v: the implementation's gradients of ``names`` for upstream gradient v (one backward call), with the
    guards of ``cnn_gradcheck.calls`` (a call that raises, a wrong shape, NaN: an ImplementationError naming op and
    configuration)."""
    arrays = [np.array(a, copy=True) for a in ordered_arrays(spec, case.arrays)]
    role = "backward (adjoint test, called with dy = v)"
    out = {}
    try:
        grads = calls.gradient_tuple(spec, calls.call_user(impl.backward, [v, *arrays], spec.hyper(case.config),
                                                           role), role)
        for name in names:
            what = f"the gradient {quantity_label(name)} for dy = v"
            out[name], _ = calls.to_float64(grads[name], what)
            calls.check_shape(out[name], case.arrays[name].shape, what, f" (the shape of {name})")
            calls.check_finite(out[name], what)
    except calls.ImplementationError as e:
        raise e.at(spec.name, impl.name, case.describe()) from None
    return out


def exact_step(spec: OpSpec, case: Case, directions) -> float:
    """The step t at which the symmetric differences f(a + k t u) - f(a - k t u), k = 1, 2, along a joint direction
    are exact in their linear term: 1 where every moved argument is affine (``linear_args``); where some are
    piecewise linear, half the smallest ``step_for`` (the stencil reaches 2 t). 0.0 where a moved argument is
    neither (a smooth nonlinear forward) or the case sits on a kink. (Exact for forwards of degree <= 2 in t, such
    as convolution's x * w + b; a forward multilinear in three moved arguments is caught by the checks below.)"""
    steps = [1.0 if n in spec.linear_args else step_for(spec, n, case, u) / 2 if n in spec.piecewise_linear_args
             else 0.0 for n, u in directions.items()]
    return min(steps, default=0.0)


def adjoint_oracle(spec: OpSpec, impl: Implementation, case: Case, evaluation) -> list[Comparison]:
    """<A u, v> = <u, A^T v> for every linear and piecewise-linear argument, through ``impl`` (plug-ins too): one
    joint test over all of them first (two forward calls, shared with finite differences where possible, and one
    backward call), then each argument alone where the joint test does not settle it."""
    names = [n for n in spec.differentiable if n in spec.linear_args or n in spec.piecewise_linear_args]
    rng = np.random.default_rng(case.seed ^ 0xAD70)
    joint = _joint(spec, impl, case, evaluation, names, np.random.default_rng(case.seed ^ 0xA770)) if names else {}
    return [joint[name] if name in joint else _check_argument(spec, impl, case, evaluation, name, rng)
            for name in names]


def _joint(spec, impl, case, evaluation, names, rng) -> dict[str, Comparison]:
    """The dot-product test along the joint direction of ``names`` (``finite_diff.joint_stencil``): A d =
    f(a + t u) - f(a - t u) over all of them at once, A^T v from one backward call, <A d, v> = sum_a <d_a, A_a^T v>.
    It stands only where the symmetric difference is exact (the second difference vanishes: the map is affine along
    u; or the odd parts at t and 2 t agree: degree 2, x * w + b) and the test passes; then for each argument whose
    share of the inner product resolves ADJOINT_JOINT_ACCEPT. Returns those arguments' comparisons ({} otherwise:
    each argument is tested alone, which also names a kink or a forward that is not affine)."""
    stencil = finite_diff.joint_stencil(evaluation, case.arrays, names, case.seed)
    t = exact_step(spec, case, stencil.directions)
    if t == 0.0 or evaluation.dtype != "float64" and any(
            tolerance.adjoint_step_unresolved(t * _largest(u), _largest(stencil.start[n]), evaluation.dtype)
            for n, u in stencil.directions.items()):  # (never in float64: d is exact there)
        return {}
    Ad = stencil.at(t) - stencil.at(-t)
    plus, minus = stencil.moved(t), stencil.moved(-t)
    d = {n: plus[n] - minus[n] for n in names}
    v = direction_for(Ad, rng)
    pieces = _norm(Ad) * _norm(v)
    second = abs(float(np.sum((stencil.at(t) + stencil.at(-t) - 2 * stencil.at(0.0)) * v)))
    read = [t, -t]  # the steps whose outputs the test reads (their rounding sizes policy 3b's noise)
    if tolerance.pieces_changed(second, pieces, evaluation.dtype):
        odd = abs(float(np.sum((stencil.at(2 * t) - stencil.at(-2 * t) - 2 * Ad) * v)))
        if tolerance.pieces_changed(odd, pieces, evaluation.dtype):
            return {}
        read += [2 * t, -2 * t]
    ATv = _backward_at(spec, impl, case, v, names)
    labels = [quantity_label(n) for n in names]
    # two upstream gradients, two tests: v aligned with A d (one backward call; a backward that ignores its dy
    # fails it) and the case's own dy, whose gradients the evaluation already holds (u is aligned with them, so
    # every argument has its share of <d, A^T dy>: ``finite_diff.balanced``)
    grads = {n: evaluation.grads[n] for n in names}
    noise = stencil.noise(read, case.dy, grads, forward_terms(spec, case.config),
                          evaluation.dtype, probes.low_precision_magnitude(spec, case, evaluation),
                          probes.forward_error(spec, case))
    tests = [(check_pair(" + ".join(labels), Ad, v, d, {n: ATv[n] for n in names}, dtype=evaluation.dtype), ATv),
             (check_dy_pair(" + ".join(labels), Ad, case.dy, d, grads, noise, evaluation.dtype), grads)]
    if any(test.verdict != PASS for test, _ in tests):
        return {}
    out = {}
    for n, label in zip(names, labels):
        # a relative error e in this argument's gradient moves <d, A^T w> by e <d_a, A_a^T w>
        resolution, test = min(((test.tolerance / share if (share := abs(tolerance._dot(d[n], grads[n]))) > 0
                                 else np.inf, test) for test, grads in tests), key=lambda pair: pair[0])
        if resolution <= tolerance.ADJOINT_JOINT_ACCEPT:
            out[n] = replace(test, quantity=label, resolution=resolution,
                             note=f"joint direction over {', '.join(labels)} (t = {t:g}; upstream gradients v and "
                                  f"dy): {test.note}")
    return out


def _check_argument(spec, impl, case, evaluation, name, rng) -> Comparison:
    quantity = quantity_label(name)
    a = np.asarray(case.arrays[name], dtype=np.float64)
    u = direction_for(a, rng, aligned=False)
    t = step_for(spec, name, case, u)
    if t == 0.0:
        return Comparison(ORACLE, quantity, KINK, 0.0, 0.0, 0.0,
                          note=f"kink: the case sits on a non-differentiable point ({spec.nondifferentiable}); "
                               f"the pieces of the piecewise-linear map are not defined there, no adjoint verdict")
    step, scale = t * float(np.max(np.abs(u), initial=0.0)), float(np.max(np.abs(a), initial=0.0))
    if tolerance.adjoint_step_unresolved(step, scale, evaluation.dtype):
        return Comparison(ORACLE, quantity, NA, 0.0, 0.0, 0.0,
                          note=f"not applicable: the step t |u| = {step:.2g} is below {evaluation.dtype}'s resolution "
                               f"of inputs of size {scale:.2g} (the stored a +- t u would not move as the test "
                               f"assumes); the exact oracles decide")
    plus, minus = a + t * u, a - t * u
    d = plus - minus
    y_plus = evaluation.forward({**case.arrays, name: plus})
    y_minus = evaluation.forward({**case.arrays, name: minus})
    Ad = y_plus - y_minus
    v = direction_for(Ad, rng)
    ATv = _backward_at(spec, impl, case, v, [name])[name]
    comparison = check_pair(quantity, Ad, v, d, ATv, dtype=evaluation.dtype)
    if comparison.verdict == NA:
        return comparison
    comparison.note += f" (symmetric difference, t = {t:g})"

    # the pieces held (piecewise) / the map is affine (linear) iff the second difference vanishes
    y0 = np.asarray(evaluation.y, dtype=np.float64)
    curvature = abs(float(np.sum((y_plus + y_minus - 2 * y0) * v)))
    # a lower-precision plug-in's outputs carry its rounding: the second difference is then judged at that level
    if tolerance.pieces_changed(curvature, _norm(Ad) * _norm(v), evaluation.dtype):
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
