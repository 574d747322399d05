"""The global-state guard: a plug-in that changes state the rest of a test run relies on (numpy's error mode, torch's
default dtype and grad mode, the global random generators) is reported, naming what changed, and the state after the
check equals the state before it."""
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings

from cnn_gradcheck import guards, plugins as P
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin

import plugin_fixtures as fx

QUICK = settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True,
                 database=None)


def _other_dtype():
    return torch.float64 if torch.get_default_dtype() == torch.float32 else torch.float32


@dataclass(frozen=True)
class Change:
    name: str
    change: Callable[[], None]  # what the plug-in's forward does besides computing y
    phrases: tuple


CHANGES = [
    Change("numpy error state", lambda: np.seterr(all="raise"),
           ("numpy error state (np.geterr): divide=warn, invalid=warn, over=warn, under=ignore -> divide=raise, "
            "invalid=raise, over=raise, under=raise", "np.errstate")),
    Change("torch default dtype", lambda: torch.set_default_dtype(_other_dtype()),
           ("torch default dtype: torch.float32 -> torch.float64", "dtype=")),
    Change("torch default dtype float32", lambda: torch.set_default_dtype(torch.float32),
           ("torch default dtype: torch.float64 -> torch.float32",)),
    Change("grad mode off", lambda: torch.set_grad_enabled(False), ("torch grad mode: enabled -> disabled",)),
    Change("numpy seed", lambda: np.random.seed(0),
           ("numpy's legacy global generator (np.random.seed / np.random.rand ...): MT19937 #", "at position 624",
            "np.random.default_rng")),
    Change("numpy draw", lambda: np.random.rand(3), ("numpy's legacy global generator",)),
    Change("python random", lambda: random.seed(1), ("Python's random generator: Mersenne Twister #",)),
    Change("torch seed", lambda: torch.manual_seed(0), ("torch's CPU random generator (torch.manual_seed): state #",
                                                        "torch.random.fork_rng()")),
    Change("torch threads", lambda: torch.set_num_threads(torch.get_num_threads() + 1),
           ("torch intra-op threads: ",)),
]


def _snapshot():
    return {s.name: s.read() for s in guards.states()}


def _same(before, after):
    return {name: guards_same(name, before[name], after[name]) for name in before}


def guards_same(name, a, b):
    state = next(s for s in guards.states() if s.name == name)
    return state.same(a, b)


@pytest.mark.parametrize("bad", CHANGES, ids=[c.name for c in CHANGES])
def test_a_plugin_changing_global_state_is_reported_and_the_state_restored(bad):
    if bad.name == "torch default dtype float32" and torch.get_default_dtype() == torch.float32:
        torch.set_default_dtype(torch.float64)  # the user's suite runs under float64; the plug-in sets float32
        restore = torch.float32
    else:
        restore = None
    try:
        np.random.seed(1234)  # a known generator state, different from what np.random.seed(0) sets
        before = _snapshot()

        def forward(x, w, b, stride, padding, dilation):
            bad.change()
            return fx.conv_forward(x, w, b, stride, padding, dilation)

        with pytest.raises(PluginCheckFailure) as failure:
            check_plugin("conv2d", P.plugin(forward, fx.conv_backward, name="stateful conv"), settings=QUICK,
                         isolate=False)
        after = _snapshot()
    finally:
        if restore is not None:
            torch.set_default_dtype(restore)
    message = str(failure.value)
    assert message.startswith("conv2d: global state changed in stateful conv") and "configuration: " in message
    assert "forward changed global state that the code run after it relies on (restored by the harness)" in message
    for phrase in bad.phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    assert all(_same(before, after).values()), [n for n, same in _same(before, after).items() if not same]


def test_state_is_restored_when_the_plugin_raises_too():
    before = _snapshot()

    def forward(x, w, b, stride, padding, dilation):
        np.seterr(all="raise")
        torch.set_grad_enabled(False)
        raise ValueError("no")

    with pytest.raises(PluginCheckFailure, match="forward raised ValueError: no"):
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=QUICK, isolate=False)
    assert all(_same(before, _snapshot()).values())


def test_a_layer_drawing_its_initial_weights_at_construction_passes_and_leaves_the_generator_as_it_was():
    """torch.nn.Conv2d draws initial weights when the harness builds it; that is not the plug-in's doing."""
    before = torch.get_rng_state()
    check_plugin("conv2d", P.torch_module(fx.conv_module, params={"w": "weight", "b": "bias"}), settings=QUICK,
                 isolate=False)
    assert torch.equal(before, torch.get_rng_state())


def test_a_state_change_inside_the_guard_is_found_directly():
    with pytest.raises(guards.GlobalStateChanged) as changed:
        with guards.unchanged_global_state():
            np.seterr(divide="raise")
    assert changed.value.changes == ["numpy error state (np.geterr): divide=warn, invalid=warn, over=warn, "
                                     "under=ignore -> divide=raise, invalid=warn, over=warn, under=ignore"]
    assert np.geterr()["divide"] == "warn"


@pytest.mark.skipif(not __import__("cnn_gradcheck.isolation").isolation.can_fork(),
                    reason="the worker process needs fork (Linux)")
def test_a_state_change_in_the_worker_process_is_reported_the_same_way():
    def forward(x, w, b, stride, padding, dilation):
        np.seterr(all="raise")
        return fx.conv_forward(x, w, b, stride, padding, dilation)

    with pytest.raises(PluginCheckFailure, match="(?s)global state changed in .*numpy error state"):
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=QUICK, isolate=True)
    assert np.geterr()["divide"] == "warn"


class _FakeJaxConfig:
    """Stands in for jax.config (JAX is not a dependency of the tests): the guard reads jax_enable_x64 and sets it
    back with config.update, as with the real JAX."""

    def __init__(self):
        self.jax_enable_x64 = False

    def update(self, name, value):
        setattr(self, name, value)


def test_jax_x64_switched_on_by_a_plugin_is_reported_and_switched_back(monkeypatch):
    jax = __import__("types").SimpleNamespace(config=_FakeJaxConfig())
    monkeypatch.setitem(__import__("sys").modules, "jax", jax)

    def forward(x, w, b, stride, padding, dilation):
        jax.config.update("jax_enable_x64", True)
        return fx.conv_forward(x, w, b, stride, padding, dilation)

    with pytest.raises(PluginCheckFailure, match="jax_enable_x64: False -> True"):
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=QUICK, isolate=False)
    assert jax.config.jax_enable_x64 is False
