"""Deliberately wrong implementations ("mutants") that the harness must reject. One module per op family, each
defining MUTANTS: a list of Mutant. tests/test_mutants.py runs them all; a new op adds a module here, no new test."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from cnn_gradcheck.spec import Implementation


@dataclass(frozen=True)
class Mutant:
    """op: spec name; impl: the wrong implementation; wrong: quantities a report must name ("dx", "forward"...);
    minimal: config fields the shrunk failing configuration must have (the smallest that shows the bug);
    fixed: restrict generation (e.g. to the stride the mistake needs); oracles: restrict to the oracles under test."""

    op: str
    name: str
    impl: Implementation
    wrong: tuple[str, ...]
    minimal: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    oracles: tuple[str, ...] | None = None


def wrong_backward(reference: Implementation, name: str, change: Callable) -> Implementation:
    """The reference with its backward's result passed through ``change(grads, dy, *arrays, **hyper)``."""
    def backward(dy, *arrays, **hyper):
        return change(list(reference.backward(dy, *arrays, **hyper)), dy, *arrays, **hyper)
    return Implementation(name, reference.forward, backward)


def scaled(factor: float, index: int) -> Callable:
    """A ``change`` for wrong_backward: gradient number ``index`` scaled by ``factor`` (1 + 1e-6: what each oracle
    must resolve; 1 + 1e-10: the adjoint test's)."""
    def change(grads, dy, *arrays, **hyper):
        grads[index] = grads[index] * factor
        return grads
    return change


def all_mutants() -> list[Mutant]:
    modules = sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    return [m for info in modules for m in importlib.import_module(f"{__name__}.{info.name}").MUTANTS]
