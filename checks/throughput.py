"""Throughput of the property suite: generated examples per second per op, and what the thorough profile costs.

    python -m cnn_gradcheck.throughput [--examples 100] [--ops conv2d,dense]

Each op's reference runs through every oracle (what tests/test_references.py does) for ``--examples`` generated
cases, with the thorough profile's settings except the example count; the rate (examples per second, Hypothesis's
generation and shrinking bookkeeping included) projects the thorough profile's time per op
(``max_examples`` of that profile / rate).
"""
from __future__ import annotations

import argparse
import time

from hypothesis import settings

from . import profiles
from .property import check_op
from .registry import all_specs


def examples_per_second(spec, examples: int) -> tuple[int, float, str]:
    """(cases checked, seconds, first line of the failure report or ""). A failure ends the run early (after
    Hypothesis's shrinking, whose cases are counted too): the rate is still reported, the failure beside it."""
    seen = []
    run_settings = settings(profiles.get("thorough"), max_examples=examples, database=None,
                            derandomize=True)
    start = time.perf_counter()
    failure = ""
    try:
        check_op(spec, spec.reference, settings=run_settings, on_case=seen.append)
    except AssertionError as error:
        failure = str(error).splitlines()[0]
    return len(seen), time.perf_counter() - start, failure


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="generated cases per op")
    parser.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    args = parser.parse_args(argv)
    specs = all_specs()
    ops = [op for op in args.ops.split(",") if op] or sorted(specs)
    thorough = profiles.get("thorough").max_examples
    print(f"| op | examples | seconds | examples/s | thorough profile ({thorough} examples), projected | note |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for op in ops:
        examples_per_second(specs[op], 1)  # warm-up: imports and first-call costs are not throughput
        count, seconds, failure = examples_per_second(specs[op], args.examples)
        rate = count / seconds
        total += thorough / rate
        note = f"FAILED: {failure}" if failure else ""
        print(f"| {op} | {count} | {seconds:.1f} | {rate:.1f} | {thorough / rate:.0f} s | {note} |", flush=True)
    print(f"thorough profile, all listed ops, one process: about {total / 60:.0f} min")


if __name__ == "__main__":
    main()
