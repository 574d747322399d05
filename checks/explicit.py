"""Explicit examples, checked first and in every run (like Hypothesis's ``@example``), before the generated ones:

- the user's own examples (``check_plugin(op, layer, examples=[...])``): each a dict with "config" (a complete
  configuration of the op, as a failure report prints it) and one array per argument name, optionally "dy"; checked
  in every input layout. At a kink or tie the verdict is the subgradient check's (``cnn_gradcheck.subgradient``).
- one typical case per kind of special values of the op (generic ones included), and the generic one in every
  other layout the backend supports, so that every run feeds every layout and every kind of special values (exact
  zeros to a sigmoid, ties to max pooling, unnormalised targets to a loss) at least once, not by chance; and one
  case per corner configuration of the op (a kernel as large as the padded input, a stride beyond the kernel...).

The typical configuration has as few axes of length 1 as a few deterministic draws within the limits offer: a layout
bug (a write into ``mask.reshape(...)``, a copy for non-C-ordered input) needs several axes longer than 1 to show.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .layouts import PluginOptionError
from .options import _sample
from .spec import CORNER_KEY, EXAMPLE_KEY, GENERIC, VALUES_KEY, Case, OpSpec
from .strategies import usable_corners

#: deterministic draws among which the typical configuration is chosen
DRAWS = 12
_TYPICAL: dict = {}


def _preference(spec: OpSpec, config: Mapping[str, Any]) -> tuple:
    """Preferred first: more axes longer than 1 in the first argument (the image: a layout bug needs them), then
    fewer elements in all arrays (a fast case, and a short report: explicit cases are not shrunk)."""
    case = spec.make_case(config, 0)
    first = np.shape(case.arrays[spec.arg_names[0]])
    shapes = [np.shape(a) for a in case.arrays.values()] + [np.shape(case.dy)]
    return sum(n > 1 for n in first), -sum(int(np.prod(shape)) for shape in shapes)


def typical_config(spec: OpSpec, fixed: Mapping[str, Any]) -> dict:
    """Among DRAWS deterministic configurations within ``fixed``, the one with the most axes above 1 in the first
    argument, then the fewest elements (cached per op and limits)."""
    key = (spec.name, id(spec), repr(sorted(fixed.items(), key=lambda kv: kv[0])))
    if key not in _TYPICAL:
        _TYPICAL[key] = dict(max(_sample(spec.configs(**fixed), DRAWS), key=lambda c: _preference(spec, c)))
    return dict(_TYPICAL[key])


def typical_cases(spec: OpSpec, fixed: Mapping[str, Any], layouts: Sequence[str],
                  corners: bool = True) -> list[tuple[Case, str]]:
    """(case, layout) pairs: the typical configuration with each kind of special values (generic first) in the first
    layout, then the generic case in each other layout (a failure seen only in another layout is the layout's), then
    each corner configuration the limits leave (``OpSpec.corners``) in the first and the last layout."""
    config = typical_config(spec, fixed)
    cases = [spec.make_case({**config, **({} if kind == GENERIC else {VALUES_KEY: kind})}, 0)
             for kind in (GENERIC, *spec.special_values)]
    corners = [spec.make_case({**typical_config(spec, {**fixed, **fields}), CORNER_KEY: name}, 0)
               for name, fields in (usable_corners(spec, fixed) if corners else ())]
    # corners in the plain layout and in the backend's most unusual one (channels_last for torch): kernels fail at
    # the edges of the configuration space in a particular memory format (PyTorch 2.13's float32 channels_last conv)
    corner_layouts = tuple(dict.fromkeys((layouts[0], layouts[-1])))
    return ([(case, layouts[0]) for case in cases] + [(cases[0], layout) for layout in layouts[1:]]
            + [(case, layout) for case in corners for layout in corner_layouts])


def user_case(spec: OpSpec, example: Mapping[str, Any], index: int) -> Case:
    """A user's example as a case; a malformed one is the caller's option error, said before any call."""
    where = f"{spec.name}: explicit example {index}"
    if not isinstance(example, Mapping) or not isinstance(example.get("config"), Mapping):
        raise PluginOptionError(f"{where}: an example is a dict with 'config' (the configuration) and one array per "
                                f"argument ({', '.join(spec.arg_names)}), optionally 'dy'")
    config = {**example["config"], EXAMPLE_KEY: index}
    missing = [n for n in spec.arg_names if n not in example]
    unknown = [k for k in example if k not in (*spec.arg_names, "config", "dy")]
    if missing or unknown:
        raise PluginOptionError(f"{where}: " + "; ".join(
            ([f"no array for {', '.join(missing)}"] if missing else [])
            + ([f"{', '.join(map(repr, unknown))} is not an argument of {spec.name} (they are "
                f"{', '.join(spec.arg_names)}, 'config' and 'dy')"] if unknown else [])))
    try:
        out_shape = tuple(spec.output_shape(config))
        spec.hyper(config)
        probe = spec.make_case({k: v for k, v in config.items() if k != EXAMPLE_KEY}, 0)
    except Exception as e:  # a missing or impossible field: the configuration is incomplete
        raise PluginOptionError(f"{where}: the config {dict(example['config'])!r} is not a complete configuration "
                                f"of {spec.name}: {type(e).__name__}: {e}") from None
    arrays = {n: np.array(example[n], dtype=np.float64) for n in spec.arg_names}
    dy = np.array(example["dy"], dtype=np.float64) if "dy" in example else np.asarray(probe.dy, dtype=np.float64)
    wrong = [f"{n} has shape {a.shape}, the config gives {probe.arrays[n].shape}" for n, a in arrays.items()
             if a.shape != np.shape(probe.arrays[n])]
    if dy.shape != out_shape:
        wrong.append(f"dy has shape {dy.shape}, the output's is {out_shape}")
    if wrong:
        raise PluginOptionError(f"{where}: {'; '.join(wrong)}")
    return Case(spec.name, config, arrays, dy, 0)


def explicit_cases(spec: OpSpec, fixed: Mapping[str, Any], layouts: Sequence[str],
                   examples: Sequence[Mapping[str, Any]] = ()) -> list[tuple[Case, str]]:
    """Every explicit (case, layout) of a check, in the order they run: the user's examples in every layout, then
    the typical cases."""
    users = [user_case(spec, example, i) for i, example in enumerate(examples or (), start=1)]
    return [(case, layout) for case in users for layout in layouts] + typical_cases(spec, fixed, layouts)


def like(case: Case) -> dict:
    """Fixed fields that make ``spec.cases`` draw cases with the special values of ``case``: a failing explicit case
    is not shrunk, so the check looks for the smallest such generated case. Corners stay drawn in their share (and
    kept by shrinking when the failure needs one): forcing one would label a case that needs none."""
    return {VALUES_KEY: case.values}
