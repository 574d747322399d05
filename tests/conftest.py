import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def ci_profile(monkeypatch):
    """The harness's ci profile (derandomized, 25 examples) loaded for one test: what a fresh
    ``CNN_GRADCHECK_PROFILE=ci pytest --plugin ...`` process runs under, for a command line run in-process (pytester);
    the suite's own profile is loaded again afterwards."""
    from hypothesis import settings
    from cnn_gradcheck import profiles
    suite_profile = profiles.active_profile()
    monkeypatch.setenv("CNN_GRADCHECK_PROFILE", "ci")
    settings.load_profile(profiles.PREFIX + "ci")
    try:
        yield
    finally:
        settings.load_profile(profiles.PREFIX + suite_profile)
