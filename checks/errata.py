"""Errata of the derivations: every formula of the seeds, transcribed literally (reference/printed.py), checked by the
harness. A formula that passes is listed as confirmed; one that fails gets its minimal counterexample
(cnn_gradcheck.property.minimal_failure shrinks the configuration within the formula's scope; a printed formula that reads
outside its arrays counts as failing: that is the finding), the diagnosis of the mistake and the corrected formula.

Each transcription also records the verdict it is expected to get: a formula printed with a correction is expected
to be wrong, one without to be confirmed. The main job's section fails (ok = False) only when a verdict differs from
the recorded one -- then the errata machinery or a reference changed, not the seeds -- and names the formula.

The seeds' text is the source; the harness decides what is right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from hypothesis import settings as hyp_settings

from .reference import printed
from . import finite_diff
from .diagnosis import diagnose_result
from .registry import get_spec
from .report import worst_table
from .property import minimal_failure
from .runner import CaseResult
from .spec import Implementation, OpSpec, as_grad_dict, quantity_label

CONFIRMED, WRONG = "confirmed", "WRONG"

ONE_KERNEL = {"N": 1, "C_in": 1, "C_out": 1, "stride": 1, "padding": 0, "dilation": 1}
ONE_CHANNEL_STRIDED = {"N": 1, "C_in": 1, "C_out": 1, "padding": 0, "dilation": 1}
SEED_POOLING = {"stride_vs_kernel": "equal", "square": True, "padding": 0, "dilation": 1, "remainder": 0}


@dataclass(frozen=True)
class Printed:
    """One formula as printed. ``function`` computes ``quantity`` ("forward" or an argument name) the printed way,
    in the op's canonical convention (backward functions may return the one array or the canonical tuple).
    ``fixed``: the formula's scope (configurations it claims to cover). ``special``: a hand-made check for a
    point generation avoids by design (ties), returning (passed, explanation)."""

    name: str
    source: str
    printed: str
    op: str
    quantity: str
    function: Callable | None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    correction: str = ""
    note: str = ""
    special: Callable[[], tuple[bool, str]] | None = None

    @property
    def expected(self) -> str:
        """The verdict this transcription is recorded to get: WRONG when a correction is given."""
        return WRONG if self.correction else CONFIRMED


@dataclass
class ErratumResult:
    formula: Printed
    verdict: str
    counterexample: str = ""
    details: list[str] = field(default_factory=list)


def printed_implementation(spec: OpSpec, formula: Printed) -> Implementation:
    """The spec's reference with one quantity computed as printed (a read outside an array raises
    PrintedIndexError, which the harness reports as an implementation error)."""
    ref = spec.reference

    def as_array(out):
        return np.asarray(out[0] if isinstance(out, (tuple, list)) else out, dtype=np.float64)

    if formula.quantity == "forward":
        return Implementation(f"as printed: {formula.name}",
                              lambda *arrays, **hyper: as_array(formula.function(*arrays, **hyper)), ref.backward)

    def backward(dy, *arrays, **hyper):
        grads = as_grad_dict(spec, ref.backward(dy, *arrays, **hyper))
        grads[formula.quantity] = as_array(formula.function(dy, *arrays, **hyper))
        return grads

    return Implementation(f"as printed: {formula.name}", ref.forward, backward)


def _why_out_of_range(spec: OpSpec, formula: Printed, result: CaseResult) -> str:
    arrays = [result.case.arrays[n] for n in spec.arg_names]
    try:
        hyper = spec.hyper(result.case.config)
        if formula.quantity == "forward":
            formula.function(*arrays, **hyper)
        else:
            formula.function(result.case.dy, *arrays, **hyper)
    except printed.PrintedIndexError as error:
        return f"as printed, the formula {error}"
    return ""


def check_printed(formula: Printed, max_examples: int | None = None) -> ErratumResult:
    if formula.special is not None:
        passed, text = formula.special()
        return ErratumResult(formula, CONFIRMED if passed else WRONG, "" if passed else text.split(": ")[0],
                             [text])
    spec = get_spec(formula.op)
    impl = printed_implementation(spec, formula)
    examples = max_examples or hyp_settings.default.max_examples
    label = quantity_label(formula.quantity)
    found = minimal_failure(spec, impl, fixed=formula.fixed, max_examples=examples, count_errors=True)
    if found is None:
        return ErratumResult(formula, CONFIRMED)
    result, _ = found
    out = ErratumResult(formula, WRONG, result.case.describe())
    why = _why_out_of_range(spec, formula, result)
    if why:
        out.details.append(why)
    else:
        for d in diagnose_result(result):
            if d.quantity == label:
                out.details.append(d.describe())
        keeping = [c for c in result.failures if c.quantity == label and c.arrays]
        if keeping:
            out.details += worst_table(label, keeping[0].arrays["expected"], keeping[0].arrays["got"], rows=3)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Hand-made checks for points generation keeps away from
# ----------------------------------------------------------------------------------------------------------------

def maxpool_tie_000() -> tuple[bool, str]:
    """At a tie the printed rule sends dE/dy to every maximal cell. Along v = (1, ..., 1) the max is differentiable
    even at a tie (all cells move together: d/dt max(x + t v) = 1), so finite differences judge it."""
    x = np.array([[[[1.0, 1.0], [0.0, 0.0]]]])
    dy = np.array([[[[1.0]]]])
    kernel = stride = (2, 2)
    (dx,) = printed.maxpool_backward_000(dy, x, kernel, stride)
    spec = get_spec("maxpool2d")
    forward = lambda arrays: spec.reference.forward(arrays["x"], kernel, stride)  # noqa: E731
    c = finite_diff.check_argument(forward, {"x": x}, "x", dx, dy, forward({"x": x}), np.ones_like(x), 4)
    text = (f"maxpool2d(N=1, C=1, kh=kw=sh=sw=2, x=[[1, 1], [0, 0]], dE/dy=1): as printed dE/dx = "
            f"{dx[0, 0].tolist()} (both tied cells get dE/dy); along v = ones the claimed derivative "
            f"<dx, v> = {c.got:.6g}, finite differences {c.expected:.6g} (error {c.error:.1e}, tolerance "
            f"{c.tolerance:.1e})")
    return c.passed, text


# ----------------------------------------------------------------------------------------------------------------
# The formulas of the seeds
# ----------------------------------------------------------------------------------------------------------------

def _exact_bounds(fn):
    """The same printed function with 2(m/2) read as m (bounds M - m, N - n: the range() needs ints)."""
    def call(dy, x, w, b, **h):
        return fn(dy, x, w, b, half=_HalfExactly())
    return call


class _HalfExactly:
    """half(m) such that 2 * half(m) == m as an int (the exact reading of "2(m/2)")."""

    def __call__(self, m: int):
        return _Half(m)


class _Half(int):
    def __new__(cls, m: int):
        obj = int.__new__(cls, m // 2)
        obj.m = m
        return obj

    def __rmul__(self, other):
        return self.m if other == 2 else int(self) * other


PRINTED: list[Printed] = [
    # ---- 000 -----------------------------------------------------------------------------------------------
    Printed("conv forward, one kernel", "000", "y_ij = sum_{s=0}^{m-1} sum_{t=0}^{n-1} w^k_st x_(i+s)(j+t) + b^k",
            "conv2d", "forward", printed.conv_forward_000, ONE_KERNEL),
    Printed("conv dE/dw, bounds M-2(m/2)", "000",
            "dE/dw^k_st = sum_{i=0}^{M-2(m/2)} sum_{j=0}^{N-2(n/2)} dE/dy^k_ij x_(i+s)(j+t)",
            "conv2d", "w", printed.conv_dw_000, ONE_KERNEL,
            correction="dE/dw^k_st = sum_{i=0}^{M-m} sum_{j=0}^{N-n} dE/dy^k_ij x_(i+s)(j+t)  (the output has "
                       "M-m+1 rows; 2(m/2) = m only for even m)"),
    Printed("conv dE/dw, bounds read as M-m", "000",
            "the same sum with 2(m/2) read exactly as m: upper bounds M-m, N-n", "conv2d", "w",
            _exact_bounds(printed.conv_dw_000), ONE_KERNEL),
    Printed("conv dE/db, first line", "000",
            "dE/db^k = sum_{i=0}^{M-2(m/2)} sum_{j=0}^{N-2(m/2)} dE/dy^k_ij", "conv2d", "b",
            printed.conv_db_000, ONE_KERNEL,
            correction="dE/db^k = sum_{i=0}^{M-m} sum_{j=0}^{N-n} dE/dy^k_ij  (and n, not m, in the j bound)"),
    Printed("conv dE/db, m in the j bound even with exact halving", "000",
            "dE/db^k = sum_{i=0}^{M-m} sum_{j=0}^{N-m} dE/dy^k_ij  (2(m/2) read as m; the typo m for n stays)",
            "conv2d", "b", _exact_bounds(printed.conv_db_000), ONE_KERNEL,
            correction="dE/db^k = sum_{i=0}^{M-m} sum_{j=0}^{N-n} dE/dy^k_ij  (the second line prints n: right)"),
    Printed("conv dE/dx, zero only for i-s < 0", "000",
            "dE/dx_ij = sum_{s=0}^{m-1} sum_{t=0}^{n-1} dE/dy^k_(i-s)(j-t) w^(k)_st; dE/dy_(i-s)(j-t) = 0 if i-s < 0 "
            "or j-t < 0", "conv2d", "x", printed.conv_dx_000, ONE_KERNEL,
            correction="the same sum with dE/dy_(i-s)(j-t) = 0 whenever (i-s, j-t) is outside the output: i-s < 0, "
                       "j-t < 0, i-s > M-m or j-t > N-n"),
    Printed("max pooling backward at ties", "000",
            "dE/dx_(li+s)(lj+t) = dE/dy^k_ij if y_ij = x_(li+s)(lj+t), 0 otherwise", "maxpool2d", "x", None,
            correction="route dE/dy_ij to ONE maximal cell of the window (e.g. the first in row-major order, as "
                       "torch does): dE/dx_(li+s)(lj+t) = dE/dy_ij if (s, t) = argmax, 0 otherwise",
            special=maxpool_tie_000),
    Printed("max pooling backward away from ties", "000",
            "dE/dx_(li+s)(lj+t) = dE/dy^k_ij if y_ij = x_(li+s)(lj+t), 0 otherwise", "maxpool2d", "x",
            printed.maxpool_backward_000, {**SEED_POOLING, "values": "generic"}),  # no ties drawn on purpose
    Printed("ReLU backward", "000", "dE/dx^k_ij = dE/dx^k_ij if y_ij >= 0, 0 otherwise", "relu", "x",
            printed.relu_backward_000,
            correction="dE/dx_ij = dE/dy_ij if x_ij > 0 (equivalently y_ij > 0), 0 otherwise: y = max(0, x) >= 0 "
                       "always, so 'y >= 0' masks nothing; and dE/dy, not dE/dx, on the right",
            note="dE/dx on the right is read as the incoming gradient dE/dy"),
    # ---- 003 -----------------------------------------------------------------------------------------------
    Printed("mean pooling delta: expand / scale^2", "003", "d = expand(d_next, [scale scale 1]) / scale^2",
            "meanpool2d", "x", printed.meanpool_backward_003, SEED_POOLING),
    # ---- 004 -----------------------------------------------------------------------------------------------
    Printed("squared error derivative", "004", "dE/dy_i = y_i - y^truth_i", "mse", "y", printed.mse_backward_004),
    Printed("cross-entropy derivative", "004", "dE/dy_i = -y^truth_i / y_i", "cross_entropy", "y",
            printed.cross_entropy_backward_004),
    Printed("ReLU derivative", "004", "f' = 1 if x_i > 0, 0 otherwise", "relu", "x", printed.relu_backward_004),
    Printed("sigmoid derivative", "004", "f' = f (1 - f)", "sigmoid", "x", printed.sigmoid_backward_004),
    Printed("softmax Jacobian, final forms", "004",
            "dy_i/dx_i = y_i (1 - y_i), dy_i/dx_j = -y_i y_j; [dE/dx] = [dE/dy] [dy_k/dx_i] (rows k)", "softmax",
            "x", printed.softmax_backward_004),
    Printed("softmax dy_i/dx_j, intermediate step", "004",
            "dy_i/dx_j = (0 * sum - e^x_i e^x_j) / (sum)^2 = e^x_i e^x_j / (sum * sum)", "softmax", "x",
            printed.softmax_backward_004_intermediate,
            correction="(0 * sum - e^x_i e^x_j) / sum^2 = -e^x_i e^x_j / (sum * sum) = -y_i y_j (the sign is lost "
                       "in the middle step; the final -y_i y_j is right)"),
    Printed("dense dE/dw = y^T delta", "004", "dE/dw_ki = delta_i y_k; dE/dw = (y^(l-1))^T delta", "dense", "W",
            printed.dense_dw_004),
    Printed("dense dE/dy = delta w^T", "004", "dE/dy_k = sum_i delta_i w_ki; dE/dy = delta (w^l)^T", "dense", "x",
            printed.dense_dx_004_matrix),
    Printed("dense dE/dy, expanded row", "004",
            "[dE/dy_0 ...] = [(delta_1 w_00 + delta_2 w_01 + ... + delta_n w_0n) ...]", "dense", "x",
            printed.dense_dx_004_expanded,
            correction="dE/dy_k = delta_0 w_k0 + delta_1 w_k1 + ... + delta_n w_kn (delta's index equals w's "
                       "column index)"),
    Printed("conv dE/dw, cross-correlation", "004", "dE/dw_ab = sum_i sum_j delta_ij y^(l-1)_(is+a)(j+b)",
            "conv2d", "w", printed.conv_dw_004_correlation, ONE_CHANNEL_STRIDED,
            correction="dE/dw_ab = sum_i sum_j delta_ij y^(l-1)_(is+a)(js+b)  (the stride in j too)"),
    Printed("conv dE/dy, cross-correlation", "004", "dE/dy^(l-1)_ij = sum_i' sum_j' delta_i'j' w_(i-i's)(j-j's)",
            "conv2d", "x", printed.conv_dx_004_correlation, ONE_CHANNEL_STRIDED),
    Printed("conv dE/db", "004", "dE/db = sum_i sum_j delta_ij", "conv2d", "b", printed.conv_db_004,
            {"dilation": 1, "padding": 0}),
]


def check_all(max_examples: int | None = None, only: str | None = None) -> list[ErratumResult]:
    return [check_printed(f, max_examples) for f in PRINTED if only is None or only in f.name]


def unexpected(results: list[ErratumResult]) -> list[ErratumResult]:
    """The formulas whose verdict differs from the one recorded in their transcription."""
    return [r for r in results if r.verdict != r.formula.expected]


def format_errata(results: list[ErratumResult]) -> str:
    wrong = [r for r in results if r.verdict == WRONG]
    confirmed = [r for r in results if r.verdict == CONFIRMED]
    lines = [f"Errata of the derivations: {len(wrong)} of {len(results)} printed formulas are wrong as printed"]
    for r in unexpected(results):
        lines.append(f"ERRATA CHECK CHANGED: {r.formula.name} ({r.formula.source}) is recorded as "
                     f"{r.formula.expected.lower()} but now gets the verdict {r.verdict.lower()}")
    for r in wrong:
        f = r.formula
        lines += ["", f"* {f.name} ({f.source}): {f.printed}",
                  f"  counterexample: {r.counterexample}"]
        lines += [f"  {d}" for d in r.details]
        if f.note:
            lines.append(f"  reading: {f.note}")
        lines.append(f"  corrected: {f.correction}")
    lines += ["", "Confirmed as printed:"]
    lines += [f"  - {r.formula.name} ({r.formula.source}): {r.formula.printed}" for r in confirmed]
    return "\n".join(lines)


def section(rows=None, args=None) -> tuple[str, bool]:
    """The main job's errata section (cnn_gradcheck.validate.SECTIONS): every printed formula, whatever --only says;
    ok is False when a formula's verdict differs from the recorded one (``Printed.expected``)."""
    results = check_all()
    return format_errata(results), not unexpected(results)
