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
    """A forward/backward pair in the canonical convention, with a name for reports.

    The fields after ``backward`` are what the harness reads about how to call it (``cnn_gradcheck.calls``):
    repeat_calls:    call twice and require bit-identical results (plug-ins: catches state kept between calls).
    nondeterministic: declared unrepeatable (atomics, random kernels): results are compared under a tolerance
                     instead of bit for bit.
    failure_hint:    a sentence appended to a misbehaviour's message (the layout inputs arrived in, the axes).
    precisions_seen: the precisions of what the implementation returned, filled in by the calls it made (a plug-in
                     in float32 returns float32 even where the float64 conversion hides it).
    """

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    repeat_calls: bool = False
    nondeterministic: bool = False
    failure_hint: str = ""
    precisions_seen: list = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_module(cls, module, prefix: str, name: str | None = None) -> "Implementation":
        """``module.<prefix>_forward`` and ``module.<prefix>_backward`` as an implementation."""
        return cls(name or f"{module.__name__}.{prefix}",
                   getattr(module, f"{prefix}_forward"), getattr(module, f"{prefix}_backward"))


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

    @property
    def differentiable(self) -> tuple[str, ...]:
        return self.grad_args if self.grad_args is not None else self.arg_names

    def make_case(self, config: Mapping[str, Any], seed: int) -> Case:
        """The arrays and the upstream gradient of one configuration, reproducibly from ``seed``."""
        rng = np.random.default_rng(seed)
        arrays = self.make_arrays(config, rng)
        dy = rng.standard_normal(self.output_shape(config))
        return Case(self.name, dict(config), arrays, np.asarray(dy, dtype=np.float64), seed)

    def cases(self, **fixed) -> st.SearchStrategy:
        """Strategy of cases; shrinks the configuration first, then the seed towards 0."""
        return st.builds(self.make_case, self.configs(**fixed), st.integers(0, 2**32 - 1))


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
