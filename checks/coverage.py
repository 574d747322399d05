"""What ran on a plug-in and what it left out: the summary of a passing check and the context of a failing one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import compare, layouts as layouts_mod
from .binding import Plugin
from .options import _sample
from .registry import all_formulas
from .spec import Case, OpSpec


def _values(configs) -> dict[str, set]:
    values: dict[str, set] = {}
    for c in configs:
        for k, v in c.items():
            values.setdefault(k, set()).add(v)
    return values


def _short(values) -> str:
    return "{" + ", ".join(map(str, sorted(values))) + "}"


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

    def not_covered(self) -> list[str]:
        """Values the full suite draws that this plug-in's limits exclude, and formula rows left out."""
        full = _values(_sample(self.spec.configs(), 60))
        allowed = _values(_sample(self.spec.configs(**self.limits), 60)) if self.limits else full
        # restricted: fields the limits hold to one value, or to a part of a small set (stride, padding, ...);
        # sizes derived from them (H, W) are not listed
        restricted = {k for k in full if full[k] - allowed.get(k, set())
                      and (len(allowed.get(k, ())) == 1 or len(full[k]) <= 4)}
        lines = [f"{k} in {_short(full[k] - allowed.get(k, set()))}" for k in full if k in restricted]
        out = []
        if lines:
            out.append(f"excluded by the limits ({', '.join(f'{k}={v}' for k, v in self.limits.items())}): "
                       + "; ".join(lines))
        partly, none = [], []
        for formula in all_formulas():
            if formula.op != self.spec.name:
                continue
            sample = _sample(self.spec.configs(**formula.fixed), 20)
            inside = sum(all(c[k] in allowed.get(k, ()) for k in restricted) for c in sample)
            if inside == 0:
                none.append(formula.name)
            elif inside < len(sample):
                partly.append(formula.name)
        if none:
            out.append(f"formulas not covered: {'; '.join(none)}")
        if partly:
            out.append(f"formulas only partly covered: {'; '.join(partly)}")
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
        gaps = self.not_covered()
        lines += [f"  not covered: {g}" for g in gaps] or ["  not covered: nothing (no limits declared)"]
        return "\n".join(lines)

    def failure(self, error: BaseException) -> str:
        lines = [str(error)]
        impl = getattr(getattr(error, "result", None), "impl", None)  # a wrong value rather than a misbehaviour
        if getattr(impl, "layout", "contiguous") != "contiguous":
            lines += [f"  {line}" for line in layouts_mod.hint(impl.layout).strip().splitlines()]
        if self.precision_note:
            lines.append(f"  {self.precision_note}")
        if self.limits:
            lines.append(f"  (checked within the plug-in's limits: "
                         f"{', '.join(f'{k}={v}' for k, v in self.limits.items())})")
        return "\n".join(lines)


