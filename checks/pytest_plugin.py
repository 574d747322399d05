"""pytest plugin (registered through the ``pytest11`` entry point): check a plug-in implementation from the command
line, without writing a test file.

    pytest --plugin conv2d=mypkg.layers:conv            # only the plug-in's checks (nothing else is collected)
    pytest tests/ --plugin conv2d=mypkg.layers:conv     # the given paths as well

Each ``--plugin OP=MODULE:ATTR`` becomes one test item that runs the whole property suite on the plug-in
(``checks.plugins.check_plugin``: every oracle, every input layout, shrinking). ATTR is a Plugin built with an
adapter from ``checks.plugins``, an Implementation, a torch.autograd.Function, or anything with canonical
forward/backward. A failure shows the harness's report (no traceback); a pass adds what was and was not covered to
the terminal summary.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("cnn-gradcheck", "gradient checks of CNN layers")
    group.addoption("--plugin", action="append", default=[], metavar="OP=MODULE:ATTR",
                    help="check an implementation of OP (e.g. conv2d=mypkg.layers:conv) with the property suite")
    group.addoption("--plugin-max-examples", type=int, default=None, metavar="N",
                    help="generated cases per --plugin check (default: the Hypothesis profile's count)")


def _requested(config) -> list[str]:
    return config.getoption("plugin", default=[]) or []


def pytest_configure(config):
    count = config.getoption("plugin_max_examples", default=None)
    if count is not None and count < 1:
        raise pytest.UsageError(f"--plugin-max-examples must be a positive number of generated cases, not {count}")
    if _requested(config):
        from . import profiles
        profiles.load()  # the harness's example counts and settings, also outside this repository


def pytest_ignore_collect(collection_path, config):
    """With --plugin and no paths given, collect nothing else (the plug-in items are added below)."""
    if _requested(config) and not config.option.file_or_dir:
        return True
    return None


def pytest_collection_modifyitems(session, config, items):
    for request in _requested(config):
        items.append(PluginItem.from_parent(session, name=f"plugin[{request}]", request=request))


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
        report = check_plugin(op, load(target), settings=settings(settings(), deadline=None, max_examples=count)
                              if count else None)
        self.config.stash.setdefault(_SUMMARIES, []).append(report.summary())

    def repr_failure(self, excinfo, style=None):
        from .calls import ImplementationError
        from .plugins import PluginCheckFailure, PluginOptionError
        if isinstance(excinfo.value, (PluginCheckFailure, ImplementationError, PluginOptionError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.name


_SUMMARIES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    summaries = config.stash.get(_SUMMARIES, [])
    if summaries:
        terminalreporter.section("plug-in checks")
        for text in summaries:
            terminalreporter.write_line(text)
