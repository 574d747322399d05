"""The harness and a user's Hypothesis setup: one database key per check, the user's profiles left alone, a failure
that says how to re-run it, and the pytest plug-in's items as pytest's own options expect them."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, settings
from hypothesis.database import InMemoryExampleDatabase

from cnn_gradcheck import PluginCheckFailure, check_plugin, plugin, profiles, replay

pytest_plugins = ["pytester"]
settings.register_profile("a-user-ci", max_examples=300)  # a user's own profile (at module level, as users do)


def relu_forward(x):
    return np.maximum(x, 0.0)


def relu_backward(dy, x):
    return dy * (x > 0)


def wrong_for_wide_batches(dy, x):
    """Right for the small cases; wrong from 3 samples of 3 values on (what a full run finds, then shrinks to)."""
    g = dy * (x > 0)
    return 1.5 * g if x.shape[0] >= 3 and x.shape[1] >= 3 else g


def test_a_failure_is_replayed_first_even_after_other_checks():
    db = InMemoryExampleDatabase()
    full = settings(max_examples=200, database=db, derandomize=False, deadline=None)
    # saved examples first, then one new example (Hypothesis's first is the simplest case, N=1, K=1: right here)
    replay_first = settings(full, max_examples=1, phases=[Phase.reuse, Phase.generate])
    buggy = plugin(relu_forward, wrong_for_wide_batches, name="buggy relu")
    with pytest.raises(PluginCheckFailure, match=r"N=3, K=3"):
        check_plugin("relu", buggy, settings=full)
    # other checks in the same run, passing, with the same database: they must not erase the saved failure (a
    # check erases saved examples in its reuse phase, which replays every example saved under its key whatever its
    # example count: a few generated examples each are enough to show they do not)
    others = settings(full, max_examples=10)
    check_plugin("relu", plugin(relu_forward, relu_backward, name="good relu"), settings=others)
    check_plugin("sigmoid", plugin(lambda x: 1 / (1 + np.exp(-x)),
                                   lambda dy, x: dy * np.exp(-x) / (1 + np.exp(-x)) ** 2, name="sigmoid"),
                 settings=others)
    with pytest.raises(PluginCheckFailure, match=r"N=3, K=3"):
        check_plugin("relu", buggy, settings=replay_first)
    # the key is per check: the same layer under another name has no saved failure to replay
    assert check_plugin("relu", plugin(relu_forward, wrong_for_wide_batches, name="other"),
                        settings=replay_first).cases == 1


def test_failure_report_ends_with_a_replay_that_reruns_exactly_that_case():
    buggy = plugin(relu_forward, wrong_for_wide_batches, name="buggy relu")
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("relu", buggy, settings=settings(max_examples=100, database=None, derandomize=True,
                                                      deadline=None))
    text = str(failure.value)
    line = next(l.strip() for l in text.splitlines() if l.strip().startswith("cnn_gradcheck.replay("))
    call = line.replace("cnn_gradcheck.replay(", "replay(").replace("'<your plug-in>'", "buggy")
    call = call.replace("<your plug-in>", "buggy")
    with pytest.raises(PluginCheckFailure) as replayed:
        eval(call, {"replay": replay, "buggy": buggy})
    assert replayed.value.args[0].splitlines()[:2] == text.splitlines()[:2]  # same verdict, same configuration
    # and the replay of a passing case passes
    assert replay("relu", buggy, {"N": 1, "K": 1, "offset": 0.0}, seed=3).passed


def test_user_profiles_are_never_overwritten():
    """Importing the harness, running a check and registering its profiles leave the user's profiles as they were."""
    before = settings.get_profile("default").max_examples
    check_plugin("relu", plugin(relu_forward, relu_backward), settings=settings(max_examples=2, deadline=None))
    assert settings.get_profile("a-user-ci").max_examples == 300
    assert settings.get_profile("default").max_examples == before
    assert all(name.startswith(profiles.PREFIX) for name in (profiles.PREFIX + n for n in profiles.SHORT_NAMES))


def test_check_settings_follow_the_users_loaded_profile(monkeypatch):
    settings.load_profile("a-user-ci")
    try:
        assert profiles.check_settings().max_examples == 300
    finally:
        profiles.load()
    monkeypatch.setattr(settings, "_current_profile", "default")  # nothing loaded: the harness's own profile
    monkeypatch.setenv("CNN_GRADCHECK_PROFILE", "thorough")
    assert profiles.check_settings().max_examples == profiles.get("thorough").max_examples
    monkeypatch.setenv("CNN_GRADCHECK_PROFILE", "nightly")
    with pytest.raises(ValueError, match="default, ci, thorough"):
        profiles.check_settings()


LAYERS = """
import numpy as np
from cnn_gradcheck import plugin
GOOD = plugin(lambda x: np.maximum(x, 0.0), lambda dy, x: dy * (x > 0), name="good")
BAD = plugin(lambda x: np.maximum(x, 0.0), lambda dy, x: 2 * dy * (x > 0), name="bad")
"""


def test_plugin_items_work_with_lf_junit_and_statistics(pytester):
    pytester.makepyfile(layers=LAYERS)
    pytester.syspathinsert()
    args = ["--plugin", "relu=layers:GOOD", "--plugin", "relu=layers:BAD", "--plugin-max-examples", "3"]
    first = pytester.runpytest_inprocess(*args, "--junitxml=report.xml", "--hypothesis-show-statistics")
    first.assert_outcomes(passed=1, failed=1)
    assert 'classname="cnn_gradcheck" name="relu=layers:BAD"' in (pytester.path / "report.xml").read_text()
    first.stdout.fnmatch_lines(["*plug-in checks*", "relu: good passed 3 generated cases*",
                                "*Hypothesis Statistics*", "cnn_gradcheck::relu=layers:GOOD:"])
    again = pytester.runpytest_inprocess(*args, "--lf")
    again.assert_outcomes(failed=1, deselected=1)
    again.stdout.fnmatch_lines(["*rerun previous 1 failure*"])


PINNED = """
import numpy as np
from cnn_gradcheck import plugin

def backward(dy, x):  # wrong only at the point of the user's own bug report: x == 0.123 exactly
    return np.where(x == 0.123, 0.0, dy * (x > 0))

RELU = plugin(lambda x: np.maximum(x, 0.0), backward, name="pinned relu",
              examples=[{"config": {"N": 1, "K": 2, "offset": 0.0}, "x": [[0.123, -1.0]]}])
"""


def test_explicit_examples_carried_by_the_plugin_run_from_the_command_line(pytester):
    pytester.makepyfile(pinned=PINNED)
    pytester.syspathinsert()
    run = pytester.runpytest_inprocess("--plugin", "relu=pinned:RELU", "--plugin-max-examples", "3")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*relu: dx wrong in pinned relu*", "*explicit example 1 of examples=*"])
