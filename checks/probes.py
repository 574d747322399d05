"""The oracle side's rounding probes (tolerance policies 1 and 2): the op computed by torch in float64, in float32
and on |inputs|, on the case and near it, each computed once per case and kept on it (``spec.derived``).

- ``torch_outputs`` / ``torch_reference``: the torch forward and autograd gradients (float64: the pytorch oracle).
- ``magnitudes``: the op on |inputs| with upstream gradient |dy|, the size of the terms behind each element (1a).
- ``rounding_estimates``: the noise measured on float32 realisations and float64 realisations at c dy (1b, 1c).
- ``forward_error``: y32 - y64, the forward's error vector (policy 2's measured noise of <dy, f>), read by the
  finite-difference oracle and by the adjoint test's second identity.

The witnesses (``cnn_gradcheck.oracles``, ``cnn_gradcheck.adjoint``) import from here; nothing here imports them.
"""
from __future__ import annotations

import numpy as np
import torch

from . import tolerance
from .evaluation import Evaluation
from .spec import Case, OpSpec, derived, kink_distance, quantity_label

def torch_outputs(spec: OpSpec, case: Case, absolute: bool = False,
                  dtype: torch.dtype = torch.float64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Forward and autograd gradients of the torch version of the op (float64 numpy arrays back). ``absolute``: on
    |arrays| with upstream gradient |dy|, the magnitude of the terms behind each element (tolerance policy 1a);
    ``dtype``: the precision the inputs are stored and the op computed in (float32: policy 1b's noise probe)."""
    def lift(a):  # a contiguous float64 copy (torch takes no negative stride: a reversed view of the user's)
        return np.asarray(np.abs(a) if absolute else a, dtype=np.float64, order="C")  # (0-d stays 0-d)
    tensors = {name: torch.tensor(lift(a), dtype=dtype,
                                  requires_grad=name in spec.differentiable)
               for name, a in case.arrays.items()}
    y = spec.torch_forward(*[tensors[n] for n in spec.arg_names], **spec.hyper(case.config))
    inputs = [tensors[n] for n in spec.differentiable]
    grads = torch.autograd.grad(y, inputs, grad_outputs=torch.tensor(lift(case.dy), dtype=y.dtype),
                                allow_unused=True)
    return (y.detach().to(torch.float64).numpy(),
            {n: (g.detach().to(torch.float64).numpy() if g is not None else np.zeros_like(case.arrays[n]))
             for n, g in zip(spec.differentiable, grads)})


def torch_reference(spec: OpSpec, case: Case) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The float64 torch forward and gradients of the case, computed once (the pytorch oracle and the rounding
    estimates share them)."""
    return derived(spec, case, "torch float64", lambda: torch_outputs(spec, case))


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


def rounding_estimates(spec: OpSpec, case: Case, samples: int | None = None) -> dict[str, object]:
    """quantity label -> ``tolerance.Estimate`` (policy 1b, 1c); computed once per case, and only when an exact
    oracle (pytorch, reference, alternatives) runs.

    The second evaluation is the torch op with the inputs and dy stored in float32: the inputs move by their
    float32 rounding (at most eps |x|) and every operation rounds at float32, so q32 - q64 shows the noise the op
    carries at this point -- cancellation inside it included -- without a declared formula. One realisation can be
    small by chance (tanh near 1: y32 happens to round well, and 1 - y^2 shows little), so PROBE_SAMPLES - 1 more
    pairs (float64, float32) are taken at points jittered by PROBE_JITTER (relative), far enough for every
    intermediate to round afresh, close enough for the noise's size to stay the same; the largest counts. Scaled by
    eps(dtype) / eps(float32) it estimates the noise at the plug-in's precision. Each further realisation also
    takes a gradient again in float64 at c dy (``_realised_gradients``, per unit eps(float64)): the oracle's own
    rounding at its own precision, where the float32 probe's says nothing of it (a zero gradient that torch computes
    as a residue: LayerNorm over one element). The floor of the forward is the
    inputs' own rounding carried through it to first order, sum_i |g_i| |x_i| / sum_j |dy_j| with g = dy^T J
    from the float64 gradients (exactly sum_i |dL/dx_i| |x_i| for a loss): never 0 unless the output is locally
    constant (softmax cross-entropy of one class).

    ``samples``: how many realisations to draw (default PROBE_SAMPLES). More realisations only widen a tolerance
    (the largest counts), so the oracles draw one first and all of them only for a comparison that would fail with
    one: the verdicts are those of PROBE_SAMPLES realisations (and their float64 gradients at c dy) at the cost of
    one for a passing case."""
    samples = tolerance.PROBE_SAMPLES if samples is None else samples
    return derived(spec, case, f"rounding estimates {samples}", lambda: _rounding_estimates(spec, case, samples))


def _float64_tensor(a) -> torch.Tensor:
    """The array as a float64 tensor, sharing its memory where numpy and torch allow it (no copy of a large input
    for a forward without autograd, which does not write to it); a copy of a read-only or reversed view."""
    a = np.asarray(a, dtype=np.float64)
    if a.flags.writeable and all(s >= 0 for s in a.strides):
        return torch.from_numpy(a)
    return torch.from_numpy(np.array(a))  # a writable copy with positive strides (torch takes no negative one)


def forward_error(spec: OpSpec, case: Case) -> np.ndarray | None:
    """y32 - y64: the torch forward's error vector with its inputs stored and computed in float32 (policy 2's
    measured noise of <dy, f>); two forward calls without autograd, computed once per case (None where torch cannot
    compute the op in float32; the float64 forward is the pytorch oracle's where it ran already)."""
    def compute():
        def forward(dtype):
            with torch.no_grad():
                tensors = [_float64_tensor(case.arrays[n]).to(dtype) for n in spec.arg_names]
                return spec.torch_forward(*tensors, **spec.hyper(case.config)).to(torch.float64).numpy()
        known = case.derived.get(("torch float64", id(spec)))
        try:
            y64 = known[1][0] if known is not None and known[0] is spec else forward(torch.float64)
            return forward(torch.float32) - y64
        except Exception:  # noqa: BLE001 -- no float32 version of the op: the other terms of policy 2 remain
            return None
    return derived(spec, case, "forward error", compute)


def _jittered(spec: OpSpec, case: Case, rng: np.random.Generator) -> Case | None:
    """The case with every input and dy moved by a random relative PROBE_JITTER (None where that could reach a
    kink): a point nearby where every intermediate of the op rounds afresh."""
    arrays = {n: np.asarray(a, dtype=np.float64) for n, a in case.arrays.items()}
    reach = tolerance.PROBE_JITTER * max(float(np.max(np.abs(a), initial=0.0)) for a in arrays.values())
    if reach > tolerance.ADJOINT_KINK_SHARE * kink_distance(spec, case):
        return None
    move = lambda a: a * (1 + tolerance.PROBE_JITTER * rng.uniform(-1, 1, size=np.shape(a)))  # noqa: E731
    return Case(case.op, case.config, {n: move(a) for n, a in arrays.items()}, move(case.dy), case.seed)


def _rounding_estimates(spec: OpSpec, case: Case, samples: int) -> dict[str, object]:
    y64, g64 = torch_reference(spec, case)
    rng = np.random.default_rng(case.seed ^ 0x0F32)
    probes = []  # (float64, float32) evaluations at the case and at jittered points nearby
    try:
        probes.append(((y64, g64), torch_outputs(spec, case, dtype=torch.float32)))
        for _ in range(samples - 1):
            nearby = _jittered(spec, case, rng)
            if nearby is not None:
                probes.append((torch_outputs(spec, nearby), torch_outputs(spec, nearby, dtype=torch.float32)))
    except Exception:  # noqa: BLE001 -- an op torch cannot compute in float32: the other terms of policy 1 remain
        pass
    realised = _realised_gradients(spec, case, g64, samples - 1)
    per_dy = max(float(np.sum(np.abs(case.dy))), tolerance.TINY)
    floor = sum(float(np.sum(np.abs(g64[n] * np.asarray(case.arrays[n], dtype=np.float64))))
                for n in spec.differentiable) / per_dy
    measured = lambda pick: max((tolerance.measured_noise(pick(a), pick(b)) for a, b in probes),  # noqa: E731
                                default=0.0)
    out: dict[str, object] = {"forward": tolerance.Estimate(measured(lambda r: r[0]), floor)}
    for n in spec.differentiable:
        again = max((tolerance.realised_noise(r[n]) for r in realised), default=0.0)
        out[quantity_label(n)] = tolerance.Estimate(max(measured(lambda r: r[1][n]), again))
    return out


def _two_sum(a, b):
    """Knuth's TwoSum: s = fl(a + b) and the exact remainder e, s + e = a + b (element-wise, float64)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _realised_gradients(spec: OpSpec, case: Case, g64: dict[str, np.ndarray], count: int) -> list[dict]:
    """Policy 1b at the oracle's own precision: for the first ``count`` factors c = 2^k + 1 (k in PROBE_DY_SHIFTS),
    the float64 torch gradients realised again at c dy, as differences from the oracle's g64 (quantity name ->
    g_c - g64). A gradient is exactly linear in dy (dy^T J), so the realisation is the same exact quantity with every
    product with dy, and every sum after it, rounded afresh; the op's intermediates (normalisers, 1 - y) stay.
    Error-free around the backward: c dy = fl(c dy) + e exactly (TwoSum of 2^k dy and dy), so
    g(fl(c dy)) + g(e) = c g(dy) in exact arithmetic, and c g64 = hi + lo exactly; the difference
    (g(fl(c dy)) - hi) + (g(e) - lo), divided by c, is the backward's own rounding at this point, not the rounding
    of c dy or of a division (|e| <= eps |c dy|: g(e) carries eps^2 of rounding). Where the exact gradient is 0
    and torch's value is a residue (LayerNorm over one element: fl((rstd dy) gamma) - fl((dy gamma) rstd)), each
    realisation is another residue of the same size, or 0, and then the difference is torch's residue itself."""
    dy = np.asarray(case.dy, dtype=np.float64)
    out = []
    for k in tolerance.PROBE_DY_SHIFTS[:max(count, 0)]:
        c = 2.0**k + 1
        dy_c, remainder = _two_sum(dy * 2.0**k, dy)
        try:
            _, g_c = torch_outputs(spec, Case(case.op, case.config, case.arrays, dy_c, case.seed))
            _, g_e = torch_outputs(spec, Case(case.op, case.config, case.arrays, remainder, case.seed))
        except Exception:  # noqa: BLE001 -- torch could not compute it: the other terms of policy 1 remain
            return out
        differences = {}
        for n, g in g64.items():
            hi, lo = _two_sum(np.asarray(g, dtype=np.float64) * 2.0**k, np.asarray(g, dtype=np.float64))
            differences[n] = ((g_c[n] - hi) + (g_e[n] - lo)) / c
        out.append(differences)
    return out


def low_precision_magnitude(spec: OpSpec, case: Case, evaluation: Evaluation):
    """For a lower-precision plug-in, the magnitude of the forward's terms bounds its rounding (policy 6)."""
    return None if evaluation.dtype == "float64" else magnitudes(spec, case).get("forward")
