"""The soak: the thorough profile over every op (its loop reference through every oracle), under several seeds, to
count false alarms. The references are validated, so any failure or kink verdict here is a false alarm of the
harness (or a bug of the reference) and is printed with its report.

    python -m cnn_gradcheck.soak --examples 100000 --seeds 5     # make soak: ~half an hour of CPU
    python -m cnn_gradcheck.soak --examples 50 --seeds 1         # a quick proof that it runs

The examples are shared out evenly: ceil(examples / (ops * seeds)) per op and seed (at least 1). Each (op, seed)
runs ``property.check_op`` under the thorough profile with that many examples and Hypothesis seeded with the seed,
so a run is reproducible; ops registered or installed (entry points) are soaked too. Exit status 1 on any alarm.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

from hypothesis import seed as hypothesis_seed, settings as hyp_settings

from . import profiles
from .property import check_op
from .registry import all_specs
from .runner import essential_verdict


@dataclass
class Soaked:
    """One op over every seed: examples run, and the false alarms (first lines of each report)."""

    op: str
    examples: int = 0
    seconds: float = 0.0
    alarms: list = field(default_factory=list)


def soak_op(spec, per_seed: int, seeds) -> Soaked:
    out = Soaked(spec.name)
    base = hyp_settings(profiles.get("thorough"), max_examples=per_seed, database=None, derandomize=False,
                        deadline=None)
    start = time.perf_counter()

    def count(result) -> None:
        out.examples += 1

    for s in seeds:
        def configure(test, s=s):  # check_op applies ``settings`` to its test: here the settings and the seed
            return hypothesis_seed(s)(base(test))
        try:
            check_op(spec, spec.reference, settings=configure, on_case=count)
        except Exception as error:  # noqa: BLE001 -- every verdict is recorded, the soak goes on
            verdict = essential_verdict(error) or error
            out.alarms.append(f"seed {s}: " + "\n    ".join(str(verdict).splitlines()[:8]))
    out.seconds = time.perf_counter() - start
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_gradcheck.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="examples in total (default 100000)")
    parser.add_argument("--seeds", type=int, default=5, help="Hypothesis seeds per op (default 5)")
    parser.add_argument("--only", default="", help="only the ops whose name contains this text")
    args = parser.parse_args(argv)
    specs = [spec for name, spec in sorted(all_specs().items()) if args.only in name]
    seeds = range(args.seeds)
    per_seed = max(1, math.ceil(args.examples / max(1, len(specs) * args.seeds)))
    print(f"soak: {len(specs)} ops x {args.seeds} seeds x {per_seed} examples (thorough profile, "
          f"target {args.examples})", flush=True)
    total, alarms = 0, 0
    for spec in specs:
        result = soak_op(spec, per_seed, seeds)
        total += result.examples
        alarms += len(result.alarms)
        print(f"  {result.op:<24} {result.examples:>7} examples  {len(result.alarms)} false alarm(s)  "
              f"{result.seconds:7.1f} s", flush=True)
        for alarm in result.alarms:
            print(f"    FALSE ALARM {alarm}", flush=True)
    print(f"soak: {total} examples run, {alarms} false alarm(s)")
    return 1 if alarms else 0


if __name__ == "__main__":
    raise SystemExit(main())
