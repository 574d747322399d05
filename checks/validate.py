"""The main job: validate every formula of the derivations against the oracles and print one table row per formula.

    python -m cnn_gradcheck.validate [--profile ci|default|thorough] [--only SUBSTRING] [--json PATH]

Each row runs the formula's op (its loop-based reference) on Hypothesis-generated configurations restricted as the
formula states, and records, over the quantities the formula is about, which oracles agreed, how many examples ran,
and the worst relative error seen. Exit status 1 if any formula fails.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field


from . import profiles
from .property import check_op
from .registry import all_formulas, get_spec
from .runner import NotDifferentiableHere, essential_verdict
from .compare import NA
from .spec import Formula, quantity_label

VALIDATED, FAILED, KINKED = "validated", "FAILED", "kink"


@dataclass
class Row:
    formula: Formula
    examples: int = 0
    oracles: dict[str, bool] = field(default_factory=dict)  # oracle -> no failure (n/a ignored), for passes below
    judged: dict[str, set] = field(default_factory=dict)    # quantity -> oracles that passed it at least once
    worst_relative: float = 0.0
    worst_oracle: str = ""
    verdict: str = VALIDATED
    detail: str = ""
    seconds: float = 0.0

    @property
    def validated_by(self) -> list[str]:
        """Oracles that judged (passed) these quantities and never disagreed."""
        passed = set().union(*self.judged.values()) if self.judged else set()
        return [name for name, ok in self.oracles.items() if ok and name in passed]


def check_formula_quantities(formula: Formula) -> None:
    """A formula names quantities its op has ("forward" and the op's differentiable arguments)."""
    spec = get_spec(formula.op)
    known = {"forward", *spec.differentiable}
    unknown = [q for q in formula.quantities if q not in known]
    if unknown:
        raise ValueError(f"formula {formula.name!r}: {unknown} are not quantities of {spec.name} "
                         f"(known: {sorted(known)})")


def validate_formula(formula: Formula, settings=None) -> Row:
    """Run the formula's op on its configurations; FAILED if any oracle disagrees, if the run breaks, or if some
    quantity of the formula was never judged by any oracle (a row must not be validated by nothing)."""
    row = Row(formula)
    started = time.perf_counter()
    try:
        check_formula_quantities(formula)
        spec = get_spec(formula.op)
    except (KeyError, ValueError) as error:
        row.verdict, row.detail = FAILED, str(error)
        return row
    wanted = {quantity_label(q) for q in formula.quantities}

    def record(result) -> None:
        row.examples += 1
        for c in result.comparisons:
            if c.quantity not in wanted or c.verdict == NA:
                continue
            row.oracles[c.oracle] = row.oracles.get(c.oracle, True) and c.passed
            if c.passed:
                row.judged.setdefault(c.quantity, set()).add(c.oracle)
                if c.relative > row.worst_relative:
                    row.worst_relative, row.worst_oracle = c.relative, c.oracle

    try:
        check_op(spec, spec.reference, fixed=formula.fixed, settings=settings, on_case=record)
    except Exception as error:  # noqa: BLE001 -- any breakage is this row's FAILED verdict, never a crash of the job
        verdict = essential_verdict(error)
        row.verdict = KINKED if isinstance(verdict, NotDifferentiableHere) else FAILED
        row.detail = str(verdict) if verdict is not None else f"{type(error).__name__}: {error}"
    else:
        unjudged = sorted(wanted - set(row.judged))
        if unjudged:
            row.verdict = FAILED
            row.detail = f"no oracle judged {', '.join(unjudged)} of {spec.name}: the row would be validated by nothing"
    row.seconds = time.perf_counter() - started
    return row


def format_table(rows: list[Row]) -> str:
    headers = ["formula", "source", "oracles", "examples", "worst rel. error", "verdict"]
    cells = [[r.formula.name, r.formula.source, ", ".join(r.validated_by) or "-", str(r.examples),
              f"{r.worst_relative:.1e} ({r.worst_oracle})" if r.worst_oracle else "0", r.verdict] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)


def sections() -> list:
    """Extra sections of the main job's output, after the table: callables (rows, args) -> (text, ok); a section
    that is not ok makes the main job exit 1."""
    from .errata import section as errata_section      # the printed formulas of the seeds, checked
    from .network import network_section               # whole networks: cnnnumgradcheck, training vs PyTorch
    return [network_section, errata_section]

#: where the main job writes its JSON summary unless --json says otherwise (reports/ is not tracked)
DEFAULT_JSON = "reports/summary.json"


def summary(rows: list[Row], profile: str) -> dict:
    """The table as data, for CI: no timings, so that it is identical across runs with the derandomized ci profile."""
    return {"profile": profile, "formulas": [
        {"formula": r.formula.name, "equation": r.formula.equation, "source": r.formula.source, "op": r.formula.op,
         "oracles": r.validated_by, "examples": r.examples, "worst_relative_error": r.worst_relative,
         "worst_oracle": r.worst_oracle, "verdict": r.verdict} for r in rows]}


def write_summary(rows: list[Row], profile: str, path: str) -> None:
    import json
    import os
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(summary(rows, profile), out, indent=2, ensure_ascii=False)
        out.write("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, choices=profiles.SHORT_NAMES,
                        help="the harness's Hypothesis profile (default: $CNN_GRADCHECK_PROFILE, 'ci' when CI is set, "
                             "else 'default')")
    parser.add_argument("--only", default=None, help="validate only formulas whose name contains this text")
    parser.add_argument("--json", default=DEFAULT_JSON, metavar="PATH",
                        help=f"write the table as JSON here (default {DEFAULT_JSON}; '' for none)")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)  # tiny tensors: intra-op threads cost more than they save
    if args.profile is not None:
        os.environ["CNN_GRADCHECK_PROFILE"] = args.profile
    name = profiles.load()
    formulas = [f for f in all_formulas() if args.only is None or args.only in f.name]
    print(f"Validating {len(formulas)} formulas of the derivations (hypothesis profile: {name})\n", flush=True)
    rows = []
    for formula in formulas:
        rows.append(validate_formula(formula))
    print(format_table(rows))
    if args.json:
        write_summary(rows, str(name), args.json)
    for row in rows:
        if row.verdict != VALIDATED:
            print(f"\n{row.formula.name}: {row.verdict}\n{row.detail}")
    sections_ok = True
    for section in sections():
        text, ok = section(rows, args)
        sections_ok &= ok
        if text:
            print("\n" + text)
    failed = [r for r in rows if r.verdict != VALIDATED]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} formulas validated"
          + ("" if sections_ok else "; a section above FAILED"))
    return 1 if failed or not sections_ok else 0


if __name__ == "__main__":
    sys.exit(main())
