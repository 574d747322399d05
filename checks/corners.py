"""How many examples each corner configuration and each kind of special values gets over a run:

    python -m cnn_gradcheck.corners [--profile ci|default|thorough] [--only OP]

Draws the configurations a check of each op draws under the profile (``cnn_gradcheck.strategies.case_configs``,
without building arrays or calling anything) and prints, per op, the examples per corner and per kind of special
values. The explicit examples of a plug-in check (one typical case per kind of special values, every layout) come
on top of these counts.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from hypothesis import Phase, given, settings as hyp_settings

from . import profiles
from .registry import all_specs
from .spec import CORNER_KEY, GENERIC, VALUES_KEY
from .strategies import case_configs


def draw_counts(spec, settings) -> tuple[int, Counter, Counter]:
    """(examples, corner -> count, kind of special values -> count) over one run's generated configurations."""
    corners, kinds, total = Counter(), Counter(), [0]

    @hyp_settings(settings, database=None, phases=[Phase.generate], deadline=None)
    @given(case_configs(spec, {}))
    def run(config):
        total[0] += 1
        corners[config.get(CORNER_KEY, "(none)")] += 1
        kinds[config.get(VALUES_KEY, GENERIC)] += 1

    run()
    return total[0], corners, kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_gradcheck.corners", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=profiles.SHORT_NAMES, default=None)
    parser.add_argument("--only", default="", help="only the ops whose name contains this")
    args = parser.parse_args(argv)
    settings = profiles.get(args.profile)
    print(f"profile {args.profile or profiles.active_profile()}: {profiles.describe(settings)} per op")
    for name, spec in all_specs().items():
        if args.only not in name or not (spec.corners or spec.special_values):
            continue
        total, corners, kinds = draw_counts(spec, settings)
        print(f"{name}: {total} examples")
        for label, counts, names in (("corner", corners, [c for c, _ in spec.corners]),
                                     ("values", kinds, list(spec.special_values))):
            for key in names:
                print(f"  {label:7} {key:55} {counts.get(key, 0):5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
