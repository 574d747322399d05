"""What ran on a plug-in and what it left out: the summary of a passing check and the context of a failing one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import compare, layouts as layouts_mod
from .binding import Plugin
from .options import PAIRS, _sample, tied_names
from .strategies import Tied
from .spec import Case, OpSpec


def _values(configs) -> dict[str, set]:
    values: dict[str, set] = {}
    for c in configs:
        for k, v in c.items():
            values.setdefault(k, set()).add(v)
    return values


def _short(values) -> str:
    """{1, 2, 3} for a few values, 1..32 for a run of many integers."""
    ordered = sorted(values, key=lambda v: (str(type(v)), v))
    if len(ordered) > 4 and all(isinstance(v, int) for v in ordered):
        return f"{ordered[0]}..{ordered[-1]}" if ordered == list(range(ordered[0], ordered[-1] + 1)) else \
            "{" + ", ".join(map(str, ordered)) + "}"
    return "{" + ", ".join(map(str, ordered)) + "}"


def _limit_text(key, value) -> str:
    if isinstance(value, Tied):
        return f"{key} {value!r}"
    if isinstance(value, (set, frozenset, list, range)):
        return f"{key}={_short(value)}"
    return f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"


@dataclass
class PluginReport:
    """What ran on a plug-in and what it left out."""

    spec: OpSpec
    plugin: Plugin
    limits: Mapping[str, Any]
    layouts: tuple[str, ...]
    cases: int = 0
    layouts_seen: dict = field(default_factory=dict)
    oracles_seen: set = field(default_factory=set)  # oracles that gave a verdict (pass or fail)
    not_applicable: dict = field(default_factory=dict)  # oracle -> why it did not apply (n/a verdicts), first note
    precision: str = "float64"
    precision_note: str = ""
    configs: list = field(default_factory=list)
    conventions: str = ""  # the declared conventions results were converted from
    conversions: set = field(default_factory=set)  # foreign array types converted to numpy
    repeat_difference: float = 0.0  # largest difference seen between two identical calls, within rounding
    held: dict = field(default_factory=dict)  # optional hyperparameters held neutral: the plug-in takes none
    explicit: int = 0  # explicit cases (the user's examples, typical cases per kind of special values and layout)

    def record(self, case: Case, layout: str, result, explicit: bool = False) -> None:
        if explicit:
            self.explicit += 1
        else:
            self.cases += 1
        self.layouts_seen[layout] = self.layouts_seen.get(layout, 0) + 1
        na = getattr(compare, "NA", "n/a")  # the verdict of an oracle that does not apply (e.g. at float16)
        for c in result.comparisons:
            if c.verdict == na:
                self.not_applicable.setdefault(c.oracle, c.note)
            else:
                self.oracles_seen.add(c.oracle)
        self.configs.append(dict(case.config))
        self.conventions = self.conventions or getattr(result.impl, "conventions", "")
        self.conversions |= set(getattr(result.impl, "conversions", ()))
        self.repeat_difference = max(self.repeat_difference, result.repeat_difference)

    def drawn(self) -> list[str]:
        """The part of the op's configuration space the cases covered: the values of each field, the tied axes,
        the sizes raised beyond what the default space draws."""
        seen = _values(self.configs)
        lines = ["drawn: " + "; ".join(f"{k} {_short(v)}" for k, v in seen.items())] if seen else []
        tied = tied_names(self.plugin)
        if tied:
            pairs = [f"{n} ({' = '.join(PAIRS[n])}" + ("; passed as one int" if n in self.plugin.scalar else "")
                     + ")" for n in tied]
            lines.append(f"tied axes (equal in every case): {', '.join(pairs)}")
        default = _values(_sample(self.spec.configs(), 60))
        raised = [f"{k} up to {max(v)} (the default space draws up to {max(default[k])})" for k, v in seen.items()
                  if k in default and all(isinstance(x, int) for x in v | default[k]) and max(v) > max(default[k])]
        if raised:
            lines.append(f"raised beyond the default sizes: {'; '.join(raised)}")
        return lines

    def not_covered(self) -> list[str]:
        """Values the default configuration space draws that this plug-in's limits (and tied axes) exclude, and the
        layouts the run did not draw."""
        shown = ", ".join(_limit_text(k, v) for k, v in self.limits.items())
        out = []
        if self.limits:
            full = _values(_sample(self.spec.configs(), 60))
            allowed = _values(_sample(self.spec.configs(**self.limits), 60))
            # fields of a small value set (stride, padding, dilation, kernel, targets, ...): the values left out
            lines = [f"{k} in {_short(full[k] - allowed.get(k, set()))}" for k in full
                     if full[k] - allowed.get(k, set()) and len(full[k]) <= 6]
            out.append(f"excluded by the limits ({shown}): " + "; ".join(lines) if lines else
                       f"nothing the default space draws is excluded by the limits ({shown})")
        skipped = [layout for layout in self.layouts if layout not in self.layouts_seen]
        if skipped and self.cases:
            out.append(f"layouts not drawn in this run: {', '.join(skipped)}")
        return out

    def summary(self) -> str:
        seen = ", ".join(f"{k} {v}" for k, v in self.layouts_seen.items())
        lines = [f"{self.spec.name}: {self.plugin.name} passed {self.cases} generated cases"
                 + (f" and {self.explicit} explicit ones" if self.explicit else "")
                 + f" ({self.plugin.backend.describe()}; input layouts: {seen})",
                 f"  oracles: {', '.join(sorted(self.oracles_seen))}"]
        lines += [f"  not applicable: {oracle}: {note}" for oracle, note in sorted(self.not_applicable.items())]
        if self.precision_note:
            lines.append(f"  {self.precision_note}")
        if self.conventions:
            lines.append(f"  declared conventions, converted to the canonical ones: {self.conventions}")
        if self.conversions:
            lines.append(f"  arrays converted to numpy: {', '.join(sorted(self.conversions))}")
        if self.repeat_difference > 0:
            lines.append(f"  repeated calls differ by up to {self.repeat_difference:.3g}, within rounding "
                         f"(two identical calls are compared under tolerance policy 8)")
        lines += [f"  {line}" for line in self.drawn()]
        lines += [f"  {name} held at {', '.join(f'{k}={v}' for k, v in neutral.items())}: the plug-in's functions "
                  f"take no {name} argument" for name, neutral in self.held.items()]
        gaps = self.not_covered()
        lines += [f"  not covered: {g}" for g in gaps] or ["  not covered: nothing (no limits declared)"]
        return "\n".join(lines)

    def failure(self, error: BaseException) -> str:
        from .diagnosis import diagnose_misbehaviour
        lines = [str(error)]
        lines += [f"  {line}" for line in diagnose_misbehaviour(self.spec, getattr(error, "case", None), error)]
        impl = getattr(getattr(error, "result", None), "impl", None)  # a wrong value rather than a misbehaviour
        if getattr(impl, "layout", "contiguous") != "contiguous":
            lines += [f"  {line}" for line in layouts_mod.hint(impl.layout).strip().splitlines()]
        if self.precision_note:
            lines.append(f"  {self.precision_note}")
        if self.limits:
            lines.append(f"  (checked within the plug-in's limits: "
                         f"{', '.join(f'{k}={v}' for k, v in self.limits.items())})")
        return "\n".join(lines)


