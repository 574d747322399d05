"""Test-suite configuration: Hypothesis profile selection (see checks/profiles.py) and the repo root on sys.path."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import profiles  # noqa: E402

profiles.load()


def pytest_report_header(config):
    return f"hypothesis profile: {profiles.active_profile()}"
