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
    """Everything the harness needs to know about an op, declared once (in the spirit of PyTorch's OpInfo).

    One comment per field below says what it holds, who calls it and what it must return. A spec written outside
    this repository is checked by ``validate`` when registered (``cnn_gradcheck.register``); see docs/generic.md.
    Callables receive ``config``, one dict drawn from ``configs()``; none of them may modify it.
    """

    # -- required ----------------------------------------------------------------------------------------------
    #: the op's name: how check_plugin("name", ...), get_spec and reports refer to it; unique among registered ops
    name: str
    #: the array arguments in the canonical order: forward(*arrays, **hyper), backward(dy, *arrays, **hyper);
    #: a tuple of distinct strings, e.g. ("x", "w", "b")
    arg_names: tuple[str, ...]
    #: ``configs(**fixed)`` -> a Hypothesis strategy drawing configuration dicts (sizes, strides, flags, ...),
    #: valid by construction (no filter/assume). Keyword arguments fix a field to a value or a strategy
    #: (``cnn_gradcheck.strategies.pick``); formula rows and plug-in limits use them. Shrinks towards small cases.
    configs: Callable[..., st.SearchStrategy]
    #: (config, rng) -> {arg name: float64 numpy array}, one entry per name in arg_names, drawn from the
    #: numpy Generator ``rng`` only (reproducible from the case's seed); inputs keep tolerance.MARGIN from the
    #: op's non-differentiable points (ReLU's 0, ties in a max window)
    make_arrays: Callable[[Mapping[str, Any], np.random.Generator], dict]
    #: config -> the shape of y as a tuple of ints (``()`` for a scalar loss); the upstream gradient dy is drawn
    #: with this shape, and an implementation returning another shape is reported as misbehaving
    output_shape: Callable[[Mapping[str, Any]], tuple]
    #: config -> dict of keyword hyperparameters passed to every forward/backward ({} when there are none)
    hyper: Callable[[Mapping[str, Any]], dict]
    #: (*tensors, **hyper) -> tensor: the same op in torch terms (torch.nn.functional), float64; the PyTorch
    #: oracle compares with its forward and autograd gradients, and tolerance policy 1 sizes the summed terms by
    #: running it on |inputs| with |dy|
    torch_forward: Callable[..., Any]
    #: the loop-based implementation this spec is validated against: an Implementation (name, forward, backward)
    #: in the canonical convention; the "reference" oracle and the diagnosis recompute with it
    reference: Implementation
    #: config -> the length K of the longest sum behind any element of y or of a gradient (an int >= 1);
    #: tolerance policy 1 allows ROUNDING_SAFETY * eps * K * scale between two exact computations
    reduction_length: Callable[[Mapping[str, Any]], int]

    # -- optional ----------------------------------------------------------------------------------------------
    #: config -> the number of terms summed into one element of y, where it is smaller than reduction_length (a
    #: convolution's C_in kh kw + 1 against its bias gradient's N Ho Wo); None: reduction_length. Policy 2's
    #: noise of <dy, f> (finite differences, the adjoint test's second identity) grows like its square root
    forward_reduction_length: Callable[[Mapping[str, Any]], int] | None = None
    #: the arguments that get a gradient, in the order backward returns them (None: all of arg_names); the others
    #: (targets, masks) are inputs only
    grad_args: tuple[str, ...] | None = None
    #: differentiable arguments in which the op is affine (conv's x, w and b): the adjoint oracle checks
    #: <A u, v> = <u, A^T v> for them, exactly up to rounding (tolerance policy 3)
    linear_args: tuple[str, ...] = ()
    #: differentiable arguments in which the op is piecewise linear (max pooling's routing, ReLU's mask): the
    #: adjoint test holds with the active pieces held fixed, i.e. for perturbations smaller than MARGIN
    piecewise_linear_args: tuple[str, ...] = ()
    #: (config, arrays) -> the distance of the case from the nearest non-differentiable point (inf if smooth);
    #: None: the op is smooth (kinks are still recognised by finite differences' one-sided jumps)
    kink_distance: Callable[[Mapping[str, Any], Mapping[str, np.ndarray]], float] | None = None
    #: a sentence naming where the op is not differentiable (quoted by kink verdicts)
    nondifferentiable: str = ""
    #: one line saying what the op computes (listings, docs)
    description: str = ""
    #: (config, arrays, dy) -> {quantity label ("forward", "dx", ...): size of the terms behind each element}, for
    #: ops whose formulas cancel even on |inputs| (softmax's y (dy - sum y dy), 1 - tanh^2); overrides the default
    #: estimate of tolerance policy 1 for the quantities it names. None: the default estimate alone
    magnitudes: Callable[[Mapping[str, Any], Mapping[str, np.ndarray], np.ndarray], dict] | None = None
    #: {label: Implementation}: independent derivations of the same op (conv as a sparse matrix, true convolution
    #: as a correlation with the kernel flipped); each is an oracle of its own, forward and gradients compared
    #: element-wise, so forward formulas get a second witness
    alternatives: Mapping[str, Implementation] = field(default_factory=dict)
    #: {kind: (config, arrays, rng) -> arrays}: inputs with special values placed on purpose (exact zeros, one
    #: value repeated, tiny or huge magnitudes, ties), within what the op allows; a share of the drawn cases and one
    #: explicit example per kind in every plug-in check
    special_values: Mapping[str, Callable[..., dict]] = field(default_factory=dict)
    #: the kinds among special_values that sit exactly on a non-differentiable point (ReLU at 0, tied maxima):
    #: judged by the subgradient check, not by finite differences
    kink_values: tuple[str, ...] = ()
    #: (config, arrays, dy, grads) -> {arg name: gradient}: the admissible gradient (an element of the
    #: subdifferential: the argmax routed to one of the tied cells, ReLU'(0) one value in {0, 1}) nearest to the one
    #: returned; compared under tolerance policy 1
    subgradient: Callable[..., dict] | None = None
    #: ((name, partial config), ...): corner configurations drawn on purpose in a share of the cases (every tap in
    #: padding, a kernel as large as the padded input, ...); the partial config fixes fields (values or strategies)
    #: within the op's validity rules
    corners: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    #: names among ``corners`` that run only as explicit cases, never drawn: corners that fix many fields at once
    #: (a whole crash configuration), from which Hypothesis's shrinker cannot step back to a small generic case
    explicit_corners: tuple[str, ...] = ()
    #: {hyperparameter: limits}: hyperparameters a plug-in may not take (max pooling's dilation), with the limits
    #: that hold them at their neutral value, where they are not passed; a plug-in whose functions take no such
    #: keyword is checked within those limits, and its summary says so
    optional_hyper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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


def forward_terms(spec: OpSpec, config: Mapping[str, Any]) -> int:
    """The number of terms summed into one element of the forward's output (``forward_reduction_length``, else
    ``reduction_length``)."""
    return (spec.forward_reduction_length or spec.reduction_length)(config)


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


# ------------------------------------------------------------------------------------------ validating a spec

class SpecError(ValueError):
    """A spec that cannot work (a missing field, inconsistent names, a callable returning the wrong kind of value);
    the message names the op, the field and what to write instead. Raised by ``validate``, before any check runs."""


#: fields that must be callables, with the call the harness makes
_CALLABLES = {"configs": "configs(**fixed) -> strategy of config dicts",
              "make_arrays": "make_arrays(config, rng) -> {arg name: array}",
              "output_shape": "output_shape(config) -> tuple", "hyper": "hyper(config) -> dict",
              "torch_forward": "torch_forward(*tensors, **hyper) -> tensor",
              "reduction_length": "reduction_length(config) -> int"}
_OPTIONAL_CALLABLES = {"kink_distance": "kink_distance(config, arrays) -> float",
                       "magnitudes": "magnitudes(config, arrays, dy) -> {quantity label: array}"}


def _names(spec_name: str, field_name: str, value, allow_none: bool = False) -> tuple[str, ...] | None:
    """A field holding argument names: a tuple (or list) of distinct strings."""
    if value is None and allow_none:
        return None
    if isinstance(value, str):  # ("x") is a string, not a tuple: the classic one-element-tuple slip
        raise SpecError(f"op {spec_name!r}: {field_name}={value!r} is a string; write a tuple of names: "
                        f"{field_name}=({value!r},)")
    if not isinstance(value, (tuple, list)) or not all(isinstance(n, str) and n for n in value):
        raise SpecError(f"op {spec_name!r}: {field_name}={value!r} must be a tuple of argument names (strings)")
    if len(set(value)) != len(value):
        raise SpecError(f"op {spec_name!r}: {field_name}={tuple(value)!r} names an argument twice")
    return tuple(value)


def _is_implementation(value) -> bool:
    return callable(getattr(value, "forward", None)) and callable(getattr(value, "backward", None))


def validate_declarations(spec) -> None:
    """The checks that need no call: every field present and of the right kind, names consistent."""
    if not isinstance(spec, OpSpec):
        raise SpecError(f"expected a cnn_gradcheck.OpSpec, got {type(spec).__name__} ({spec!r:.80}); build one with "
                        f"OpSpec(name=..., arg_names=..., configs=..., ...) (docs/generic.md)")
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise SpecError(f"OpSpec.name={spec.name!r}: the op needs a non-empty name (a string)")
    op = spec.name
    args = _names(op, "arg_names", spec.arg_names)
    if not args:
        raise SpecError(f"op {op!r}: arg_names is empty; name the op's array arguments in order, e.g. ('x', 'w')")
    grads = _names(op, "grad_args", spec.grad_args, allow_none=True)
    differentiable = args if grads is None else grads
    for field_name in ("grad_args", "linear_args", "piecewise_linear_args"):
        names = (_names(op, field_name, getattr(spec, field_name), allow_none=field_name == "grad_args") or ())
        within, word = (args, "arg_names") if field_name == "grad_args" else (differentiable, "the differentiable "
                                                                              "arguments (grad_args)")
        unknown = [n for n in names if n not in within]
        if unknown:
            raise SpecError(f"op {op!r}: {field_name} names {', '.join(map(repr, unknown))}, which "
                            f"{'is' if len(unknown) == 1 else 'are'} not among {word} {within!r}")
    both = set(spec.linear_args) & set(spec.piecewise_linear_args)
    if both:
        raise SpecError(f"op {op!r}: {', '.join(sorted(both))} declared both linear and piecewise linear; an "
                        f"affine argument belongs in linear_args only")
    for field_name, call in _CALLABLES.items():
        if not callable(getattr(spec, field_name)):
            raise SpecError(f"op {op!r}: {field_name} is {getattr(spec, field_name)!r}, not a callable; the "
                            f"harness calls {call}")
    for field_name, call in _OPTIONAL_CALLABLES.items():
        value = getattr(spec, field_name)
        if value is not None and not callable(value):
            raise SpecError(f"op {op!r}: {field_name} is {value!r}; give None or a callable {call}")
    if not _is_implementation(spec.reference):
        raise SpecError(f"op {op!r}: reference is {spec.reference!r:.80}; it must be an Implementation(name, "
                        f"forward, backward) in the canonical convention")
    if not isinstance(spec.alternatives, Mapping) or not all(
            isinstance(k, str) and _is_implementation(v) for k, v in spec.alternatives.items()):
        raise SpecError(f"op {op!r}: alternatives must map labels (strings) to Implementations")
    if spec.kink_distance is None and spec.piecewise_linear_args:
        raise SpecError(f"op {op!r}: piecewise_linear_args {spec.piecewise_linear_args!r} need kink_distance, so "
                        f"that the adjoint test can keep its perturbation inside one piece")


def draw_one(strategy: st.SearchStrategy):
    """One deterministic draw from a strategy (no shrinking: cheap)."""
    from hypothesis import HealthCheck, Phase, given, settings

    drawn = []

    @settings(max_examples=1, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(value):
        drawn.append(value)

    draw()
    return drawn[0]


def _call(op: str, what: str, fn: Callable, *args, config=None, **kwargs):
    """A spec callable on the probe; whatever it raises becomes a SpecError naming the field and the config."""
    try:
        return fn(*args, **kwargs)
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 -- the spec author's code: report which field raised, not a traceback
        where = f" at config {dict(config)!r}" if config is not None else ""
        raise SpecError(f"op {op!r}: {what} raised {type(e).__name__}: {e}{where}") from None


def validate(spec: OpSpec, *, probe: bool = True) -> Case | None:
    """Check a spec before any check runs it; raise SpecError saying what to fix. With ``probe``, draw one
    configuration and call every callable of the spec on it (configs, output_shape, hyper, reduction_length,
    make_arrays, the reference's and torch's forward, the reference's backward); returns that probe case."""
    validate_declarations(spec)
    if not probe:
        return None
    op = spec.name
    strategy = _call(op, "configs()", spec.configs)
    if not isinstance(strategy, st.SearchStrategy):
        raise SpecError(f"op {op!r}: configs() returned {type(strategy).__name__}, not a Hypothesis strategy; "
                        f"return e.g. st.fixed_dictionaries({{'N': st.integers(1, 3), ...}})")
    config = _call(op, "drawing from configs()", draw_one, strategy)
    if not isinstance(config, Mapping):
        raise SpecError(f"op {op!r}: configs() draws {type(config).__name__} values ({config!r:.80}); it must draw "
                        f"dicts of configuration fields (st.fixed_dictionaries or st.builds(dict, ...))")
    shape = _call(op, "output_shape(config)", spec.output_shape, config, config=config)
    if not isinstance(shape, tuple) or not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise SpecError(f"op {op!r}: output_shape(config) returned {shape!r}; it must return a tuple of "
                        f"non-negative ints (() for a scalar), e.g. (c['N'], c['K']), at config {dict(config)!r}")
    hyper = _call(op, "hyper(config)", spec.hyper, config, config=config)
    if not isinstance(hyper, dict) or not all(isinstance(k, str) for k in hyper):
        raise SpecError(f"op {op!r}: hyper(config) returned {hyper!r:.80}; it must return a dict of keyword "
                        f"arguments ({{}} when there are none)")
    k = _call(op, "reduction_length(config)", spec.reduction_length, config, config=config)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SpecError(f"op {op!r}: reduction_length(config) returned {k!r}; it must return an int >= 1 (the "
                        f"length of the longest sum behind an element)")
    if spec.forward_reduction_length is not None:
        kf = _call(op, "forward_reduction_length(config)", spec.forward_reduction_length, config, config=config)
        if isinstance(kf, bool) or not isinstance(kf, (int, np.integer)) or not 1 <= kf <= k:
            raise SpecError(f"op {op!r}: forward_reduction_length(config) returned {kf!r}; it must return an int "
                            f"between 1 and reduction_length(config) = {k} (the terms summed into one output)")
    case = _call(op, "make_arrays(config, rng)", spec.make_case, config, 0, config=config)
    if not isinstance(case.arrays, Mapping) or set(case.arrays) != set(spec.arg_names):
        got = sorted(case.arrays) if isinstance(case.arrays, Mapping) else type(case.arrays).__name__
        raise SpecError(f"op {op!r}: make_arrays(config, rng) returned {got}; it must return a dict with one "
                        f"array per name in arg_names {spec.arg_names!r}")
    for name, a in case.arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            raise SpecError(f"op {op!r}: make_arrays gives {name} as {type(a).__name__} "
                            f"{getattr(a, 'dtype', '')}; every array must be a float64 numpy array")
    arrays = ordered_arrays(spec, case.arrays)
    y = np.asarray(_call(op, "reference.forward", spec.reference.forward, *arrays, config=config, **hyper))
    if y.shape != shape:
        raise SpecError(f"op {op!r}: reference.forward returned shape {y.shape}, but output_shape(config) says "
                        f"{shape} at config {dict(config)!r}")
    grads = _call(op, "reference.backward", spec.reference.backward, case.dy, *arrays, config=config, **hyper)
    grads = as_grad_dict(spec, grads)
    for name in spec.differentiable:
        if name not in grads or np.shape(grads[name]) != case.arrays[name].shape:
            raise SpecError(f"op {op!r}: reference.backward gives no gradient of {name}'s shape "
                            f"{case.arrays[name].shape} (one per name in grad_args {spec.differentiable!r}, in "
                            f"that order, or a dict by name) at config {dict(config)!r}")
    import torch
    tensors = [torch.tensor(a, dtype=torch.float64) for a in arrays]
    t = _call(op, "torch_forward", spec.torch_forward, *tensors, config=config, **hyper)
    if tuple(getattr(t, "shape", ())) != shape or not isinstance(t, torch.Tensor):
        raise SpecError(f"op {op!r}: torch_forward returned {type(t).__name__} of shape "
                        f"{tuple(getattr(t, 'shape', ()))}; a tensor of output_shape(config) {shape} was expected")
    return case
