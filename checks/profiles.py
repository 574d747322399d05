"""The harness's Hypothesis settings, under names of its own, so a user's profiles are never touched.

    cnn-gradcheck-default   quick local runs: random, the example database on (a failure is replayed first next time)
    cnn-gradcheck-ci        derandomized: the same examples on every run, no database, so CI is reproducible
    cnn-gradcheck-thorough  thousands of examples per property, for nightly-style runs

Which settings a check runs under (``check_settings``), from the most to the least explicit:
1. ``settings=`` given to the check;
2. the profile the user's own project loaded (``settings.load_profile("mine")``): their example counts are honoured;
3. the harness's profile named by CNN_GRADCHECK_PROFILE (default, ci or thorough); when unset, ``ci`` if CI is
   set in the environment, else ``default``.
Registering these profiles changes nothing: only this repository's own test suite and main job *load* one
(``load()``); a check built here applies its settings to its own test function alone.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PREFIX = "cnn-gradcheck-"
SHORT_NAMES = ("default", "ci", "thorough")
#: generated cases per check in the default and ci profiles: the same from Python (check_plugin) and from --plugin
DEFAULT_EXAMPLES = 25
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])

settings.register_profile(PREFIX + "default", max_examples=DEFAULT_EXAMPLES, **COMMON)
settings.register_profile(PREFIX + "ci", max_examples=DEFAULT_EXAMPLES, derandomize=True, database=None,
                          print_blob=True, **COMMON)
settings.register_profile(PREFIX + "thorough", max_examples=2000, **COMMON)


def active_profile() -> str:
    """The short name of the harness profile the environment asks for (CNN_GRADCHECK_PROFILE, else CI)."""
    name = os.environ.get("CNN_GRADCHECK_PROFILE") or ("ci" if os.environ.get("CI") else "default")
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if name not in SHORT_NAMES:
        raise ValueError(f"CNN_GRADCHECK_PROFILE={name!r} is not a profile of the harness; "
                         f"choose one of {', '.join(SHORT_NAMES)}")
    return name


def get(name: str | None = None) -> settings:
    """The harness profile ``name`` (short or full name; default: the active one) as a settings object."""
    name = name or active_profile()
    return settings.get_profile(name if name.startswith(PREFIX) else PREFIX + name)


def load() -> str:
    """Load the active harness profile globally: for this repository's own test suite and main job only."""
    name = active_profile()
    settings.load_profile(PREFIX + name)
    return name


def _user_loaded_own_profile() -> bool:
    current = getattr(settings, "_current_profile", None)  # Hypothesis keeps the loaded profile's name here
    return bool(current) and current != "default" and not current.startswith(PREFIX)


def check_settings(given: settings | None = None) -> settings:
    """The settings a check runs under (see the module docstring), always without a deadline: plug-ins and the
    loop references are slow, and a slow call is not a wrong gradient; and without Hypothesis's explain phase."""
    if given is not None:
        base = given
    elif _user_loaded_own_profile():
        base = settings.default
    elif getattr(settings, "_current_profile", None) in {PREFIX + n for n in SHORT_NAMES}:
        base = settings.default  # this repository's suite loaded a harness profile: the same one
    else:
        base = get()
    # no "explain" phase: after shrinking it re-runs the check many times only to annotate Hypothesis's falsifying
    # example, which a harness report never shows (property.minimal_failure leaves it out too)
    return settings(base, deadline=None, phases=[p for p in base.phases if p != Phase.explain])


def describe(s: settings) -> str:
    return f"{s.max_examples} examples" + (", derandomized" if s.derandomize else "")
