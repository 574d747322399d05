"""Declared conventions: how a plug-in's numbers differ from the op's canonical ones by a known factor, and which
element of a tuple it returns is the op's output. The plug-in declares them (``conventions=(...)``, ``output=0``);
the harness converts what the plug-in returns to the canonical convention before any oracle sees it, and names the
conventions in its reports. A layer that is wrong *within* its declared convention is still caught: only the
declared factor is undone.

With N the batch size (the first axis of the first argument, canonical axes) and K the elements per sample:

| name                | the plug-in computes                                  | canonical value =                 |
|---------------------|-------------------------------------------------------|-----------------------------------|
| batch_mean_params   | parameter gradients averaged over the batch (dW / N)  | parameter gradients x N           |
| mean_loss           | a loss averaged over the batch: E / N                 | forward and gradients x N         |
| element_mean_loss   | a loss averaged over every element: E / (N K)         | forward and gradients x N K       |
| unhalved            | squared error without the 1/2: sum (t - y)^2 = 2 E    | forward and gradients x 1/2       |
| no_upstream         | a loss backward without dE (the gradient for dE = 1)  | gradients x dE (the upstream)     |
| fused_softmax_ce    | softmax-CE backward returning p - t, without dE       | gradients x dE                    |

(p - t is the canonical dE/dz = (sum_j t_j) p - t for dE = 1 whenever the rows of t sum to 1, which they do in every
generated case but those with the op's "unnormalised targets" special values: a plug-in declaring fused_softmax_ce is
checked without those (``within_domain``), its convention's domain; fused_softmax_ce is no_upstream otherwise, named
as the layer's authors name it.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .calls import ImplementationError, describe_call
from .layouts import PluginOptionError
from .spec import OpSpec


def _batch(arrays) -> int:
    first = next(iter(arrays.values()))
    return int(first.shape[0]) if np.ndim(first) else 1


def _per_sample(arrays) -> int:
    first = next(iter(arrays.values()))
    return int(np.size(first) // max(_batch(arrays), 1))


_SCALAR: dict = {}


def _scalar_output(spec: OpSpec) -> bool:
    """Whether the op's output is a scalar (a loss)."""
    if spec.name not in _SCALAR:
        from .options import _draw_once
        _SCALAR[spec.name] = spec.output_shape(_draw_once(spec.configs())) == ()
    return _SCALAR[spec.name]


#: ops whose output is a squared error (``unhalved`` applies)
SQUARED_ERRORS = ("mse", "toolbox_mse")


@dataclass(frozen=True)
class Convention:
    name: str
    meaning: str                                   # one line for reports and the docs' table
    applies: Callable[[OpSpec], bool]              # which ops it can be declared for
    why_not: str                                   # what to say when it cannot
    forward: Callable[[Mapping[str, np.ndarray]], float] = lambda arrays: 1.0   # canonical y = factor * y
    gradient: Callable[[OpSpec, str, Mapping[str, np.ndarray]], float] = lambda spec, name, arrays: 1.0
    upstream: bool = False                         # True: backward is called without dE, gradients x dE
    outside: tuple[str, ...] = ()                  # kinds of special values outside the convention's domain


def _params(spec: OpSpec) -> tuple[str, ...]:
    """The parameters of a layer: its differentiable arguments after the first (the input)."""
    return spec.differentiable[1:]


CONVENTIONS = {c.name: c for c in (
    Convention("batch_mean_params", "parameter gradients are batch means (divided by N); converted by x N",
               lambda spec: not _scalar_output(spec) and len(spec.differentiable) > 1,
               "it is for layers with parameters (an input and weights), whose output keeps the batch axis",
               gradient=lambda spec, name, arrays: _batch(arrays) if name in _params(spec) else 1.0),
    Convention("mean_loss", "the loss is the batch mean E / N; forward and gradients converted by x N",
               _scalar_output, "it is for losses (a scalar output)",
               forward=_batch, gradient=lambda spec, name, arrays: _batch(arrays)),
    Convention("element_mean_loss", "the loss is the mean over all N K elements; forward and gradients "
               "converted by x N K", _scalar_output, "it is for losses (a scalar output)",
               forward=lambda arrays: _batch(arrays) * _per_sample(arrays),
               gradient=lambda spec, name, arrays: _batch(arrays) * _per_sample(arrays)),
    Convention("unhalved", "squared error without the 1/2 (sum (t - y)^2); forward and gradients converted by x 1/2",
               lambda spec: spec.name in SQUARED_ERRORS, f"it is for the squared errors {', '.join(SQUARED_ERRORS)}",
               forward=lambda arrays: 0.5, gradient=lambda spec, name, arrays: 0.5),
    Convention("no_upstream", "backward takes no upstream gradient dE (it returns the gradient for dE = 1); "
               "converted by x dE", _scalar_output, "it is for losses (a scalar output)", upstream=True),
    Convention("fused_softmax_ce", "softmax-CE backward returns p - t without dE (rows of t sum to 1); converted "
               "by x dE", lambda spec: spec.name == "softmax_cross_entropy",
               "it is for softmax_cross_entropy (logits in, p - t back)", upstream=True,
               outside=("unnormalised targets",)),
)}

_DOMAINS: dict = {}


def within_domain(spec: OpSpec, names) -> OpSpec:
    """``spec`` without the kinds of special values outside the declared conventions' domain (fused_softmax_ce:
    targets whose rows do not sum to 1, where p - t is not the gradient); ``spec`` itself when none is. Unknown
    names are left to ``declare``, which reports them. Kept alive once made: caches key specs by identity."""
    names = (names,) if isinstance(names, str) else tuple(names or ())
    outside = {kind for n in names if n in CONVENTIONS for kind in CONVENTIONS[n].outside} & set(spec.special_values)
    if not outside:
        return spec
    key = (spec.name, id(spec), tuple(sorted(outside)))
    if key not in _DOMAINS:
        from dataclasses import replace
        _DOMAINS[key] = (spec, replace(spec, special_values={k: v for k, v in spec.special_values.items()
                                                             if k not in outside}))
    return _DOMAINS[key][1]


@dataclass(frozen=True)
class Declared:
    """The conventions a plug-in declared, validated for one op: converts its results to the canonical ones."""

    spec: OpSpec
    names: tuple[str, ...]

    @property
    def upstream_passed(self) -> bool:
        """False when backward is called without dE (no_upstream, fused_softmax_ce)."""
        return not any(CONVENTIONS[n].upstream for n in self.names)

    def forward(self, y: np.ndarray, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        factor = float(np.prod([CONVENTIONS[n].forward(arrays) for n in self.names]))
        return y if factor == 1.0 else y * factor

    def gradients(self, grads: Mapping[str, np.ndarray], dy: np.ndarray, arrays: Mapping[str, np.ndarray]) -> dict:
        out = {}
        for name, g in grads.items():
            factor = 1.0
            for n in self.names:
                factor *= CONVENTIONS[n].gradient(self.spec, name, arrays)
            g = g if factor == 1.0 else g * factor
            out[name] = g if self.upstream_passed else g * float(dy)
        return out

    def describe(self) -> str:
        return "; ".join(f"{n}: {CONVENTIONS[n].meaning}" for n in self.names)


def declare(spec: OpSpec, names, kind: str = "numpy") -> Declared:
    """The conventions ``names`` checked for ``spec`` (a PluginOptionError names an unknown one, one that does not
    apply to the op, or no_upstream for an autograd adapter, where dE always enters through autograd)."""
    names = (names,) if isinstance(names, str) else tuple(names or ())
    for n in names:
        if n not in CONVENTIONS:
            raise PluginOptionError(f"{spec.name}: bad plug-in option conventions={names!r}: unknown convention "
                                    f"{n!r}; the conventions are {', '.join(CONVENTIONS)}")
        c = CONVENTIONS[n]
        if not c.applies(spec):
            raise PluginOptionError(f"{spec.name}: bad plug-in option conventions={names!r}: {n} does not apply "
                                    f"to {spec.name}: {c.why_not}")
        if c.upstream and kind in ("torch", "jax"):
            raise PluginOptionError(f"{spec.name}: bad plug-in option conventions={names!r}: {n} is for a "
                                    f"hand-written backward; a {kind} plug-in's gradients come from autograd, "
                                    f"which always takes dE")
    return Declared(spec, names)


def select_output(value: Any, output: int | None, role: str = "forward") -> Any:
    """The op's output among what a forward returned: element ``output`` of a tuple (the rest, indices, a cache or
    a mask, never reaches a comparison); a tuple without ``output`` declared is reported with how to choose."""
    if not isinstance(value, (tuple, list)):
        if output is not None and output != 0:
            raise ImplementationError("wrong output type", f"{role} returned one value, not a tuple, but output="
                                      f"{output} was declared")
        return value
    if output is None:
        raise ImplementationError("tuple returned", f"{role} returned a tuple of {len(value)} elements: "
                                  f"{describe_call('', list(value), {})[1:-1]}; the op's output is one array: "
                                  f"declare which element it is with the adapter option output=<index> (e.g. "
                                  f"output=0; the other elements are then ignored)")
    if not -len(value) <= output < len(value):
        raise ImplementationError("tuple returned", f"{role} returned a tuple of {len(value)} elements; output="
                                  f"{output} names none of them")
    return value[output]
