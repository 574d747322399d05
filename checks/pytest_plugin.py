"""pytest plug-in (the ``pytest11`` entry point ``cnn_gradcheck``): check a layer from the command line, without
writing a test file.

    pytest --plugin conv2d=mypkg.layers:conv            # only the plug-in's checks (nothing else is collected)
    pytest tests/ --plugin conv2d=mypkg.layers:conv     # the given paths as well

Each ``--plugin OP=MODULE:ATTR`` becomes one test item, ``cnn_gradcheck::OP=MODULE:ATTR``, that runs the
whole property suite on the layer (``cnn_gradcheck.check_plugin``). A failure shows the harness's report (no
traceback); a pass adds what was and was not covered to the terminal summary (with pytest-xdist too).

pytest loads this module in every run of every project that installs the harness, so it costs nothing until asked:
it imports only pytest and the standard library, and numpy, torch, Hypothesis and the harness load inside an item's
run, that is, only when ``--plugin`` is given.
"""
from __future__ import annotations

import pytest

#: the user_properties key that carries a passing check's coverage summary from an xdist worker to the controller
_SUMMARY_KEY = "cnn_gradcheck_summary"


def pytest_addoption(parser):
    group = parser.getgroup("cnn-gradcheck", "gradient checks of CNN layers")
    group.addoption("--plugin", action="append", default=[], metavar="OP=MODULE:ATTR",
                    help="check an implementation of OP (e.g. conv2d=mypkg.layers:conv) with the property suite")
    group.addoption("--plugin-max-examples", type=int, default=None, metavar="N",
                    help="generated cases per --plugin check (default: the same as check_plugin from Python: your "
                         "loaded Hypothesis profile's count, else the harness's 25)")
    group.addoption("--shrink-budget", type=float, default=None, metavar="SECONDS",
                    help="seconds each --plugin check may spend shrinking a failure before it reports the smallest "
                         "found so far (default: check_plugin's 60)")
    group.addoption("--plugin-time-limit", type=float, default=None, metavar="SECONDS",
                    help="seconds one call of a --plugin implementation may take (default 60)")
    group.addoption("--plugin-isolate", choices=("yes", "no"), default=None,
                    help="run the plug-in's calls in a worker process, so that a crash or hang is reported "
                         "(default: yes for torch plug-ins on the CPU and plug-ins declaring isolate=True, "
                         "where fork is safe: Linux)")


def _requested(config) -> list[str]:
    return config.getoption("plugin", default=[]) or []


def pytest_configure(config):
    count = config.getoption("plugin_max_examples", default=None)
    if count is not None and count < 1:
        raise pytest.UsageError(f"--plugin-max-examples must be a positive number of generated cases, not {count}")
    budget = config.getoption("shrink_budget", default=None)
    if budget is not None and not budget > 0:
        raise pytest.UsageError(f"--shrink-budget must be a positive number of seconds, not {budget}")
    limit = config.getoption("plugin_time_limit", default=None)
    if limit is not None and not limit > 0:
        raise pytest.UsageError(f"--plugin-time-limit must be a positive number of seconds, not {limit}")
    if _requested(config):
        config.pluginmanager.register(_Summaries(), "cnn_gradcheck_summaries")


def pytest_ignore_collect(collection_path, config):
    """With --plugin and no paths given, collect nothing else (the plug-in items are added below)."""
    if _requested(config) and not config.option.file_or_dir:
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """tryfirst: the items exist before other plug-ins (--lf, -k, -m, xdist) select among the collected ones."""
    requests = _requested(config)
    if requests:
        # node ids "cnn_gradcheck::OP=MODULE:ATTR": a class part for JUnit, no brackets (pytest would read them as
        # parameters, and --lf would not find the item again)
        group = PluginChecks.from_parent(session, name="cnn_gradcheck", nodeid="cnn_gradcheck")
        items.extend(PluginItem.from_parent(group, name=request, request=request) for request in requests)


class PluginChecks(pytest.Collector):
    """The parent of the --plugin items: gives them node ids with a class part (JUnit's classname)."""

    def collect(self):
        return []


class PluginItem(pytest.Item):
    def __init__(self, *, request: str, **kwargs):
        super().__init__(**kwargs)
        self.request = request

    def runtest(self):
        from .calls import ImplementationError
        from .plugins import check_plugin, load, op_spec
        op, sep, target = self.request.partition("=")
        if not sep or not op or not target:
            raise ImplementationError("bad --plugin option", f"{self.request!r} is not of the form OP=MODULE:ATTR "
                                      f"(e.g. conv2d=mypkg.layers:conv)")
        op_spec(op)  # an unknown op is named before the plug-in is imported
        count = self.config.getoption("plugin_max_examples")
        from hypothesis import settings
        from . import profiles
        chosen = profiles.check_settings()
        with _hypothesis_statistics(self):
            budget = self.config.getoption("shrink_budget")
            isolate = self.config.getoption("plugin_isolate")
            report = check_plugin(op, load(target), target=target,
                                  settings=settings(chosen, max_examples=count) if count else chosen,
                                  time_limit=self.config.getoption("plugin_time_limit"),
                                  isolate=None if isolate is None else isolate == "yes",
                                  **({"shrink_budget": budget} if budget is not None else {}))
        self.user_properties.append((_SUMMARY_KEY, report.summary()))

    def repr_failure(self, excinfo, style=None):
        from .calls import ImplementationError
        from .plugins import PluginCheckFailure, PluginOptionError
        if isinstance(excinfo.value, (PluginCheckFailure, ImplementationError, PluginOptionError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.name


class _hypothesis_statistics:
    """Hypothesis's statistics for an item that is not a @given test function, so that
    --hypothesis-show-statistics reports the check (Hypothesis's pytest plug-in reads ``item.hypothesis_statistics``)."""

    def __init__(self, item):
        self.item, self.context = item, None

    def __enter__(self):
        try:
            from hypothesis.statistics import collector, describe_statistics
        except ImportError:  # another Hypothesis layout: the check runs, without statistics
            return self

        def note(stats):
            stats["nodeid"] = self.item.nodeid
            self.item.hypothesis_statistics = describe_statistics(stats)

        self.context = collector.with_value(note)
        self.context.__enter__()
        return self

    def __exit__(self, *exc):
        if self.context is not None:
            self.context.__exit__(*exc)
        return False


class _Summaries:
    """On the controller (or without xdist): each passing check's summary, printed in the terminal summary."""

    def __init__(self):
        self.texts: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self.texts += [value for key, value in getattr(report, "user_properties", ()) if key == _SUMMARY_KEY]

    def pytest_terminal_summary(self, terminalreporter):
        if self.texts:
            terminalreporter.section("plug-in checks")
            for text in self.texts:
                terminalreporter.write_line(text)
