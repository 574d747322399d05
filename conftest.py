"""This repository's own test suite: it loads the harness's Hypothesis profile (cnn_gradcheck.profiles; chosen by
CNN_GRADCHECK_PROFILE, or CI) and runs torch on one thread. A project that installs the harness gets none of this:
its own profiles and settings stay as they are."""
import torch

from cnn_gradcheck import profiles

profiles.load()
# The tensors in checks are tiny: intra-op threads only add synchronisation cost, and pytest-xdist already uses
# one process per core.
torch.set_num_threads(1)


def pytest_report_header(config):
    return f"hypothesis profile: {profiles.PREFIX}{profiles.active_profile()}"
