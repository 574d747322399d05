"""Where op specs come from, and the formula rows of the main job.

Three sources, in this order (an op name may appear once across all of them):
1. the harness's own ops: every module in ``cnn_gradcheck.specs`` contributes SPECS (and FORMULAS);
2. other installed packages, through the entry-point group ``cnn_gradcheck.ops``: each entry point names a module
   with a SPECS list, or a list (or tuple) of OpSpecs, or one OpSpec. In a user's pyproject.toml:

       [project.entry-points."cnn_gradcheck.ops"]
       my_layers = "my_package.gradcheck_specs"             # a module with SPECS = [...]

3. ``register(spec)`` at run time (``unregister(name)`` removes it again: for tests).

Specs from 2 and 3 are validated when they arrive (``cnn_gradcheck.spec.validate``), so a mistake in one is reported
with what to fix before any check runs. The main job's formula rows (``all_formulas``) are the harness's own: they
are the derivations this repository validates.
"""
from __future__ import annotations

import importlib
import pkgutil
import types
from functools import lru_cache

from . import specs as _specs_pkg
from .spec import Formula, OpSpec, SpecError, validate

#: the entry-point group other packages declare their ops under
ENTRY_POINT_GROUP = "cnn_gradcheck.ops"

#: ops added with register(), by name, in registration order
_REGISTERED: dict[str, OpSpec] = {}


@lru_cache(maxsize=None)
def _modules():
    return tuple(importlib.import_module(f"{_specs_pkg.__name__}.{m.name}")
                 for m in sorted(pkgutil.iter_modules(_specs_pkg.__path__), key=lambda m: m.name))


@lru_cache(maxsize=None)
def _builtin_specs() -> tuple[OpSpec, ...]:
    return tuple(spec for module in _modules() for spec in getattr(module, "SPECS", ()))


def _specs_of(obj, where: str) -> list[OpSpec]:
    """What an entry point loaded as a list of OpSpecs: a module's SPECS, a list or tuple, or one OpSpec."""
    if isinstance(obj, OpSpec):
        return [obj]
    if isinstance(obj, types.ModuleType):
        if not hasattr(obj, "SPECS"):
            raise SpecError(f"{where}: module {obj.__name__} has no SPECS list; define SPECS = [OpSpec(...), ...]")
        obj = obj.SPECS
    if not isinstance(obj, (list, tuple)):
        raise SpecError(f"{where}: loaded a {type(obj).__name__}; an entry point of {ENTRY_POINT_GROUP} names a "
                        f"module with SPECS, a list of OpSpecs or one OpSpec")
    bad = [type(s).__name__ for s in obj if not isinstance(s, OpSpec)]
    if bad:
        raise SpecError(f"{where}: holds {', '.join(bad)} where OpSpecs were expected")
    return list(obj)


@lru_cache(maxsize=None)
def _entry_point_specs() -> tuple[OpSpec, ...]:
    """The ops other installed packages declare (validated); loaded once, on the first look-up of an op."""
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        where = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}" + (f", package {dist})" if dist else ")")
        try:
            loaded = ep.load()
        except Exception as e:  # noqa: BLE001 -- a broken third-party package: say which entry point, not a traceback
            raise SpecError(f"{where}: loading it raised {type(e).__name__}: {e}") from None
        for spec in _specs_of(loaded, where):
            try:
                validate(spec)
            except SpecError as e:
                raise SpecError(f"{where}: {e}") from None
            out.append(spec)
    return tuple(out)


def refresh() -> None:
    """Forget the discovered entry points (after installing a package in the running process; for tests)."""
    _entry_point_specs.cache_clear()


def all_specs() -> dict[str, OpSpec]:
    """Every op by name: the harness's own, then other packages' (entry points), then registered ones."""
    out: dict[str, OpSpec] = {}
    for spec in (*_builtin_specs(), *_entry_point_specs(), *_REGISTERED.values()):
        if spec.name in out:
            raise ValueError(f"op {spec.name!r} is declared twice")
        out[spec.name] = spec
    return out


def get_spec(name: str) -> OpSpec:
    specs = all_specs()
    if name not in specs:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(sorted(specs))}")
    return specs[name]


def register(spec: OpSpec) -> OpSpec:
    """Add an op from outside the repository; check_plugin(spec.name, ...), get_spec and all_specs then see it.
    The spec is validated first (``cnn_gradcheck.spec.validate``: it draws one configuration and calls every field
    on it); a SpecError says what to fix. Returns the spec."""
    validate(spec)
    taken = {s.name: "the harness" for s in _builtin_specs()}
    taken.update({s.name: "an installed package (entry point)" for s in _entry_point_specs()})
    taken.update({name: "register()" for name in _REGISTERED})
    if spec.name in taken:
        raise SpecError(f"op {spec.name!r} already exists (declared by {taken[spec.name]}); choose another name"
                        + (", or unregister() it first" if taken[spec.name] == "register()" else ""))
    _REGISTERED[spec.name] = spec
    return spec


def unregister(name: str) -> OpSpec:
    """Remove an op added with register(); returns its spec. The harness's own ops cannot be removed."""
    if name not in _REGISTERED:
        raise KeyError(f"op {name!r} was not added with register(); registered: "
                       f"{', '.join(_REGISTERED) or 'none'}")
    return _REGISTERED.pop(name)


def all_formulas() -> list[Formula]:
    return [formula for module in _modules() for formula in getattr(module, "FORMULAS", ())]
