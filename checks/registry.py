"""Discovery of op specs and formula rows: every module in ``cnn_gradcheck.specs`` contributes SPECS and FORMULAS."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from . import specs as _specs_pkg
from .spec import Formula, OpSpec


@lru_cache(maxsize=None)
def _modules():
    return tuple(importlib.import_module(f"{_specs_pkg.__name__}.{m.name}")
                 for m in sorted(pkgutil.iter_modules(_specs_pkg.__path__), key=lambda m: m.name))


def all_specs() -> dict[str, OpSpec]:
    out: dict[str, OpSpec] = {}
    for module in _modules():
        for spec in getattr(module, "SPECS", ()):
            if spec.name in out:
                raise ValueError(f"op {spec.name!r} is declared twice")
            out[spec.name] = spec
    return out


def get_spec(name: str) -> OpSpec:
    specs = all_specs()
    if name not in specs:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(sorted(specs))}")
    return specs[name]


def all_formulas() -> list[Formula]:
    return [formula for module in _modules() for formula in getattr(module, "FORMULAS", ())]
