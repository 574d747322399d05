"""Hypothesis profiles shared by the test suite and the main job.

default:  quick local runs (random, example database on).
ci:       derandomized: the same examples on every run, no database, so CI is reproducible.
thorough: thousands of examples per property, for nightly-style runs.
Select with HYPOTHESIS_PROFILE=<name>; when unset, CI=true selects "ci", otherwise "default".
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])

settings.register_profile("default", max_examples=25, **COMMON)
settings.register_profile("ci", max_examples=25, derandomize=True, database=None, print_blob=True, **COMMON)
settings.register_profile("thorough", max_examples=2000, **COMMON)


def active_profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")


def load() -> str:
    name = active_profile()
    settings.load_profile(name)
    return name
