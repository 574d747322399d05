"""Check any forward/backward pair, in the spirit of JAX's ``check_grads`` and torch's ``gradcheck``:

    from cnn_gradcheck import check
    report = check(forward, backward, {"x": x, "gamma": gamma, "beta": beta},   # example inputs, or strategies
                   reference=torch_batch_norm,                                 # optional: a torch function
                   hyper={"eps": 1e-5})                                        # keyword arguments of both
    print(report.summary())

The user's code follows the canonical convention (``cnn_gradcheck.spec``): ``forward(*arrays, **hyper) -> y`` and
``backward(dy, *arrays, **hyper) -> one gradient per input`` (a tuple in input order, or a dict by name); arrays are
numpy (or torch tensors with ``kind="torch"``); a torch function needs no backward (``backward=None``: autograd).

Nothing here re-implements an oracle. ``check`` declares an ``OpSpec`` on the fly, whose configurations are the
user's inputs (a dict of arrays, a dict of strategies, or a strategy of dicts), adapts the user's code with
``cnn_gradcheck.plugins`` (every guard of ``cnn_gradcheck.calls``: exceptions, wrong shapes, NaN, mutated inputs,
nondeterminism, memory layouts) and runs ``runner.check_case`` with these oracles of ``oracles.ORACLES``:

- "finite differences" always; "adjoint" for the inputs named in ``linear``;
- "pytorch" when the reference is a torch function (forward and autograd gradients);
- "reference" when the reference is numpy: a (forward, backward) pair judges both, a forward alone judges the
  forward (the gradients are then judged by finite differences of a forward that agrees with the reference).

Hypothesis draws the cases (the same seed gives the same dy and directions) and shrinks a failure over the user's
strategies; the failure report (``runner.GradientCheckFailure``) names the shrunk inputs. Term sizes (tolerance
policy 1) come from the reference on |inputs|; nothing has to be declared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from hypothesis import given, strategies as st

from . import plugins, profiles
from .calls import ImplementationError
from .compare import NA
from .layouts import check_layouts
from .plugins import PluginCheckFailure
from .runner import CaseResult, check_case, essential_verdict
from .spec import Case, Implementation, OpSpec, SpecError, draw_one, as_grad_dict, validate_declarations

#: how many elements of an input a failure report prints in full (larger arrays: dtype and shape)
SHOWN_ELEMENTS = 12


class CheckFailure(PluginCheckFailure):
    """The function pair failed the check; the message is the harness's whole report (what was wrong, where, for
    which shrunk inputs). A subclass of PluginCheckFailure and so of AssertionError."""


class NoReference(RuntimeError):
    """Raised where a reference would be needed and none was given (the diagnosis of a failure seen only by finite
    differences says so instead of comparing the implementation with itself)."""


@dataclass(repr=False, eq=False)
class Given:
    """One input array inside a configuration: printed compactly in reports (values when small)."""

    array: np.ndarray
    memo: dict = field(default_factory=dict)  # per-configuration quantities computed once (the output shape)

    def __repr__(self) -> str:
        a = self.array
        if a.size <= SHOWN_ELEMENTS:
            return np.array2string(a, separator=", ", precision=17, max_line_width=10**6).replace("\n", "")
        return f"<{a.dtype} array {tuple(a.shape)}>"


@dataclass
class GenericReport:
    """What ran: examples, layouts, the oracles that gave verdicts (with counts), the ones that could not judge, and
    the ones not run with the reason."""

    name: str
    implementation: str
    backend: str = "numpy float64"                      # how inputs were handed over (library, precision)
    examples: int = 0
    layouts_seen: dict = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)        # oracle -> comparisons judged (pass)
    not_applicable: dict = field(default_factory=dict)  # oracle -> why it could not judge (first note)
    not_run: dict = field(default_factory=dict)         # oracle -> why it was not run

    @property
    def oracles_seen(self) -> set:
        return set(self.verdicts)

    def record(self, layout: str, result: CaseResult) -> None:
        self.examples += 1
        self.layouts_seen[layout] = self.layouts_seen.get(layout, 0) + 1
        for c in result.comparisons:
            if c.verdict == NA:
                self.not_applicable.setdefault(c.oracle, c.note)
            else:
                self.verdicts[c.oracle] = self.verdicts.get(c.oracle, 0) + 1

    def summary(self) -> str:
        layouts = ", ".join(f"{k} {v}" for k, v in self.layouts_seen.items())
        lines = [f"{self.name}: {self.implementation} passed {self.examples} generated cases ({self.backend}; "
                 f"input layouts: {layouts})",
                 "  oracles: " + ", ".join(f"{k} ({v} comparisons)" for k, v in sorted(self.verdicts.items()))]
        lines += [f"  not applicable: {k}: {v}" for k, v in sorted(self.not_applicable.items())]
        lines += [f"  not run: {k}: {v}" for k, v in sorted(self.not_run.items())]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- the user's inputs

def _option(message: str) -> SpecError:
    return SpecError(f"check(): {message}")


def _as_strategy(value, what: str) -> st.SearchStrategy:
    """A dict whose values are arrays or strategies (mixed freely), or a strategy of dicts."""
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise _option(f"the keys of {what} must be names (strings); got {list(value)!r}")
        return st.fixed_dictionaries({k: v if isinstance(v, st.SearchStrategy) else st.just(v)
                                      for k, v in value.items()})
    raise _option(f"{what} must be a dict of arrays, a dict of Hypothesis strategies, or a strategy of dicts; got "
                  f"{type(value).__name__}")


def _float64(name: str, value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor given as an example
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind not in "fiub":
        raise _option(f"input {name} has dtype {a.dtype}; numeric arrays were expected")
    return np.array(a, dtype=np.float64)


def _configuration(names: Sequence[str], arrays, hyper) -> dict:
    """One drawn (inputs, hyperparameters) pair as a configuration: {input: Given, ..., hyperparameter: value}.
    ``arrays`` may itself be a pair (inputs, hyperparameters) drawn together (sizes that must agree)."""
    if isinstance(arrays, tuple) and len(arrays) == 2 and isinstance(arrays[1], Mapping):
        arrays, together = arrays
        clash = [k for k in together if k in hyper]
        if clash:
            raise _option(f"{', '.join(clash)} given both by hyper= and by the inputs strategy")
        hyper = {**together, **hyper}
    if not isinstance(arrays, Mapping) or set(arrays) != set(names):
        got = sorted(arrays) if isinstance(arrays, Mapping) else type(arrays).__name__
        raise _option(f"the input strategy drew {got}; every draw must be a dict with the inputs {list(names)}")
    if not isinstance(hyper, Mapping):
        raise _option(f"hyper drew a {type(hyper).__name__}; it must give a dict of keyword arguments")
    clash = [k for k in hyper if k in arrays]
    if clash:
        raise _option(f"{', '.join(clash)} named both as an input and as a hyperparameter")
    return {**{n: Given(_float64(n, arrays[n])) for n in names}, **hyper}


def _hyper_of(config: Mapping[str, Any]) -> dict:
    return {k: v for k, v in config.items() if not isinstance(v, Given)}


# ------------------------------------------------------------------------------------------------ references

def _torch_bridge(names: Sequence[str], differentiable: Sequence[str], forward: Callable,
                  backward: Callable | None) -> Callable:
    """A numpy (forward, backward) as a torch function, so that the PyTorch-side helpers (term sizes of tolerance
    policy 1, the diagnosis) can run a numpy reference. backward None: zero gradients (only the forward is used)."""
    import torch

    class Bridge(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hyper, *tensors):
            ctx.hyper, ctx.arrays = hyper, [t.detach().cpu().numpy().astype(np.float64) for t in tensors]
            return torch.from_numpy(np.array(forward(*ctx.arrays, **hyper), dtype=np.float64))

        @staticmethod
        def backward(ctx, dy):
            grads = {} if backward is None else as_grad_dict(
                _Names(names, differentiable), backward(dy.detach().cpu().numpy().copy(), *ctx.arrays, **ctx.hyper))
            return (None, *(torch.from_numpy(np.array(grads[n], dtype=np.float64)) if n in grads
                            else torch.zeros(a.shape, dtype=torch.float64) for n, a in zip(names, ctx.arrays)))

    return lambda *tensors, **hyper: Bridge.apply(hyper, *tensors)


@dataclass(frozen=True)
class _Names:
    """What as_grad_dict reads from a spec."""

    arg_names: tuple
    differentiable: tuple


def _no_reference(*_args, **_kwargs):
    raise NoReference("check() was given no reference (a torch function or a numpy forward), so there is no "
                      "expected array to compare with, nor terms to size the rounding of a lower-precision result "
                      "by; the verdict rests on finite differences (and the adjoint test)")


def _zero_gradients(names: Sequence[str]) -> Callable:
    def backward(dy, *arrays, **hyper):
        return {n: np.zeros(np.shape(a)) for n, a in zip(names, arrays)}
    return backward


def _describe(name: str, config: Mapping[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def _label(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


# ------------------------------------------------------------------------------------------------- the check

def check(forward: Callable, backward: Callable | None = None, inputs: Any = None, *, reference: Any = None,
          reference_kind: str = "torch", linear: Sequence[str] = (), grad_args: Sequence[str] | None = None,
          hyper: Any = None, settings=None, name: str | None = None, kind: str | None = None,
          dtype: str = "float64", device: str = "cpu", layouts=None,
          reduction_length: int | Callable[[Mapping[str, np.ndarray]], int] | None = None) -> GenericReport:
    """Check a forward/backward pair with every oracle that applies; returns a GenericReport of what ran, raises
    CheckFailure (an AssertionError) with the report of the smallest failing case.

    forward, backward: the canonical convention (module docstring); backward=None: forward is a torch function and
                    autograd gives its gradients.
    inputs:         {name: array} (example inputs; each example draws another dy and other test directions), or
                    {name: strategy of arrays} (values may mix both), or a strategy drawing such dicts, or drawing
                    pairs (inputs dict, hyperparameters dict) when hyperparameters must agree with the arrays'
                    shapes (groups, stride). The order of the names is the order of forward's arguments. Arrays
                    are given to the code as float64 (or dtype=).
    reference:      a torch function (*tensors, **hyper) -> tensor (reference_kind="torch", the default): forward and
                    autograd gradients are compared; a numpy forward (reference_kind="numpy"): the forward is
                    compared; a (forward, backward) pair of numpy functions: both are compared.
    linear:         inputs the op is affine in (conv's x, w, b; a dense layer): the adjoint test checks them to a
                    relative 1e-12.
    grad_args:      the inputs that get a gradient (default: all), in the order backward returns them.
    hyper:          keyword arguments of forward, backward and the reference: a dict (values may be strategies) or
                    a strategy of dicts.
    settings:       Hypothesis settings (default: cnn_gradcheck.profiles.check_settings).
    name:           the op's name in reports (default: forward's name).
    kind, dtype, device, layouts: how inputs are handed over (cnn_gradcheck.plugins): kind "numpy" or "torch"
                    (default numpy; torch when backward is None), their precision, torch device, memory layouts.
    reduction_length: the longest sum behind an element (tolerance policy 1): an int, or a function of the inputs
                    {name: array}; default: the size of the largest input or output, an upper bound for any op
                    whose elements each read every input at most once.
    """
    __tracebackhide__ = True
    if not callable(forward):
        raise _option(f"forward is {forward!r:.60}, not a function")
    if backward is not None and not callable(backward):
        raise _option(f"backward is {backward!r:.60}, not a function (pass None for a torch function)")
    if inputs is None:
        raise _option("no inputs: give example inputs {name: array} or Hypothesis strategies for them")
    name = name or _label(forward)
    kind = kind or ("torch" if backward is None else "numpy")
    input_strategy = _as_strategy(inputs, "inputs")
    hyper_strategy = _as_strategy(hyper if hyper is not None else {}, "hyper")
    probe = inputs if isinstance(inputs, Mapping) else draw_one(input_strategy)
    if isinstance(probe, tuple) and len(probe) == 2:  # (inputs, hyperparameters) drawn together
        probe = probe[0]
    if not isinstance(probe, Mapping) or not probe:
        raise _option(f"the inputs strategy draws {type(probe).__name__} values; it must draw dicts {{name: array}}")
    names = tuple(probe)
    grads = tuple(names if grad_args is None else grad_args)
    for option, values, within in (("grad_args", grads, names), ("linear", tuple(linear), grads)):
        unknown = [n for n in values if n not in within]
        if unknown:
            raise _option(f"{option} names {', '.join(map(repr, unknown))}, not among "
                          f"{'the inputs' if option == 'grad_args' else 'the differentiable inputs'} {list(within)}")

    # the reference: which oracle judges against it, the torch form the shared helpers run, the numpy form
    oracles = ["finite differences", "adjoint"]
    not_run = {}
    forward_only = False
    if reference is None:
        torch_forward = forward if backward is None else _no_reference
        ref_impl = Implementation("no reference", _no_reference, _no_reference)
        not_run["pytorch"] = not_run["reference"] = "no reference given (reference=...)"
    elif isinstance(reference, (tuple, list)) or reference_kind == "numpy":
        pair = tuple(reference) if isinstance(reference, (tuple, list)) else (reference, None)
        if len(pair) != 2 or not callable(pair[0]) or (pair[1] is not None and not callable(pair[1])):
            raise _option("a numpy reference is a forward function or a (forward, backward) pair")
        forward_only = pair[1] is None
        ref_backward = _zero_gradients(names) if forward_only else pair[1]
        ref_impl = Implementation(f"reference {_label(pair[0])}", pair[0], ref_backward)
        torch_forward = _torch_bridge(names, grads, pair[0], None if forward_only else pair[1])
        oracles.insert(0, "reference")
        not_run["pytorch"] = "the reference is numpy"
    elif reference_kind == "torch" and callable(reference):
        torch_forward = reference
        ref_impl = Implementation("no reference", _no_reference, _no_reference)
        oracles.insert(0, "pytorch")
        not_run["reference"] = "the reference is a torch function (the pytorch oracle)"
    else:
        raise _option(f"reference={reference!r:.60} with reference_kind={reference_kind!r}: give a torch function, "
                      f"a numpy forward with reference_kind='numpy', or a (forward, backward) pair")
    if not linear:
        not_run["adjoint"] = "no input declared linear (linear=...)"

    adapter = (plugins.torch_function(forward, name=name, dtype=dtype, device=device) if backward is None else
               plugins.plugin(forward, backward, name=name, kind=kind, dtype=dtype, device=device))
    chosen = check_layouts(layouts or adapter.backend.layouts, f"{name}: ")
    holder: dict = {}

    def output_shape(config) -> tuple:
        """From the reference when there is one, else from the implementation's own forward; once per config."""
        memo = config[names[0]].memo
        if "shape" not in memo:
            arrays = [config[n].array for n in names]
            if reference is not None and torch_forward is not _no_reference:
                import torch
                try:
                    with torch.no_grad():
                        y = torch_forward(*[torch.tensor(a) for a in arrays], **_hyper_of(config))
                except Exception as e:  # noqa: BLE001 -- the user's reference: said as such, not as a traceback
                    raise _option(f"the reference raised {type(e).__name__}: {e} at "
                                  f"{_describe(name, config)}") from None
            else:
                try:
                    y = holder["impl"].forward(*arrays, **_hyper_of(config))
                except ImplementationError as e:
                    raise e.at(name, holder["impl"].name, _describe(name, config)) from None
            memo["shape"] = tuple(int(n) for n in np.shape(y))
        return memo["shape"]

    def longest_sum(config) -> int:
        if reduction_length is not None:
            return int(reduction_length({n: config[n].array for n in names}) if callable(reduction_length)
                       else reduction_length)
        return max([config[n].array.size for n in names] + [int(np.prod(output_shape(config), dtype=np.int64)), 1])

    spec = OpSpec(
        name=name, arg_names=names,
        configs=lambda **fixed: st.tuples(input_strategy, hyper_strategy).map(
            lambda pair: _configuration(names, *pair)),
        make_arrays=lambda config, rng: {n: config[n].array.copy() for n in names},
        output_shape=output_shape, hyper=_hyper_of, torch_forward=torch_forward, reference=ref_impl,
        reduction_length=longest_sum, grad_args=grads, linear_args=tuple(linear),
        description=f"checked with cnn_gradcheck.check: {name}")
    validate_declarations(spec)
    bound = {layout: adapter.bind(spec, layout) for layout in chosen}
    holder["impl"] = bound[chosen[0]]
    report = GenericReport(name, adapter.name, adapter.backend.describe(), not_run=not_run)

    def body(case: Case, layout: str) -> None:
        result = check_case(spec, bound[layout], case, oracles)
        if forward_only:  # a numpy forward alone as reference: its (zero) gradients judge nothing
            result.comparisons = [c for c in result.comparisons if c.oracle != "reference" or c.quantity == "forward"]
        report.record(layout, result)
        result.raise_for_failures()

    test = given(spec.cases(), st.sampled_from(chosen))(body)
    # one example-database key per check: a failure of this check is replayed first next time, and only here
    body._hypothesis_internal_add_digest = repr(("cnn_gradcheck.check", name, adapter.name, names)).encode()
    try:
        profiles.check_settings(settings)(test)()
    except SpecError as error:  # a mistake in the inputs, hyper or reference, met while drawing: said alone
        raise SpecError(str(error)) from None
    except NoReference as error:  # a float32 result without a reference: its rounding cannot be sized
        raise SpecError(f"check(): {name} returned results in a lower precision than float64; {error}. Give a "
                        f"reference= (a torch function or a numpy forward)") from None
    except Exception as error:
        verdict = essential_verdict(error)
        if verdict is None:
            raise
        raise CheckFailure(str(verdict)) from None
    return report
