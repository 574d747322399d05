"""Test-suite configuration: Hypothesis profile selection (see checks/profiles.py) and the repo root on sys.path."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import profiles  # noqa: E402

profiles.load()
# The tensors in checks are tiny: intra-op threads only add synchronisation cost, and pytest-xdist already uses
# one process per core.
torch.set_num_threads(1)


def pytest_report_header(config):
    return f"hypothesis profile: {profiles.active_profile()}"
