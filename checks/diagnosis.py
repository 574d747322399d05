"""Diagnosis of a failed check: which common backprop mistake turns the true result into the wrong one.

The catalogue is data (``cnn_gradcheck.mistakes``, re-exported here). Each ``Mistake`` yields candidate arrays: what
the result would be if the implementation had made that mistake (the true gradient rotated, shifted, scaled; or the
true op recomputed by torch with a wrong upstream gradient, a wrong stride, a masked batch...). A mistake *fits* when
the got array equals a candidate within the rounding tolerance of the policy (cnn_gradcheck.tolerance, policy 1): the
same bound that two exact computations of one quantity must meet. The diagnosis names the first fitting entry (exact
fits before fits that need a constant), or says that none fits. A case too small to tell mistakes apart (one element,
several fits, all zeros, a constant several sizes equal) is diagnosed again on a wider configuration, which also
names compound constants (1/(N*H_out*W_out)).

Extending it: a spec module in checks/specs/ may define ``MISTAKES`` (a list of Mistake, with ``ops`` set to its op
names); ``register`` adds one at run time. Candidates that raise (a recomputation the configuration does not allow)
or whose shape differs are skipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import tolerance
from .mistakes import (ACTIVATION_DERIVATIVES, CATALOGUE, Candidate, Context, Mistake, catalogue_for, register,
                       shift)
from .spec import Case, OpSpec, quantity_label


# ----------------------------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------------------------

def named_constants(config: Mapping[str, Any]) -> dict[str, float]:
    """Constants a stray factor is usually made of, named from the configuration (1/N, 2, window area...)."""
    ints = {k: v for k, v in config.items() if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 1}
    base = {}
    if {"kh", "kw"} <= config.keys():
        base["window area kh*kw"] = float(config["kh"] * config["kw"])
    if "scale" in ints:
        base["scale^2"] = float(ints["scale"] ** 2)
    base.update({k: float(v) for k, v in ints.items()})
    base.update({"2": 2.0, "-1 (sign flipped)": -1.0})
    named = dict(base)
    for name, value in base.items():
        if value not in (-1.0,):
            named[f"1/{name}"] = 1.0 / value
            named[f"-{name}"] = -value
    return named


def name_constant(c: float, config: Mapping[str, Any]) -> str:
    """Every name of the constant c (configuration-derived names first), joined by ' = '; "" if unnamed."""
    return " = ".join(name for name, value in named_constants(config).items() if abs(c - value) <= 1e-9 * abs(value))


@dataclass
class Fit:
    mistake: Mistake
    detail: str
    scale: float
    residual: float
    tolerance: float
    constant_name: str = ""

    @property
    def exact(self) -> bool:
        return not self.mistake.fit_scale

    def describe(self) -> str:
        what = self.mistake.name
        if self.mistake.fit_scale:
            named = f" = {self.constant_name}" if self.constant_name else ""
            what = f"scaled by a constant: got = {self.scale:.10g}{named} x expected (least squares)"
        elif self.detail:
            what = f"{what} ({self.detail})"
        return f"{what}; residual {self.residual:.1e} <= tolerance {self.tolerance:.1e}"


@dataclass
class Diagnosis:
    quantity: str
    fits: list[Fit] = field(default_factory=list)
    note: str = ""

    @property
    def mistake(self) -> str:
        """The name of the entry that fits best, or "" when none does."""
        return self.fits[0].mistake.name if self.fits else ""

    def describe(self) -> str:
        if not self.fits and self.note.startswith("nothing to diagnose"):
            return f"diagnosis {self.quantity}: {self.note}"
        if not self.fits:
            return f"diagnosis {self.quantity}: no catalogued mistake fits{'; ' + self.note if self.note else ''}"
        best = self.fits[0]
        line = f"diagnosis {self.quantity}: {best.describe()} -- {best.mistake.explanation}"
        others = sorted({f.mistake.name for f in self.fits[1:]} - {best.mistake.name})
        if others:
            line += f"; also consistent with: {', '.join(others)}"
        if self.note:
            line += f"; {self.note}"
        return line


def _fit(mistake: Mistake, detail: str, candidate: np.ndarray, ctx: Context, k: int) -> Fit | None:
    got, expected = ctx.got, ctx.expected
    if candidate is None or candidate.shape != got.shape or not np.all(np.isfinite(candidate)):
        return None
    scale = 1.0
    if mistake.fit_scale:
        denominator = float(np.sum(candidate * candidate))
        if denominator == 0.0 or not np.any(got):  # c = 0 is "never written", not a scale
            return None
        scale = float(np.sum(candidate * got)) / denominator
    model = scale * candidate
    magnitude = None if ctx.magnitude is None else abs(scale) * np.asarray(ctx.magnitude)
    tol = tolerance.rounding_tolerance(model, k, ctx.dtype, magnitude)
    # a candidate that equals the true result cannot explain a failure
    if not mistake.fit_scale and np.max(np.abs(candidate - expected), initial=0.0) <= tol:
        return None
    residual = float(np.max(np.abs(got - model), initial=0.0))
    if residual > tol:
        return None
    return Fit(mistake, detail, scale, residual, tol,
               name_constant(scale, ctx.case.config) if mistake.fit_scale else "")


def diagnose(ctx: Context, catalogue: list[Mistake] | None = None) -> Diagnosis:
    """Every catalogue entry that fits ``ctx.got``; exact fits (in catalogue order) before constant-scale ones."""
    diagnosis = Diagnosis(ctx.quantity)
    if ctx.expected.shape != ctx.got.shape:
        diagnosis.note = f"shape {ctx.got.shape} where {ctx.expected.shape} was expected"
        return diagnosis
    if not np.all(np.isfinite(ctx.got)):
        diagnosis.note = "the result holds inf or nan"
        return diagnosis
    k = ctx.spec.reduction_length(ctx.case.config)
    for mistake in catalogue if catalogue is not None else catalogue_for(ctx.spec):
        if not mistake.applies(ctx):
            continue
        for detail, candidate in mistake.candidates(ctx):
            found = _fit(mistake, detail, candidate, ctx, k)
            if found is not None:
                diagnosis.fits.append(found)
                break
    diagnosis.fits.sort(key=lambda f: not f.exact)
    if ctx.got.size == 1 and diagnosis.fits:
        diagnosis.note = "a single element: any constant fits, so a scale fit says little"
    return diagnosis


# ----------------------------------------------------------------------------------------------------------------
# From a case result
# ----------------------------------------------------------------------------------------------------------------

def _arrays_for(result, quantity: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Expected and got arrays of one quantity: from the comparisons that kept them (the PyTorch oracle first)."""
    keeping = [c for c in result.comparisons if c.quantity == quantity and c.arrays]
    keeping.sort(key=lambda c: c.oracle != "pytorch")
    if keeping:
        return keeping[0].arrays["expected"], keeping[0].arrays["got"]
    return None


def _recomputed(result) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Expected (PyTorch) and got (the implementation) for every quantity, when no comparison kept arrays (a failure
    seen only by finite differences)."""
    from .calls import evaluate
    from .probes import torch_outputs

    y, grads = torch_outputs(result.spec, result.case)
    evaluation = evaluate(result.spec, result.impl, result.case)
    out = {"forward": (y, evaluation.y)}
    out.update({quantity_label(n): (grads[n], evaluation.grads[n]) for n in result.spec.differentiable})
    return out


def diagnose_result(result) -> list[Diagnosis]:
    """A diagnosis for every failing quantity of a CaseResult."""
    from .probes import magnitudes
    from .report import true_op_agrees

    wrong = []
    for c in result.failures:
        if c.quantity not in wrong:
            wrong.append(c.quantity)
    if not wrong:
        return []
    try:
        mags = magnitudes(result.spec, result.case)
    except Exception:  # noqa: BLE001 -- without magnitudes the tolerance falls back to the arrays' own scale
        mags = {}
    recomputed = None
    out = []
    forward_wrong = "forward" in wrong
    for quantity in wrong:
        if forward_wrong and true_op_agrees(result, quantity):
            out.append(Diagnosis(quantity, note="nothing to diagnose: it equals the true op's gradient "
                                                "(pytorch/reference agree); only oracles that differentiate the "
                                                "implementation's own forward disagree"))
            continue
        pair = _arrays_for(result, quantity)
        if pair is None:
            if recomputed is None:
                try:
                    recomputed = _recomputed(result)
                except Exception as error:  # noqa: BLE001 -- the implementation raised: nothing to diagnose
                    out.append(Diagnosis(quantity, note=f"could not re-evaluate the implementation: {error}"))
                    continue
            pair = recomputed.get(quantity)
        if pair is None:
            out.append(Diagnosis(quantity, note="no arrays to compare"))
            continue
        expected, got = (np.asarray(a, dtype=np.float64) for a in pair)
        found = diagnose(Context(result.spec, result.case, quantity, expected, got, mags.get(quantity),
                                 getattr(result, "dtype", "float64")))
        out.append(_on_a_wider_case(result, found) if _too_small_to_tell(found, got, result.case) else found)
    return out


# ----------------------------------------------------------------------------------------------------------------
# A second, wider configuration: mistakes that coincide on a tiny case, and compound constants
# ----------------------------------------------------------------------------------------------------------------

#: only cases up to this many input elements are re-run wider (a large case tells the mistakes apart already)
WIDER_LIMIT = 10_000
#: how a configuration is widened: sizes grown by different amounts, so that products of them separate
GROW = {"N": 1, "C": 1, "C_in": 1, "C_out": 2, "K": 3, "m": 1, "n": 2, "H": 2, "W": 3}
KERNEL_AT_LEAST = {"kh": 2, "kw": 3}


def _too_small_to_tell(d: Diagnosis, got: np.ndarray, case: Case) -> bool:
    """A diagnosis worth repeating on a wider case: one or two elements (any constant, any mask fits), several
    entries fitting, all zeros, or a constant (whose name may be one of several products of sizes)."""
    if sum(int(np.size(a)) for a in case.arrays.values()) > WIDER_LIMIT:
        return False
    if got.size <= 2 and (d.fits or not d.note):
        return True
    names = {f.mistake.name for f in d.fits}
    if len(names) > 1 or d.mistake == "gradient never written":
        return True
    return bool(d.fits) and d.fits[0].mistake.fit_scale and _simple_ratio(d.fits[0].scale)


def _simple_ratio(c: float, most: int = 1000) -> bool:
    """c = p/q with q <= most: a constant that a product of sizes can make (1 + 1e-6 cannot)."""
    multiples = abs(c) * np.arange(1, most + 1)
    return bool(np.any(np.abs(multiples - np.round(multiples)) <= 1e-9 * multiples) and c != 0)


#: limit names that hold several configuration fields
LIMIT_FIELDS = {"kernel": ("kh", "kw"), "stride": ("sh", "sw"), "padding": ("ph", "pw"), "dilation": ("dilh", "dilw")}


def wider_config(spec: OpSpec, config: Mapping[str, Any], limits: Mapping[str, Any] = ()) -> dict | None:
    """The configuration with sizes grown (GROW) and 1-tap kernels widened, if the op accepts it; else with the
    sizes grown alone; None if neither is valid. Fields that a plug-in's ``limits`` name are kept."""
    kept = {f for name in limits for f in LIMIT_FIELDS.get(name, (name,))}
    grown = {k: v + GROW[k] if k in GROW and k not in kept and isinstance(v, int) else v for k, v in config.items()}
    widened = {k: max(v, KERNEL_AT_LEAST[k]) if k in KERNEL_AT_LEAST and k not in kept and isinstance(v, int)
               else v for k, v in grown.items()}
    for candidate in (widened, grown):
        try:
            if all(n >= 1 for n in spec.output_shape(candidate)):
                spec.make_case(candidate, 0)
                return candidate
        except Exception:  # noqa: BLE001 -- a configuration the op does not accept
            continue
    return None


def _sizes(spec: OpSpec, config: Mapping[str, Any]) -> dict[str, float]:
    """Named sizes of a configuration for naming a compound constant: its integers and the output's spatial sizes."""
    out = {k: float(v) for k, v in config.items() if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}
    shape = spec.output_shape(config)
    if len(shape) == 4:
        out.update({"H_out": float(shape[2]), "W_out": float(shape[3])})
    return out


def compound_names(scale1: float, sizes1: Mapping[str, float], scale2: float, sizes2: Mapping[str, float],
                   most: int = 3) -> list[str]:
    """Products of up to ``most`` sizes, each to the power +-1, times +-1 or 2, equal to scale1 on the first
    configuration and scale2 on the second: the factor the mistake is made of."""
    from itertools import combinations, product
    names = [k for k in sizes1 if k in sizes2 and sizes1[k] > 0 and sizes2[k] > 0
             and (sizes1[k] != 1 or sizes2[k] != 1)]
    found = []
    leads = [lead for lead in (1.0, -1.0, 2.0, -2.0, 0.5, -0.5) if lead * scale1 > 0]
    for count in range(0, most + 1):
        for chosen in combinations(names, count):
            for powers in product((1, -1), repeat=count):
                p1 = math.prod(sizes1[n] ** p for n, p in zip(chosen, powers))
                p2 = math.prod(sizes2[n] ** p for n, p in zip(chosen, powers))
                for lead in leads:
                    v1, v2 = lead * p1, lead * p2
                    if abs(v1 - scale1) <= 1e-9 * abs(v1) and abs(v2 - scale2) <= 1e-9 * abs(v2):
                        found.append(_product_name(lead, [n for n, p in zip(chosen, powers) if p > 0],
                                                   [n for n, p in zip(chosen, powers) if p < 0]))
        if found:
            return found
    return found


def _product_name(lead: float, up: list[str], down: list[str]) -> str:
    """'-2*kh/(N*W)' from the lead constant and the sizes above and below the line."""
    up = (["2"] if abs(lead) == 2 else []) + up
    down = (["2"] if abs(lead) == 0.5 else []) + down
    text = "*".join(up) or "1"
    if down:
        text += "/" + (f"({'*'.join(down)})" if len(down) > 1 else down[0])
    return ("-" if lead < 0 else "") + text


def _on_a_wider_case(result, small: Diagnosis) -> Diagnosis:
    """The diagnosis repeated on a wider configuration of the same seed (the implementation called again):
    taken when the quantity is wrong there too and the diagnosis there is unambiguous; a constant fitted on both
    is named as the product of sizes that gives both values."""
    from .calls import evaluate
    from .probes import magnitudes, torch_outputs

    spec, quantity = result.spec, small.quantity
    config = wider_config(spec, result.case.config, getattr(result, "limits", {}))
    if config is None:
        return small
    try:
        case = spec.make_case(config, result.case.seed)
        y, grads = torch_outputs(spec, case)
        evaluation = evaluate(spec, result.impl, case)
        expected = y if quantity == "forward" else grads[quantity[1:]]
        got = evaluation.y if quantity == "forward" else evaluation.grads[quantity[1:]]
        expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
        magnitude = magnitudes(spec, case).get(quantity)
        tol = tolerance.rounding_tolerance(expected, spec.reduction_length(config), evaluation.dtype, magnitude)
        if got.shape != expected.shape or not np.max(np.abs(got - expected), initial=0.0) > tol:
            return small  # right (or misshapen) there: the bug needs the failing case's own sizes
        wide = diagnose(Context(spec, case, quantity, expected, got, magnitude, evaluation.dtype))
    except Exception:  # noqa: BLE001 -- the implementation or the op refuses the wider case: keep the small one
        return small
    if not wide.fits and small.fits:
        small.fits, small.note = [], (f"the failing case alone fits '{small.fits[0].mistake.name}' but is too "
                                      f"small to tell, and on a wider case {case.describe()}, also wrong, nothing "
                                      f"fits")
        return small
    if not wide.fits or len({f.mistake.name for f in wide.fits}) > 1 and len(small.fits) <= len(wide.fits):
        return small
    best = wide.fits[0]
    if best.mistake.fit_scale and small.fits and small.fits[0].mistake.fit_scale:
        here = name_constant(small.fits[0].scale, result.case.config).split(" = ")
        common = [n for n in name_constant(best.scale, config).split(" = ") if n and n in here]
        names = common or compound_names(small.fits[0].scale, _sizes(spec, result.case.config), best.scale,
                                         _sizes(spec, config))
        best.constant_name = " = ".join(names)
    wide.note = "; ".join(filter(None, [wide.note, f"diagnosed on a wider case {case.describe()}, where the "
                                        f"mistakes that fit the failing case can be told apart"]))
    return wide


# ----------------------------------------------------------------------------------------------------------------
# Misbehaviours (an ImplementationError, no values to compare) that a common mistake explains
# ----------------------------------------------------------------------------------------------------------------

#: the largest x whose exp is finite in float64
EXP_LIMIT = float(np.log(np.finfo(np.float64).max))


def diagnose_misbehaviour(spec: OpSpec, case: Case | None, error: BaseException) -> list[str]:
    """Sentences naming a common mistake behind a misbehaviour: an empty gradient from a [p:-p] crop at padding
    0; NaN or inf from exp of inputs beyond its range (a softmax or cross-entropy without max subtraction)."""
    if case is None:
        return []
    problem, detail = getattr(error, "problem", ""), getattr(error, "detail", "")
    out = []
    padding = [case.config.get(k) for k in ("ph", "pw") if k in case.config]
    if "shape" in problem and "; (" in detail and any(p == 0 for p in padding):
        shapes = [part.split(" has shape ")[1].split(";")[0] for part in detail.splitlines() if " has shape " in part]
        if any(", 0" in s or "(0" in s for s in shapes):
            out.append("diagnosis: an empty axis at padding 0: a crop written [p:-p] is empty when p = 0 "
                       "(-0 is 0); crop with [p:p + H] instead")
    x = case.arrays.get("x")
    if ("NaN" in problem or "inf" in problem) and x is not None and np.max(np.abs(x), initial=0) > EXP_LIMIT:
        out.append(f"diagnosis: the inputs reach |x| = {np.max(np.abs(x)):.4g}, beyond exp's range ({EXP_LIMIT:.1f}):"
                   f" exp(x) overflows to inf (or all terms underflow to 0, 0/0 = NaN) unless the row maximum is "
                   f"subtracted first (softmax, cross-entropy: exp(x - max x) / sum exp(x - max x))")
    return out


__all__ = ["ACTIVATION_DERIVATIVES", "CATALOGUE", "Candidate", "Context", "Diagnosis", "Fit", "Mistake",
           "catalogue_for", "compound_names", "diagnose", "diagnose_result", "diagnose_misbehaviour",
           "named_constants", "register", "shift", "wider_config"]
