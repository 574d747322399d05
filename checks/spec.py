"""One declarative spec per op (in the spirit of PyTorch's OpInfo), the test case it generates, and the formulas
of the derivations that the main job validates through it.

The canonical calling convention of an op, which every implementation (reference or plug-in) follows:

    y = forward(*arrays, **hyper)                 # arrays in spec.arg_names order, hyperparameters by keyword
    grads = backward(dy, *arrays, **hyper)        # one gradient per name in spec.grad_args, in that order

``arrays`` are float64 numpy arrays (NCHW images, (C_out, C_in, kh, kw) kernels); ``dy`` is the upstream
gradient dE/dy, shaped like y (a 0-d array for losses). ``backward`` may return a tuple/list in grad_args order or a
dict keyed by arg name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class Implementation:
    """A forward/backward pair in the canonical convention, with a name for reports."""

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]

    @classmethod
    def from_module(cls, module, prefix: str, name: str | None = None) -> "Implementation":
        """``module.<prefix>_forward`` and ``module.<prefix>_backward`` as an implementation."""
        return cls(name or f"{module.__name__}.{prefix}",
                   getattr(module, f"{prefix}_forward"), getattr(module, f"{prefix}_backward"))


#: configuration keys added by the inputs stage (cnn_gradcheck.strategies.case_configs), present only when not generic
VALUES_KEY, CORNER_KEY, EXAMPLE_KEY = "values", "corner", "example"
GENERIC = "generic"


@dataclass(frozen=True)
class Case:
    """One concrete example: a configuration, the arrays it determines, and an upstream gradient."""

    op: str
    config: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]
    dy: np.ndarray
    seed: int
    #: quantities derived from the case alone (terms' magnitudes, kink distance), computed once, on first use
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def values(self) -> str:
        """The kind of special values placed in this case on purpose ("generic" when none; ``OpSpec.special_values``)."""
        return self.config.get(VALUES_KEY, GENERIC)

    @property
    def corner(self) -> str | None:
        """The name of the corner configuration this case was drawn as (``OpSpec.corners``), or None."""
        return self.config.get(CORNER_KEY)

    @property
    def explicit(self) -> bool:
        """An explicit example given by the user (its arrays are not drawn from the seed)."""
        return EXAMPLE_KEY in self.config

    def describe(self) -> str:
        items = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.op}({items}; seed={self.seed})"

    def __repr__(self) -> str:  # what Hypothesis prints as the falsifying example: the configuration, not the arrays
        return f"Case({self.describe()})"


@dataclass(frozen=True)
class OpSpec:
    """Everything the harness needs to know about an op, declared once.

    configs:        ``configs(**fixed)`` -> strategy of config dicts; keyword arguments fix or bound fields
                    (used by formula rows and by plug-ins that declare limits). Valid by construction.
    make_arrays:    (config, rng) -> {arg name: float64 array}; keeps MARGIN from non-differentiable points.
    output_shape:   config -> shape of y.
    hyper:          config -> keyword hyperparameters passed to forward/backward.
    torch_forward:  (*tensors, **hyper) -> tensor; the same op in torch.nn.functional terms (the PyTorch oracle).
    reference:      the loop-based implementation this spec is validated against.
    reduction_length: config -> length of the longest sum behind any element of y or of a gradient (tolerance).
    linear_args:    args in which the op is affine (adjoint oracle applies exactly).
    piecewise_linear_args: args in which the op is piecewise linear: the adjoint test holds with the active pieces
                    (argmax, ReLU mask) held fixed, i.e. for perturbations smaller than MARGIN.
    kink_distance:  (config, arrays) -> distance from the nearest non-differentiable point (inf if smooth).
    nondifferentiable: a sentence naming where the op is not differentiable (for kink explanations).
    alternatives:   {label: Implementation}: independent derivations of the same op (conv as a sparse matrix,
                    true convolution as a correlation with the kernel flipped); each is an oracle of its own,
                    forward and gradients compared element-wise, so forward formulas get a second witness.
    magnitudes:     (config, arrays, dy) -> {quantity label: size of the terms behind each element}, for ops
                    whose formulas cancel even on |inputs| (softmax's y (dy - sum y dy), 1 - tanh^2); overrides
                    the default estimate of tolerance policy 1 for the quantities it names.
    special_values: {kind: (config, arrays, rng) -> arrays}: inputs with special values placed on purpose (exact
                    zeros, one value repeated, tiny or huge magnitudes, ties), within what the op allows; a share of
                    the drawn cases and one explicit example per kind in every plug-in check.
    kink_values:    the kinds among special_values that sit exactly on a non-differentiable point (ReLU at 0, tied
                    maxima): judged by the subgradient check, not by finite differences.
    subgradient:    (config, arrays, dy, grads) -> {arg name: gradient}: the admissible gradient (an element of the
                    subdifferential a backward may return: the argmax routed to one of the tied cells, ReLU'(0) one
                    value in {0, 1}) nearest to the one returned; compared under tolerance policy 1.
    corners:        ((name, partial config), ...): corner configurations drawn on purpose in a share of the cases
                    (every tap in padding, a kernel as large as the padded input, ...); the partial config fixes
                    fields (values or strategies) within the op's validity rules.
    """

    name: str
    arg_names: tuple[str, ...]
    configs: Callable[..., st.SearchStrategy]
    make_arrays: Callable[[Mapping[str, Any], np.random.Generator], dict]
    output_shape: Callable[[Mapping[str, Any]], tuple]
    hyper: Callable[[Mapping[str, Any]], dict]
    torch_forward: Callable[..., Any]
    reference: Implementation
    reduction_length: Callable[[Mapping[str, Any]], int]
    grad_args: tuple[str, ...] | None = None
    linear_args: tuple[str, ...] = ()
    piecewise_linear_args: tuple[str, ...] = ()
    kink_distance: Callable[[Mapping[str, Any], Mapping[str, np.ndarray]], float] | None = None
    nondifferentiable: str = ""
    description: str = ""
    magnitudes: Callable[[Mapping[str, Any], Mapping[str, np.ndarray], np.ndarray], dict] | None = None
    alternatives: Mapping[str, Implementation] = field(default_factory=dict)
    #: special values on purpose: kind -> (config, arrays, rng) -> arrays (see the class docstring)
    special_values: Mapping[str, Callable[..., dict]] = field(default_factory=dict)
    #: the kinds of special values that put the case on a kink or tie (judged by the subgradient check)
    kink_values: tuple[str, ...] = ()
    #: (config, arrays, dy, grads) -> the admissible gradient nearest to grads, at kinks and ties
    subgradient: Callable[..., dict] | None = None
    #: corner configurations: ((name, {field: value or strategy}), ...), drawn in a share of the cases
    corners: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @property
    def differentiable(self) -> tuple[str, ...]:
        return self.grad_args if self.grad_args is not None else self.arg_names

    def make_case(self, config: Mapping[str, Any], seed: int) -> Case:
        """The arrays and the upstream gradient of one configuration, reproducibly from ``seed``."""
        rng = np.random.default_rng(seed)
        arrays = self.make_arrays(config, rng)
        dy = rng.standard_normal(self.output_shape(config))
        kind = config.get(VALUES_KEY, GENERIC)
        if kind != GENERIC:  # special values on purpose, from their own stream: generic cases stay as they were
            if kind not in self.special_values:
                raise ValueError(f"{self.name} has no special values {kind!r}; its kinds are "
                                 f"{', '.join(map(repr, (GENERIC, *self.special_values)))}")
            arrays = dict(self.special_values[kind](config, arrays, np.random.default_rng([seed, 0x5BEC])))
        return Case(self.name, dict(config), arrays, np.asarray(dy, dtype=np.float64), seed)

    def cases(self, **fixed) -> st.SearchStrategy:
        """Strategy of cases; shrinks the configuration first, then the seed towards 0. A share of the cases are
        corner configurations or carry special values (``cnn_gradcheck.strategies.case_configs``)."""
        from .strategies import case_configs  # the inputs stage: configurations, corners, special values
        return st.builds(self.make_case, case_configs(self, fixed), st.integers(0, 2**32 - 1))


@dataclass(frozen=True)
class Formula:
    """A formula of the derivations, validated as some quantities of an op on a restricted configuration space.

    quantities: names among "forward" and the op's grad args ("x", "w", ...) that this formula is about.
    fixed:      keyword restrictions passed to ``spec.configs`` (e.g. one channel, stride 1).
    """

    name: str
    equation: str
    source: str
    op: str
    quantities: tuple[str, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)


def derived(spec: OpSpec, case: Case, what: str, compute: Callable[[], Any]) -> Any:
    """A quantity derived from (spec, case), computed on first use and kept on the case; keyed by the spec's
    identity too, since a case may be checked under several specs of the same op."""
    key = (what, id(spec))
    entry = case.derived.get(key)
    if entry is None or entry[0] is not spec:
        entry = case.derived[key] = (spec, compute())
    return entry[1]


def kink_distance(spec: OpSpec, case: Case) -> float:
    """The case's distance from the op's nearest non-differentiable point (inf if none is declared); computed once
    per case for the oracles that need it (finite differences, adjoint)."""
    return derived(spec, case, "kink distance", lambda: np.inf if spec.kink_distance is None
                   else float(spec.kink_distance(case.config, case.arrays)))


def as_grad_dict(spec: OpSpec, grads) -> dict[str, Any]:
    """Normalize what a backward returned (tuple in grad_args order, or dict) to {arg name: gradient}."""
    names = spec.differentiable
    if isinstance(grads, Mapping):
        return {name: grads[name] for name in names if name in grads}
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    return dict(zip(names, grads))


def quantity_label(quantity: str) -> str:
    """'forward' stays; an argument name 'x' becomes 'dx' (the gradient dE/dx)."""
    return quantity if quantity == "forward" else f"d{quantity}"


def ordered_arrays(spec: OpSpec, arrays: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
    return [arrays[name] for name in spec.arg_names]
