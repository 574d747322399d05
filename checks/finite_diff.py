"""Finite-difference oracle: directional derivatives by central differences with Richardson extrapolation.

For an argument a, a direction v and the upstream gradient dy, the scalar phi(t) = <dy, f(a + t v)> has
phi'(0) = <dE/da, v>, which the backward claims is sum_i g_i v_i. Central differences

    D(h)  = (phi(h) - phi(-h)) / 2h                      error O(h^2),  at steps h/2, h, 2h, 4h
    D4(h) = (4 D(h) - D(2h)) / 3                         error O(h^4)
    D6(h) = (16 D4(h) - D4(2h)) / 15                     error O(h^6),  at h/2 and h
    D8    = (64 D6(h/2) - D6(h)) / 63                    error O(h^8)

cost 8 forward calls per direction, whatever the number of elements: the check's cost does not grow with the
input.

The short stencil comes first (``short_check``): D(t), D(2t) and D4 = (4 D(t) - D(2t)) / 3, four forward calls,
judged with |D(t) - D4| (D(t)'s own error estimate, an over-estimate of D4's). Its pass stands where every
argument's share resolves FD_SHORT_ACCEPT; a disagreement, a kink nearby or too coarse a resolution hands the
direction to the full stencil above. For an op that is (piecewise) linear in every argument the short stencil runs
at the adjoint test's step (t = 1 for affine arguments), where the differences are exact up to rounding, and the
adjoint test reads the same forward calls (``Stencil``): a passing case of such an op costs 5 forward calls
(the evaluation and four) and 2 backward calls (the evaluation and the adjoint test's one). |D6(h/2) - D8| estimates the truncation error (tolerance policy 2 in ``cnn_gradcheck.tolerance``). One level
fewer (D6 judged by |D4 - D6|) was not enough: where the h^4 and h^6 terms of the table nearly cancel at h, |D4 - D6|
underestimates D6's error tenfold (relu_cnn, seed 4678: D6 off by 1.05e-4, estimate 1.0e-5); the last level's
change then still bounds its error (there: 1.6e-6 against a true 3e-8).

One-sided differences from the same evaluations reveal kinks: for a smooth function
(phi(h) - phi(0))/h - (phi(0) - phi(-h))/h = h phi''(0) + O(h^3) doubles with h; a kink inside the stencil makes
it jump by O(1) instead. Then the oracle reports a kink, not a gradient mismatch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from . import tolerance
from .compare import FAIL, KINK, NA, PASS, Comparison

#: the steps of the stencil, in units of h
STEPS = (0.5, 1, 2, 4)


def _richardson(d: dict) -> tuple:
    """The Richardson table from central differences d[k] = D(k h): (D6(h/2), D8). ``combine`` works on numbers
    and on weight dictionaries alike (the weights give the rounding amplification below)."""
    def combine(a, b, p):  # (p a - b) / (p - 1)
        if isinstance(a, dict):
            return {k: (p * a.get(k, 0.0) - b.get(k, 0.0)) / (p - 1) for k in set(a) | set(b)}
        return (p * a - b) / (p - 1)
    d4 = {k: combine(d[k], d[2 * k], 4) for k in STEPS[:-1]}
    d6 = {k: combine(d4[k], d4[2 * k], 16) for k in STEPS[:-2]}
    return d6[0.5], combine(d6[0.5], d6[1], 64)


#: D8 written as weights on the differences phi(kh) - phi(-kh) (computed from the table, not typed)
D8_WEIGHTS = _richardson({k: {k: 1 / (2 * k)} for k in STEPS})[1]
#: sum of |weights| over the eight evaluations: how much the forward's rounding is amplified (times 1/h)
D8_NOISE = 2 * sum(abs(w) for w in D8_WEIGHTS.values())
#: D4 = (4 D(t) - D(2t)) / 3 as weights on phi(kt) - phi(-kt), and its rounding amplification (times 1/t): 1.5
D4_WEIGHTS = {1: 4 / 3 / 2, 2: -1 / 3 / 4}
D4_NOISE = 2 * sum(abs(w) for w in D4_WEIGHTS.values())


def direction_for(grad: np.ndarray, rng: np.random.Generator, aligned: bool = True) -> np.ndarray:
    """A direction with |v|_inf <= 1. Aligned: sign(g) times a random magnitude in [0.5, 1], so that a scaled
    gradient shows fully in <g, v>; where g is 0 the sign is random, so gradient mass put in the wrong place shows.
    One uniform draw r in [-1, 1) per element gives both: sign(r) and |r| are independent, the magnitude is
    0.5 + |r| / 2. Few passes over the array, in place (large inputs pay for each): the sign is copied from g, or
    from r where g is 0 (g is finite here: the guards reject a NaN gradient or output before any direction)."""
    r = rng.uniform(-1.0, 1.0, size=np.shape(grad))
    magnitude = np.abs(r, out=np.empty(np.shape(grad)))  # an array also for a scalar g (0-d), to work in place
    magnitude *= 0.5
    magnitude += 0.5
    if not aligned:
        return np.copysign(magnitude, r, out=magnitude)
    g = np.asarray(grad, dtype=np.float64)
    return np.copysign(magnitude, np.where(g != 0, g, r), out=magnitude)


def directional_check(phi: Callable[[float], float], phi0: float, claimed: float, scale: float,
                      noise: float, h: float, quantity: str, kink_reason: str = "",
                      dtype: str = "float64") -> Comparison:
    """Compare a claimed directional derivative with finite differences of phi (one scalar per evaluation).

    scale: sum_i |g_i v_i| (the claimed derivative without cancellation); noise: the rounding noise of one
    evaluation of phi (``tolerance.output_noise``), which the differences amplify by 1/h.
    """
    values = {k: (phi(k * h), phi(-k * h)) for k in STEPS}
    d6, d8 = _richardson({k: (p - m) / (2 * k * h) for k, (p, m) in values.items()})
    scale = max(scale, abs(d8), tolerance.TINY)
    truncation = abs(d6 - d8)
    tol = tolerance.fd_tolerance(truncation, noise, D8_NOISE, h, scale)
    resolution = tolerance.resolution(tol, scale)
    err = abs(claimed - d8)

    # one-sided jumps at h, 2h, 4h: about h*phi'' (doubling) when smooth, O(1) and not doubling at a kink; the
    # forward's own rounding moves them by up to tolerance.jump_noise (policy 6), which is not a kink
    jumps = [(values[k][0] - 2 * phi0 + values[k][1]) / (k * h) for k in (1, 2, 4)]
    if kink_reason or tolerance.jumps_show_kink(jumps, scale, noise, h):
        why = kink_reason or (
            f"the forward is not smooth within +-{tolerance.FD_STENCIL_REACH:.1e} along the test direction: "
            f"one-sided differences "
            f"jump by {jumps[0]:.3e}, {jumps[1]:.3e}, {jumps[2]:.3e} at steps h, 2h, 4h instead of growing in "
            f"proportion to h")
        return Comparison("finite differences", quantity, KINK, err, err / scale, tol, None, d8, claimed,
                          note=f"kink: {why}; this point is not differentiable, so no gradient verdict is given",
                          resolution=resolution)
    if tolerance.too_coarse(tol, scale):  # policy 7: the forward's rounding, amplified by 1/h, swamps the derivative
        return Comparison("finite differences", quantity, NA, err, err / scale, tol, None, d8, claimed,
                          note=f"not applicable: at {dtype} the forward's rounding amplified by 1/h gives a tolerance "
                               f"of {tol / scale:.0%} of the derivative's scale, which decides nothing",
                          resolution=resolution)
    verdict = PASS if err <= tol else FAIL
    return Comparison("finite differences", quantity, verdict, err, err / scale, tol, None, d8, claimed,
                      note=f"directional derivative <{quantity}, v> (h={h:.1e}, truncation estimate "
                           f"{truncation:.1e})", resolution=resolution)


def check_argument(forward: Callable[[Mapping[str, np.ndarray]], np.ndarray], arrays: Mapping[str, np.ndarray],
                   name: str, grad: np.ndarray, dy: np.ndarray, y0: np.ndarray, direction: np.ndarray,
                   reduction_length: int, kink_reason: str = "", dtype: str = "float64",
                   magnitude=None, forward_error=None) -> Comparison:
    """Directional finite-difference check of the gradient of one argument. ``magnitude``: the sizes of the
    forward's summed terms; ``forward_error``: the forward's rounding measured on a float32 evaluation (both from
    the oracle's side, policy 2's noise in ``tolerance.output_noise``)."""
    return check_joint(forward, arrays, {name: grad}, dy, y0, {name: direction}, reduction_length, kink_reason,
                       dtype, magnitude, forward_error, f"d{name}")


def _step(a: np.ndarray, t: float, u: np.ndarray) -> np.ndarray:
    """a + t u in one new array (t u in place of the copy, then a added: no temporary)."""
    out = np.multiply(u, t)
    out += a
    return out


class Stencil:
    """The forward along one joint direction u over several arguments: f(a + t u) for each step t a check asks for,
    computed once and shared by the oracles that read it (finite differences, the adjoint test), so that a case
    costs forward calls once. t = 0 is the evaluation's own output."""

    def __init__(self, forward: Callable[[Mapping[str, np.ndarray]], np.ndarray], arrays: Mapping[str, np.ndarray],
                 directions: Mapping[str, np.ndarray], y0: np.ndarray):
        self.forward, self.arrays = forward, arrays
        self.directions = {n: np.asarray(v, dtype=np.float64) for n, v in directions.items()}
        self.start = {n: np.asarray(arrays[n], dtype=np.float64) for n in directions}
        self.outputs = {0.0: np.asarray(y0, dtype=np.float64)}
        self.noises: dict[tuple, float] = {}

    def moved(self, t: float) -> dict[str, np.ndarray]:
        """a + t u for the moved arguments (as stored: what the implementation receives), fresh arrays every time:
        what one call was handed is not read again (an implementation that wrote to its inputs in a perturbed call
        cannot change a later difference d = (a + t u) - (a - t u))."""
        return {n: _step(self.start[n], t, v) for n, v in self.directions.items()}

    def at(self, t: float) -> np.ndarray:
        """f(a + t u), one forward call the first time."""
        if t not in self.outputs:
            self.outputs[t] = np.asarray(self.forward({**self.arrays, **self.moved(t)}), dtype=np.float64)
        return self.outputs[t]

    def noise(self, steps, dy, grads: Mapping[str, np.ndarray], reduction_length: int, dtype: str = "float64",
              magnitude=None, forward_error=None) -> float:
        """Policy 2's rounding noise of one phi(t) = <dy, f(a + t u)> over ``steps`` (``tolerance.output_noise``),
        computed once per set of steps: the finite-difference oracle and the adjoint test's second identity read
        the same number. Each phi(t) carries the rounding of f(a + t u) at its own size: larger than f(a)'s where
        t u is large (t = 1), and not 0 where f(a) is (a loss at its exact minimum, y = t): the size is the largest
        over every output at those steps. (A stencil belongs to one case: dy, K and the probes are the case's.)
        Where the noise over more steps is known already, that one is returned: an over-estimate (a larger size,
        a longer reach), so never a narrower tolerance, and no second pass over the outputs."""
        key = (frozenset(steps), dtype)
        known = next((k for k in self.noises if k[1] == dtype and k[0] >= key[0]), None)
        if known is not None:
            return self.noises[known]
        if key not in self.noises:
            size = np.abs(self.outputs[0.0])
            for t in steps:
                size = np.maximum(size, np.abs(self.at(t)))
            if magnitude is not None:
                size = np.maximum(size, np.abs(np.asarray(magnitude, dtype=np.float64)))
            reach = max(abs(t) for t in steps)
            self.noises[key] = tolerance.output_noise(dy, self.outputs[0.0], reduction_length, dtype, size,
                                                      forward_error, _input_sensitivity(grads, self, reach))
        return self.noises[key]


def _input_sensitivity(grads: Mapping[str, np.ndarray], stencil: Stencil, reach: float) -> float:
    """|g (|a| + reach |u|)|_2: the moved inputs are stored at the plug-in's precision at every step, which moves
    phi by eps times this (policy 2's input rounding, ``tolerance.output_noise``)."""
    def weighted(n, v):  # g (|a| + reach |u|), in place
        w = np.abs(v)
        w *= reach
        w += np.abs(stencil.start[n])
        w *= np.asarray(grads[n], dtype=np.float64)
        return w
    return math.sqrt(sum(tolerance._norm2(weighted(n, v)) ** 2 for n, v in stencil.directions.items()))


def short_steps(t: float) -> list[float]:
    """The short stencil's steps: t, -t, 2t, -2t."""
    return [s * k * t for k in D4_WEIGHTS for s in (1, -1)]


def short_check(phi: Callable[[float], float], claimed: float, scale: float, noise: float, t: float,
                quantity: str, dtype: str = "float64") -> Comparison:
    """Policy 2 on the short stencil: central differences at t and 2t (four forward calls),

        D4 = (4 D(t) - D(2t)) / 3                 error O(t^4),  judged with |D(t) - D4| as its truncation estimate

    |D(t) - D4| is the error estimate of the O(t^2) difference D(t): an over-estimate of D4's, so the tolerance can
    only be too wide, never too narrow, and a pass is sound at the resolution it records. No kink verdict is given
    here: a kink inside the stencil shows as a disagreement, and the full stencil (``directional_check``) decides."""
    odd = {k: phi(k * t) - phi(-k * t) for k in D4_WEIGHTS}
    d4 = sum(w * odd[k] for k, w in D4_WEIGHTS.items()) / t
    d = {k: odd[k] / (2 * k * t) for k in D4_WEIGHTS}
    scale = max(scale, abs(d4), tolerance.TINY)
    truncation = abs(d[1] - d4)
    tol = tolerance.fd_tolerance(truncation, noise, D4_NOISE, t, scale)
    resolution = tolerance.resolution(tol, scale)
    err = abs(claimed - d4)
    if tolerance.too_coarse(tol, scale):
        verdict, note = NA, "not applicable: the short stencil's tolerance decides nothing"
    else:
        verdict = PASS if err <= tol else FAIL
        note = f"directional derivative <{quantity}, v> (short stencil, t={t:.2g}, truncation estimate {truncation:.1e})"
    return Comparison("finite differences", quantity, verdict, err, err / scale, tol, None, d4, claimed, note=note,
                      resolution=resolution)


def check_joint(forward: Callable[[Mapping[str, np.ndarray]], np.ndarray], arrays: Mapping[str, np.ndarray],
                grads: Mapping[str, np.ndarray], dy: np.ndarray, y0: np.ndarray,
                directions: Mapping[str, np.ndarray], reduction_length: int, kink_reason: str = "",
                dtype: str = "float64", magnitude=None, forward_error=None, quantity: str = "", *,
                stencil: Stencil | None = None, short_step: float | None = None) -> Comparison:
    """One directional check along a joint direction over several arguments: phi(t) = <dy, f(a + t v_a, ...)>,
    phi'(0) = sum over the arguments of <g_a, v_a>, whatever the number of arguments.

    With ``short_step`` t, the short stencil (``short_check``, four forward calls) is tried first; its pass stands
    when the resolution of every argument's share, tolerance / sum|g_a v_a|, is at most FD_SHORT_ACCEPT. Otherwise (a disagreement, a kink nearby, too coarse a
    resolution) the full stencil decides: D8 at h = FD_STEP (``directional_check``, eight more calls)."""
    dy = np.asarray(dy, dtype=np.float64)
    stencil = stencil or Stencil(forward, arrays, directions, y0)

    def phi(t: float) -> float:
        return float(np.sum(dy * stencil.at(t)))

    claimed, shares = 0.0, []
    for n, v in stencil.directions.items():  # <g_a, v_a> and sum|g_a v_a|, one product array per argument
        p = np.asarray(grads[n], dtype=np.float64) * v
        claimed += float(np.sum(p))
        shares.append(float(np.sum(np.abs(p, out=p))))
    scale = float(sum(shares))

    def noise(steps) -> float:
        return stencil.noise(steps, dy, grads, reduction_length, dtype, magnitude, forward_error)

    if short_step and not kink_reason:
        steps = short_steps(short_step)
        first = short_check(phi, claimed, scale, noise(steps), short_step, quantity, dtype)
        # the pass stands where every argument's share of the derivative resolves FD_SHORT_ACCEPT
        if first.verdict == PASS and all(first.tolerance <= tolerance.FD_SHORT_ACCEPT * s for s in shares if s > 0):
            return first
    h = tolerance.FD_STEP
    steps = [s * k * h for k in STEPS for s in (1, -1)]
    return directional_check(phi, phi(0.0), claimed, scale, noise(steps), h, quantity, kink_reason,
                             dtype)


def directions_for(grads: Mapping[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """One aligned direction per argument (``direction_for``), seeded from the case's seed: reproducible."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    return {n: direction_for(g, rng) for n, g in grads.items()}


def joint_stencil(evaluation, arrays: Mapping[str, np.ndarray], names, seed: int) -> Stencil:
    """The stencil along the joint direction over ``names`` (per-argument directions ``balanced`` against the
    claimed gradients), kept on the evaluation: the finite-difference oracle and the adjoint test of the same
    arguments read the same forward calls."""
    key = tuple(names)
    if key not in evaluation.stencils:
        grads = {n: evaluation.grads[n] for n in names}
        evaluation.stencils[key] = Stencil(evaluation.forward, arrays, balanced(directions_for(grads, seed), grads),
                                           evaluation.y)
    return evaluation.stencils[key]


def share(grad, direction) -> float:
    """sum_i |g_i v_i|: an argument's share of a directional derivative, without cancellation (one product array,
    its absolute value in place)."""
    p = np.asarray(grad, dtype=np.float64) * direction
    return float(np.sum(np.abs(p, out=p)))


def balanced(directions: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-argument directions scaled so that every argument adds the same sum |g v| to the joint derivative
    (the smallest one's; none is scaled up, so |v|_inf <= 1 holds): a 1e-6 error in a small bias gradient is not
    diluted by a large weight gradient beside it. Arguments whose gradient is 0 keep their direction; one argument
    alone keeps its own."""
    if len(directions) == 1:
        return dict(directions)
    sizes = {n: share(grads[n], v) for n, v in directions.items()}
    smallest = min((s for s in sizes.values() if s > 0), default=0.0)
    return {n: v * (smallest / sizes[n] if sizes[n] > 0 else 1.0) for n, v in directions.items()}


@dataclass
class ElementwiseGradient:
    """dy^T J estimated one element at a time: ``estimate`` holds the D8 values; ``elements`` (when a claimed
    gradient was given) maps each index to its directional_check along the unit direction of that element, judged
    by tolerance policy 2 with that element's own truncation and rounding estimates."""

    estimate: np.ndarray
    elements: dict[tuple, Comparison] = field(default_factory=dict)


def fd_gradient(forward: Callable[[Mapping[str, np.ndarray]], np.ndarray], arrays: Mapping[str, np.ndarray],
                name: str, dy: np.ndarray, claimed: np.ndarray | None = None, *, y0: np.ndarray | None = None,
                reduction_length: int = 1, kink_reason: str = "", dtype: str = "float64",
                magnitude=None, forward_error=None) -> ElementwiseGradient:
    """The full vector-Jacobian product dy^T J by finite differences, one unit direction e_i per element
    (8 forward calls per element: only for small inputs, whole-network checks and locating a failure). Each
    element is check_argument along e_i, so the Richardson, truncation, rounding and kink logic is the
    directional check's; ``claimed`` (the gradient to judge, default zeros) gives the elements' verdicts."""
    x = np.asarray(arrays[name], dtype=np.float64)
    judged = claimed is not None
    claimed = np.zeros_like(x) if claimed is None else np.asarray(claimed, dtype=np.float64)
    y0 = np.asarray(forward(arrays), dtype=np.float64) if y0 is None else y0
    out = ElementwiseGradient(np.zeros_like(x))
    for index in np.ndindex(x.shape):
        unit = np.zeros_like(x)
        unit[index] = 1.0
        c = check_argument(forward, arrays, name, claimed, dy, y0, unit, reduction_length, kink_reason, dtype,
                           magnitude, forward_error)
        out.estimate[index] = c.expected
        if judged:
            out.elements[tuple(int(i) for i in index)] = c
    return out
