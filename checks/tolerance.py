"""The tolerance policy: every number the harness compares against is derived here, and only here.

Each oracle produces an estimate E of a quantity that the implementation under test reports as G. A comparison
passes when |G - E| <= tol, with tol built from the precision of the arithmetic and, for finite differences, the
step. All checks run in float64 (eps = 2.2e-16) unless a plug-in computes in a lower precision; then that dtype's
eps enters the same formulas.

The rounding model (one for every oracle; docs/rounding.md): a quantity's rounding noise is *estimated* from the
oracle's side, never declared by a spec author and never read from the result under test. Three facts enter it:
the arithmetic inside the op (sums of K terms), the noise the op really carries at this point (measured on float32
evaluations of the torch op: cancellation included), and the inputs' own rounding carried through the op (its
condition). Every tolerance has a floor from the inputs' scale, so an exact 0 or an exact constant output does not
collapse it to nothing -- except where the op really is locally constant (softmax cross-entropy of one class), where
the floor is 0 too, and a gradient off by 2^-54 there is still seen; where such an op's oracle computes its zero
gradient as a rounding residue (LayerNorm over one element), float64 realisations of that residue size it (1b).

1. Two exact computations of the same quantity (PyTorch autograd, the loop reference, the implementation):
   the only disagreement is rounding. Norm-wise (infinity norm), the largest of

   1a. the arithmetic, worst case: ROUNDING_SAFETY * eps * K * max(max|E|, max|M|) (Higham, "Accuracy and
       Stability of Numerical Algorithms", sec. 3.1: |fl(sum) - sum| <= K eps sum|terms|). M is the magnitude of
       the summed terms: the same op on |inputs| with upstream gradient |dy| (exact for multilinear ops:
       convolution, dense, pooling). A spec may still declare term sizes (``OpSpec.magnitudes``), which then
       count where they are the larger; three built-in specs keep one, each for a residue the probes cannot size
       (docs/rounding.md): relu_cnn (read by whole-network checks), sigmoid/tanh when saturated, and LayerNorm's
       dgamma over rows of one value.
   1b. the measured noise: ESTIMATE_SAFETY * eps * max_r |q32_r - q64_r| / eps(float32), over PROBE_SAMPLES
       realisations r: the torch op with its inputs stored and computed in float32, at the case and at points
       jittered by PROBE_JITTER (``probes.rounding_estimates``; drawn lazily: one realisation first, all of them
       only for a comparison that would fail with one, since more can only widen the tolerance). It sees what |inputs| cannot: cancellation inside
       the op (BatchNorm's dx over two elements, 1 - tanh^2, f (1 - f), softmax's y (dy - sum y dy), p - t, a
       saturated sigmoid deep in a network: toolbox_cnn's db1) and the inputs' own rounding (logits of 800 move by
       ~1e-13 in float64, ~5e-5 in float32). Scaled by eps(dtype) / eps(float32) to the plug-in's precision.
       For a gradient the further realisations include the oracle's own precision: |g64(c dy) / c - g64(dy)| /
       eps(float64) for c = 2^k + 1, k in PROBE_DY_SHIFTS (``probes._realised_gradients``). A gradient is exactly
       linear in dy (dy^T J), so g(c dy) / c is the same exact quantity with every product with dy, and every sum
       after it, rounded afresh; c dy and c g64 are split error-free (TwoSum), so the difference is the backward's
       own rounding, not that of c dy or of a division (which would add ~eps |g|). This is the floor of a
       gradient whose exact value is 0 but whose oracle value is a rounding residue: LayerNorm over one element
       (D = 1) is y = beta whatever x is, and torch computes dx = fl((rstd dy) gamma) - fl((dy gamma) rstd), a
       residue up to ~eps |dy gamma| rstd (2.8e-14 at eps = 1e-5; 0 two times in three). The terms it combines
       (dy gamma rstd, twice) show nowhere from outside: the map is exactly constant in x, so the op on |inputs|
       (1a: x - mean = 0) and every derivative of it (1c) are exactly 0, and the float32 probe's own residue is 0
       two times in three, independently of float64's, and scaled by eps(float64) / eps(float32) it says nothing of
       float64's (the tolerance was 2e-22). A float64 realisation is another residue of the same size, or 0 and
       then |0 - g64| is torch's residue itself: the tolerance is ESTIMATE_SAFETY times the residue's size, the
       real rounding of the oracle (measured over 900 cases of a nonzero residue: max_c |g_c - g64| between
       |g64| / 3 and 1.9 eps |dy gamma| rstd), and no wider where the gradient is not a residue (a gradient off
       by 1e-6 fails as before: tests/test_rounding_floor.py).
   1c. the floor: ROUNDING_SAFETY * eps * sum_i |dq/dx_i| |x_i| (the inputs' rounding through the op, first
       order); for the forward from the float64 gradient, sum_i |g_i| |x_i| / sum_j |dy_j| (for a loss exactly
       sum_i |dL/dx_i| |x_i|): a cross-entropy whose exact loss is 0 gets eps, not 7.9e-323.

   With K <= 10^3 in generated cases 1a is <= 2e-12 in float64, 1b and 1c of the order of eps times the op's
   condition: a relative error of 1e-6 fails.

2. Finite differences along a direction v (``cnn_gradcheck.finite_diff``). With step h, central differences at h/2,
   h, 2h, 4h are combined by Richardson extrapolation into an O(h^8) estimate D8; D6(h/2) is kept beside it:

       tol   = FD_SAFETY * (|D6 - D8| + sum|stencil weights| * noise / h) + FD_RESOLUTION * scale
       noise = output_noise(...): phi = <dy, f(a)>'s rounding in one evaluation, at the size of the outputs
               over the stencil, max_k |f(a + t_k v)| (a loss at its exact minimum is 0 at a, not nearby; the
               short stencil's t = 1 moves outputs far) (arithmetic with the realistic sqrt(K) model, the measured float32 error vector, the moved input's own rounding eps |g (a + t v)|)
       scale = max(sum_i |g_i v_i|, |D8|)                                   (no cancellation in the scale)

   K in the noise is the number of terms in one output (``OpSpec.forward_reduction_length``, else
   ``reduction_length``): a convolution's output sums C_in kh kw + 1 terms, while its bias gradient (policy 1's K)
   sums N Ho Wo; the forward's rounding does not grow with the latter.

   The short stencil is tried first: D4 = (4 D(t) - D(2t)) / 3 from four calls, with |D(t) - D4| as truncation and
   1.5 / t as the amplification; t = FD_SHORT_STEP for a smooth forward, the adjoint test's step where the op is
   (piecewise) linear in every argument (exact differences). Its pass stands only where every argument's share
   sum|g_a v_a| resolves FD_SHORT_ACCEPT; otherwise D8 decides.
   |D6 - D8| estimates the truncation error from the data; one level fewer (|D4 - D6|) underestimated it tenfold
   where two terms of the table nearly cancel (relu_cnn dW at 2000 examples). FD_RESOLUTION is the oracle's claimed
   resolution: 1e-8 relative, a hundred times below the 1e-6 errors we must catch. Errors below 1e-8 are the
   adjoint oracle's job.
   Realistic model (``output_noise``): rounding errors of independent operations behave like independent random
   variables (Higham sec. 2.8; Wilkinson), so a sum of K terms carries ~sqrt(K) eps |terms|, and <dy, errors>
   over n outputs grows like the Euclidean norm, not the 1-norm: the worst case grows like n K relative to a scale
   that grows like n, the realistic one like sqrt(n K) / n. The worst case is kept where it is the smaller.

3. Adjoint (dot-product) test for arguments that enter linearly: <A u, v> = <u, A^T v> holds exactly, so only
   rounding separates the two sides:

       |<A u, v> - <u, A^T v>| <= ADJOINT_RTOL * (|A u|_2 |v|_2 + |u|_2 |A^T v|_2),   ADJOINT_RTOL = 1e-12

   The Cauchy-Schwarz scale on the right makes this independent of cancellation in the inner products. Run over
   all linear arguments at once (one backward call), an argument's own resolution is the tolerance over its share
   |<u_a, A_a^T v>| of the inner product; its pass stands where that is at most ADJOINT_JOINT_ACCEPT.
   ADJOINT_RTOL is about 4500 eps(float64): the forward's rounding at a +- u, relative to |A u|, is about
   eps K |f(a)| / |A u|, which leaves room for K in the hundreds and for |f(a)| well above |A u| (a bias much larger
   than x W). Measured on the references (``cnn_gradcheck.adjoint``): conv, pooling, ReLU below 3e-16; dense up to 9e-15
   (a dW test with |b| ~ 100 |x W|).

   3b. The joint test's second identity, with the case's own dy (``cnn_gradcheck.adjoint``):
       <A d, dy> = sum_a <d_a, g_a(dy)>. dy is drawn independently of A d, so |<A d, dy>| is about
       |A d| |dy| / sqrt(len(y)), and the Cauchy-Schwarz scale above would dilute every argument's share by that
       square root (conv2d at 1e6 elements: each share resolved only 1.3e-9). Each side's rounding is bounded on its
       own instead:

       |<A d, dy> - sum_a <d_a, g_a>| <= FD_SAFETY * 2 * noise  +  ADJOINT_RTOL * sum_a |d_a|_2 |g_a|_2

       The left side is phi(t) - phi(-t) with phi(t) = <dy, f(a + t u)>: its rounding is policy 2's realistic noise
       of two evaluations (``output_noise`` over the stencil's outputs, the measured float32 error vector
       included), with policy 2's safety factor. The right side's rounding is the backward's, bounded per argument
       as in policy 3 (d_a is aligned with g_a, so the sum has no dilution: each term is about |d_a| |g_a|).

4. Distance from non-differentiable points: generated inputs keep MARGIN from ReLU's zero and from ties in
   pooling windows; the finite-difference stencil reaches at most 4 h |v|_inf = 4e-3 < MARGIN / 2.

5. Training comparison (``cnn_gradcheck.network``): two exact implementations of a network trained with the same SGD
   steps. Each step adds rounding of order eps * K * scale (policy 1, ~1e-13 here) to the parameters, and the SGD map
   amplifies earlier differences by at most (1 + lr |Hessian|) per step, a small factor over 20-50 steps at the
   learning rates used: TRAINING_RTOL = 1e-9 (the issue's requirement) lies orders of magnitude above what is
   measured, and a gradient wrong by 1e-6 relative moves the parameters by more than that within one step.

6. Plug-ins in lower precision (float32; float16/bfloat16 for torch) are compared with the float64 oracles, not
   rejected: ``Evaluation.dtype`` is the coarsest precision among the plug-in's results (``cnn_gradcheck.calls``), and
   eps = eps_of(dtype) replaces float64's eps in policy 1 (ROUNDING_SAFETY * eps * K * scale) and in policy 2's
   rounding term (the finite differences of a float32 forward carry float32 rounding, amplified by 1/h). Policy 3
   keeps the same multiple of the unit roundoff: ADJOINT_RTOL * eps(dtype) / eps(float64) (1e-12 -> 5.4e-4 for
   float32). Rounding of the inputs to the plug-in's precision is an error of eps |x| per term, inside K eps.
   In policy 2 the forward's rounding is then taken relative to the magnitude M of its summed terms (as in policy
   1), sum_i |dy_i| max(|y_i|, M_i): a float32 output that cancels (y = 0.01 from terms of size 1) is rounded at
   eps * 1, not eps * 0.01, and the finite differences of it are that noisy.
   The stencil moves a value by at most FD_STENCIL_REACH; a case closer than KINK_CLEARANCE to a declared kink,
   or whose one-sided differences do not double with the step (KINK_DOUBLING_BAND), gets a kink verdict; jumps
   below ``jump_noise`` (the forward's noise at the plug-in's precision through the jump formula) are rounding,
   not a kink (a float32 sigmoid). The
   adjoint test of a piecewise-linear argument moves values by at most ADJOINT_PIECEWISE_REACH (and at most
   ADJOINT_KINK_SHARE of the case's own kink distance); a relative second difference above
   AFFINE_SECOND_DIFFERENCE means the pieces changed.

7. No verdict where the arithmetic cannot give one: a tolerance above MAX_RELATIVE_TOLERANCE (half) of the
   values' scale would accept a zero, a negated or a doubled result. An exact comparison (policy 1) then fails
   with "no verdict possible at <dtype>" (a bfloat16 plug-in with long sums: check smaller configurations); an
   approximate oracle (finite differences of a float16 forward, the adjoint test in float16/bfloat16) reports
   itself not applicable ("n/a") with the reason, and the exact oracles still decide. Resolution is recorded on
   every comparison (``resolution`` = tolerance / scale; the adjoint's divided by ADJOINT_VISIBLE_SHARE), and
   ``resolves(resolution, discrepancy)`` says whether it could have seen a discrepancy another oracle found: a
   pass that could not is no agreement ("cannot resolve this at float32").

8. Repeatability (``cnn_gradcheck.calls``): a plug-in is called twice; the results may differ by another summation
   order, ROUNDING_SAFETY * eps * K * max(|first|, |second|, max|dy| max(1, max|inputs|)) (policy 1a with the
   terms' size a layer's sums can have), not by more (accumulated gradients differ by the whole gradient). A plug-in
   declaring ``nondeterministic = True`` gets NONDETERMINISTIC_RTOL relative (or the bound it declares).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: multiplies eps * K for two exact computations that sum in different orders
ROUNDING_SAFETY = 8.0
#: multiplies the rounding noise measured on float32 evaluations of the oracle (policy 1b): the largest of
#: PROBE_SAMPLES realisations, which another implementation's summation order may exceed by a few times (measured
#: on a numpy BatchNorm2d's dx over two elements, the worst cancellation seen: 300 seeds, worst ratio 8.8)
ESTIMATE_SAFETY = 16.0
#: the precision of the second, noise-measuring evaluation of the oracle (policy 1b)
PROBE_DTYPE = "float32"
#: rounding realisations drawn by the probe (the others at jittered inputs): one realisation of a two-element
#: quantity is small by chance one time in ten (ratio up to 300 in 300 seeds), the largest of three rarely
PROBE_SAMPLES = 3
#: relative move of the inputs for the probe's further realisations: far above eps(float32), so that intermediates
#: (tanh(x) near 1, whose ulp is larger than 1 - tanh^2) round afresh; far below MARGIN / |x|, so that no kink is
#: reached (and only where the case's kink distance allows)
PROBE_JITTER = 2.0**-12
#: the float64 realisations of a gradient at c dy, c = 2^k + 1 for k in these (policy 1b at float64): c = 3, 5 are
#: not powers of 2, so every product with dy gets another mantissa and rounds afresh, and c dy = 2^k dy + dy splits
#: error-free (TwoSum)
PROBE_DY_SHIFTS = (1, 2)
#: multiplies the finite-difference error estimate (truncation + rounding)
FD_SAFETY = 10.0
#: relative resolution claimed by the finite-difference oracle
FD_RESOLUTION = 1e-8
#: finite-difference step, in the units of the data (generated inputs are O(1); large-magnitude cases such as
#: logits in the hundreds keep their gaps and margins in the same units, and the rounding term grows with |y|)
FD_STEP = 1e-3
#: the short stencil's step for a smooth forward (policy 2): central differences at t and 2t, D4 judged with
#: |D(t) - D4|, an over-estimate of order t^2 phi^(3) / 6 (relative ~3e-9 at t = 1.25e-4 for phi^(3) ~ phi'),
#: against rounding amplified by 1.5 / t: both far below the 1e-6 to catch
FD_SHORT_STEP = FD_STEP / 8
#: the short stencil's pass stands when every argument's resolution is at most this (half the 1e-6 errors to
#: catch: a gradient scaled by 1 + 1e-6 moves the aligned derivative by 1e-6 of its share, twice the tolerance);
#: otherwise the full D8 stencil decides
FD_SHORT_ACCEPT = 5e-7
#: the joint adjoint test's pass stands for an argument whose own resolution (the tolerance over its share
#: |<d_a, A_a^T v>| of the inner product) is at most this (half the 1e-10 errors to catch on linear arguments);
#: others are tested alone
ADJOINT_JOINT_ACCEPT = 5e-11
#: relative discrepancy allowed by the adjoint (dot-product) test in float64
ADJOINT_RTOL = 1e-12
#: relative difference allowed between two identical calls of a plug-in that declares ``nondeterministic = True``
#: (atomics in a GPU kernel): loose against rounding, tight against a gradient error the oracles must catch
NONDETERMINISTIC_RTOL = 1e-9
#: a backward off by a relative e shows in the adjoint test's relative discrepancy as about e / 2 (v aligned with
#: A d, ``cnn_gradcheck.adjoint``): its resolution, in terms of the gradient's relative error, is twice tol / scale
ADJOINT_VISIBLE_SHARE = 0.5
#: distance kept by generated inputs from non-differentiable points (data units); the stencil reaches 4 * FD_STEP
MARGIN = 1e-2
#: relative disagreement of parameters and losses allowed between two implementations trained step for step
TRAINING_RTOL = 1e-9
#: a one-sided difference jump above this (relative) marks a kink rather than a gradient mismatch
KINK_JUMP = 1e-6
#: the finite-difference stencil moves each value by at most this (4 steps of FD_STEP, |v|_inf <= 1)
FD_STENCIL_REACH = 4 * FD_STEP
#: a case closer than this to a declared kink gets a kink verdict: two values may move towards each other
KINK_CLEARANCE = 2 * FD_STENCIL_REACH
#: one-sided jumps of a smooth function double with the step, up to O(h^2): allowed relative deviation
KINK_DOUBLING_BAND = 0.25
#: the adjoint test's perturbation reach for piecewise-linear arguments (data units), and the largest share of
#: the case's own distance to a kink it may use: both keep the active pieces (argmax, mask) fixed
ADJOINT_PIECEWISE_REACH = MARGIN / 8
ADJOINT_KINK_SHARE = 0.25
#: a relative second difference <f(a+) + f(a-) - 2 f(a), v> / (|A d| |v|) above this means the map changed pieces
#: (or is not affine): rounding leaves ~eps K, a kink leaves O(1); the same threshold as KINK_JUMP
AFFINE_SECOND_DIFFERENCE = KINK_JUMP
#: a tolerance above this fraction of the values' scale cannot tell a right result from a wrong one (a zero, a
#: sign flip, a factor 2 all differ by >= the scale): no verdict is possible (policy 7)
MAX_RELATIVE_TOLERANCE = 0.5

TINY = np.finfo(np.float64).tiny


def eps_of(dtype) -> float:
    """Unit roundoff of a floating dtype (numpy or torch dtype names are accepted)."""
    name = str(dtype).replace("torch.", "")
    table = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
    if name not in table:
        raise ValueError(f"no rounding model for dtype {dtype!r}")
    return table[name]


def rounding_relative(reduction_length: int, dtype="float64") -> float:
    """Policy 1's worst-case bound relative to the terms' scale: ROUNDING_SAFETY * eps * K."""
    return ROUNDING_SAFETY * eps_of(dtype) * max(int(reduction_length), 1)


@dataclass(frozen=True)
class Estimate:
    """What the rounding model knows about one quantity of one case, from the oracle's side only (never from the
    result under test, so a wrong result cannot widen its own tolerance). Both numbers are per unit eps: multiply
    by eps(dtype) for an absolute noise at the plug-in's precision.

    measured: max |q(float32 evaluation) - q(float64)| / eps(float32): the noise the op really carries at this
              point, the inputs' rounding and the arithmetic's cancellation both included; for a gradient also
              max |g(c dy) / c - g(dy)| / eps(float64), float64 realisations of the oracle's own rounding (1b);
    floor:    the inputs' own rounding carried through the op to first order, sum_i |dq/dx_i| |x_i| (policy 1c):
              never 0 unless the quantity is locally constant in its inputs.
    """

    measured: float = 0.0
    floor: float = 0.0


def measured_noise(value64, value32) -> float:
    """Policy 1b: max |q32 - q64| / eps(float32) over the elements where both are finite (an element the float32
    evaluation could not represent, overflow or underflow, says nothing about rounding and is left out)."""
    a, b = np.asarray(value64, dtype=np.float64), np.asarray(value32, dtype=np.float64)
    diff = np.abs(a - b)
    diff = diff[np.isfinite(diff)]
    return float(np.max(diff, initial=0.0)) / eps_of(PROBE_DTYPE)


def realised_noise(difference) -> float:
    """Policy 1b at float64: max |q' - q64| / eps(float64) from the difference q' - q64 between a second float64
    realisation q' of the same exact quantity (a gradient at c dy, c = 2^k + 1) and the oracle's q64, per unit eps
    like ``measured_noise`` (non-finite elements left out)."""
    diff = np.abs(np.asarray(difference, dtype=np.float64))
    diff = diff[np.isfinite(diff)]
    return float(np.max(diff, initial=0.0)) / eps_of("float64")


def rounding_tolerance(expected: np.ndarray, reduction_length: int, dtype="float64", magnitude=None,
                       estimate: Estimate | None = None) -> float:
    """Policy 1: the bound on |got - expected| for two exact computations (norm-wise, infinity norm), the largest of

        ROUNDING_SAFETY * eps * K * max(|E|, |M|)      (1a: worst-case sums, Higham)
        ESTIMATE_SAFETY * eps * measured               (1b: the noise measured on float32 and float64 realisations)
        ROUNDING_SAFETY * eps * floor                  (1c: the inputs' own rounding carried through the op)

    The scale comes from the oracle's side only (expected values, terms' magnitudes, the estimate)."""
    eps = eps_of(dtype)
    scale = max(float(np.max(np.abs(expected), initial=0.0)),
                float(np.max(np.abs(magnitude), initial=0.0)) if magnitude is not None else 0.0, TINY)
    tol = rounding_relative(reduction_length, dtype) * scale
    if estimate is not None:
        tol = max(tol, ESTIMATE_SAFETY * eps * estimate.measured, ROUNDING_SAFETY * eps * estimate.floor)
    return tol


def resolution(tolerance_: float, scale: float) -> float:
    """Policy 7: the relative resolution of a comparison, tolerance / scale: a relative discrepancy below it
    passes unseen."""
    return tolerance_ / max(scale, TINY)


def resolves(resolution_: float, discrepancy: float) -> bool:
    """Policy 7: could a comparison of this relative resolution have seen a relative ``discrepancy`` (one found by
    another oracle)? Only when the discrepancy lies above it; otherwise its agreement is no evidence either way
    ("cannot resolve this at <dtype>"), and must not be counted as agreement."""
    return discrepancy > resolution_


def too_coarse(tolerance_: float, scale: float) -> bool:
    """Policy 7: a tolerance this wide relative to the scale decides nothing."""
    return tolerance_ > MAX_RELATIVE_TOLERANCE * max(scale, TINY)


def _dot(a, b) -> float:
    """<a, b> of two arrays of one shape, without BLAS (np.linalg.norm wakes BLAS threads: ~20 ms per call on 1e4
    elements here) and without a temporary: einsum in one pass (0.5 ms at 1e6 elements, against 1.4 for a * a).
    Its running sum is not pairwise: for sizes and scales, not for the two sides of an identity."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    axes = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
    return float(np.einsum(f"{axes},{axes}->", a, b))


def _norm2(a) -> float:
    """Euclidean norm, sqrt(<a, a>) by ``_dot``."""
    return math.sqrt(_dot(a, a))


def output_noise(dy, y, reduction_length: int, dtype="float64", magnitude=None, forward_error=None,
                 input_sensitivity: float = 0.0) -> float:
    """Policy 2's noise of phi = <dy, f(a)> as one evaluation of the forward computes it (absolute):

        eps * ( min(K |dy Y|_1, ROUNDING_SAFETY sqrt(K) |dy Y|_2)                     arithmetic, Y = max(|y|, |M|)
              + ESTIMATE_SAFETY max(|dy e|_2, |<dy, e>|) / eps(float32)                measured, e = y32 - y64
              + ROUNDING_SAFETY input_sensitivity )                                     the moved input's rounding

    Arithmetic: each y_j is a sum of K terms of size Y_j. The worst case (Higham) is K eps Y_j per element, added
    with the same sign over all j; but rounding errors of independent operations behave like independent random
    variables of size ~eps Y_j (Higham sec. 2.8, "rule of thumb"; Wilkinson), so a sum of K of them grows like
    sqrt(K) eps Y_j, and <dy, errors> over n outputs like the Euclidean norm |dy Y|_2 sqrt(K), not the 1-norm
    times K. The worst case is kept where it is the smaller (tiny cases); with ROUNDING_SAFETY standard deviations
    the realistic one elsewhere. This is what lets a 1e-6 relative error be seen at 1e6 elements: the worst case
    grows like n K, the derivative's scale like n, the realistic noise like sqrt(n K).
    Measured: the float32 evaluation's error vector e gives the noise the op really carries, correlated parts
    included (|<dy, e>|: one shared rounded normaliser moves every output the same way).
    Input rounding: the stencil stores a + t v in the plug-in's precision; an error eps |a_i| per element moves
    phi by sum_i g_i delta_i, independent: eps |g a|_2 (``input_sensitivity`` = |g a|_2, from the gradient)."""
    eps = eps_of(dtype)
    dy = np.asarray(dy, dtype=np.float64)
    size = np.abs(np.asarray(y, dtype=np.float64))
    if magnitude is not None:
        size = np.maximum(size, np.abs(np.asarray(magnitude, dtype=np.float64)))
    k = max(int(reduction_length), 1)
    weighted = np.abs(dy) * size
    arithmetic = min(k * float(np.sum(weighted)), ROUNDING_SAFETY * math.sqrt(k) * _norm2(weighted))
    measured = 0.0
    if forward_error is not None:
        e = np.where(np.isfinite(forward_error), forward_error, 0.0)
        measured = ESTIMATE_SAFETY * max(_norm2(dy * e), abs(float(np.sum(dy * e)))) / eps_of(PROBE_DTYPE)
    return eps * (arithmetic + measured + ROUNDING_SAFETY * input_sensitivity)


def fd_tolerance(truncation: float, noise: float, amplification: float, h: float, scale: float) -> float:
    """Policy 2: the bound on |analytic - finite difference| along one direction: the truncation estimate
    |D4 - D6|, the forward's noise amplified by the stencil (sum of |weights| / h), and the oracle's resolution."""
    return FD_SAFETY * (truncation + amplification * noise / h) + FD_RESOLUTION * scale


def jump_noise(noise: float, h: float) -> float:
    """Policy 6's kink test reads one-sided jumps j_k = (phi(kh) - 2 phi(0) + phi(-kh)) / (kh), k = 1, 2, 4, and
    asks whether j_2k - 2 j_k vanishes (a smooth function). Each phi carries ``noise`` (``output_noise``), so
    |j_k| carries up to 4 noise / (k h), and j_2k - 2 j_k up to 4/(2h) + 2 * 4/h = 10 noise / h: a jump below
    this is the implementation's rounding, not a kink (a float32 sigmoid's jumps of 5e-5 at h = 1e-3)."""
    return 10.0 * noise / h


def repeat_term_scale(dy, arrays) -> float:
    """Policy 8: the size of the terms a layer's sums add up, without an oracle at hand: products of the upstream
    gradient with the inputs, max|dy| max(1, max|a|) (a bias gradient sums dy itself; dx and dW sum dy times a
    weight or an input). Cancellation in a sum (a bias gradient of 0.004 from terms of size 1) then still leaves
    room for another summation order."""
    size = max((float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0)) for a in arrays), default=0.0)
    return float(np.max(np.abs(np.asarray(dy, dtype=np.float64)), initial=0.0)) * max(1.0, size)


def repeat_tolerance(first, second, reduction_length: int, dtype="float64", terms: float = 0.0,
                     declared=False) -> float:
    """Policy 8: the bound on |first - second| for two identical calls (norm-wise):

        ROUNDING_SAFETY * eps * K * max(|first|, |second|, terms)

    two summation orders of the same K terms (policy 1a's worst case, the values of both calls as scale, since
    neither is more trusted). Gradients accumulated across calls differ by the whole gradient (relative O(1)), a
    cache or random numbers by more than rounding. ``declared``: a plug-in's ``nondeterministic`` attribute; True
    allows NONDETERMINISTIC_RTOL relative, a number that relative bound (never below the rounding bound)."""
    scale = max(float(np.max(np.abs(np.asarray(first, dtype=np.float64)), initial=0.0)),
                float(np.max(np.abs(np.asarray(second, dtype=np.float64)), initial=0.0)), terms, TINY)
    tol = rounding_relative(reduction_length, dtype) * scale
    if declared:
        relative = NONDETERMINISTIC_RTOL if declared is True else float(declared)
        tol = max(tol, relative * scale)
    return tol


def jumps_show_kink(jumps, scale: float, noise: float, h: float) -> bool:
    """Policy 6: one-sided jumps j_k at steps h, 2h, 4h show a kink when the largest is significant (above
    KINK_JUMP of the derivative's scale plus the rounding's ``jump_noise``) and they do not double with the step
    (within KINK_DOUBLING_BAND, plus the rounding), as a smooth function's h phi'' would."""
    rounding = jump_noise(noise, h)
    significant = abs(jumps[-1]) > KINK_JUMP * scale + rounding
    doubling = all(abs(jumps[i + 1] - 2 * jumps[i]) <= KINK_DOUBLING_BAND * abs(jumps[i + 1]) + rounding
                   for i in range(len(jumps) - 1))
    return significant and not doubling


def adjoint_tolerance(cauchy_schwarz_scale: float, dtype="float64") -> float:
    """Policy 3: the bound on |<Au, v> - <u, A^T v>|; for a lower-precision plug-in, ADJOINT_RTOL scaled by
    eps(dtype) / eps(float64) (policy 6)."""
    return ADJOINT_RTOL * eps_of(dtype) / eps_of("float64") * cauchy_schwarz_scale


def adjoint_dy_tolerance(forward_noise: float, backward_scale: float, dtype="float64") -> float:
    """Policy 3b: the bound on |<A d, dy> - sum_a <d_a, g_a(dy)>| from the forward's realistic noise of one
    evaluation of <dy, f> (``output_noise``, two evaluations, FD_SAFETY) and the backward's rounding,
    ``adjoint_tolerance`` of sum_a |d_a| |g_a|."""
    return FD_SAFETY * 2 * forward_noise + adjoint_tolerance(backward_scale, dtype)


def adjoint_step_unresolved(step: float, input_scale: float, dtype="float64") -> bool:
    """Policy 3 at a lower precision: the implementation stores a +- t u in its dtype, which moves each input by up
    to eps(dtype) |a|; the test uses the float64 d = 2 t u, so relative to the step that is an error of
    eps(dtype) |a| / (t |u|) in d. Where it exceeds the adjoint's own relative bound the test cannot resolve (a
    float32 ReLU at inputs of 1e6: a step of 1e-3 does not move them at all). Never in float64 (d is exact there)."""
    if str(dtype).replace("torch.", "") == "float64":
        return False
    return eps_of(dtype) * input_scale > ADJOINT_RTOL * eps_of(dtype) / eps_of("float64") * step


def pieces_changed(second_difference: float, scale: float, dtype="float64") -> bool:
    """Policy 6: |<f(a+) + f(a-) - 2 f(a), v>| above affine_limit(dtype) * |A d| |v| means the map changed pieces
    between a- and a+ (or is not affine)."""
    return second_difference > affine_limit(dtype) * max(scale, TINY)


def affine_limit(dtype="float64") -> float:
    """Policy 6: the relative second difference <f(a+) + f(a-) - 2 f(a), v> / (|A d| |v|) above which the pieces
    changed (or the map is not affine): AFFINE_SECOND_DIFFERENCE, or the adjoint's own rounding level at a lower
    precision, whichever is larger."""
    return max(AFFINE_SECOND_DIFFERENCE, adjoint_tolerance(1.0, dtype))
