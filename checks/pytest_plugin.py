"""pytest plugin (registered through the ``pytest11`` entry point): options for checking plug-in implementations."""
from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("cnn-gradcheck", "gradient checks of CNN layers")
    group.addoption("--plugin", action="append", default=[], metavar="OP=MODULE:ATTR",
                    help="check an implementation of OP (e.g. conv2d=mypkg.layers:conv) with the property suite")
