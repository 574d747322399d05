"""The global state a call of user code must leave as it found it: read before the call, compared after it, and
restored either way. A layer that changes any of it would change every test that runs after it (a numpy error mode
of "raise", float32 as torch's default dtype, autograd switched off, a reseeded random generator), so the change is
reported, naming what changed (before -> after); the state is put back even when the call raised.

The state (only of libraries already imported: a numpy plug-in never imports torch or JAX):

- numpy: the floating-point error handling (``np.geterr``), the legacy global random generator (``np.random.seed``,
  ``np.random.rand`` ...); Python: the ``random`` module's generator;
- torch: the default dtype, grad mode, the thread counts (intra-op, and inter-op: read only, torch allows setting it
  once), the CPU random generator and, once CUDA is initialised, the CUDA generators;
- JAX: ``jax_enable_x64``.

Cost: reading is cheap except the generators' states. numpy's legacy generator is read as its raw Mersenne-Twister
words (2.5 kB through its ctypes interface, about 3 us, instead of ``np.random.get_state``'s 300 us); its full state
(with the cached Box-Muller normal) is taken only when those words changed. Blind spot of that shortcut: a call that
only consumes the cached second normal of ``np.random.randn`` leaves the words as they were and is not seen.
The measured cost per guarded call is in docs/guards.md.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import random
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

#: what a layer should use instead of changing the global state, per kind of state
ADVICE = {
    "rng": "draw from a local generator (np.random.default_rng(seed), random.Random(seed), torch.Generator) or "
           "wrap the draw in torch.random.fork_rng()",
    "numpy error state": "use `with np.errstate(...)` around the code that needs it",
    "torch default dtype": "give dtype= where tensors are made",
    "torch grad mode": "use `with torch.no_grad()` / `torch.enable_grad()` blocks, which restore it",
    "torch threads": "leave the thread counts to the caller",
    "jax x64": "leave jax_enable_x64 to the caller",
}


@dataclass(frozen=True)
class State:
    """One piece of global state: how to read it, put it back (None: read only), compare and show it."""

    name: str
    read: Callable[[], Any]
    restore: Callable[[Any], None] | None
    kind: str  # the ADVICE key
    same: Callable[[Any, Any], bool] = lambda a, b: a == b
    show: Callable[[Any], str] = repr


def _digest(data: bytes) -> str:
    return "#" + hashlib.blake2b(data, digest_size=3).hexdigest()


# ------------------------------------------------------------------------- numpy's legacy global generator

class _NumpyLegacy:
    """np.random's global RandomState, read through its bit generator's raw words (key[624], pos): 3 us."""

    _SIZE = 624 * 4 + 4  # struct mt19937_state { uint32_t key[624]; int pos; }

    def __init__(self):
        self._address, self._words, self._full = None, None, None

    def read(self):
        state = np.random.mtrand._rand
        address = state._bit_generator.ctypes.state_address
        words = ctypes.string_at(address, self._SIZE)
        if words != self._words or address != self._address:  # changed since last seen: take the full state once
            self._address, self._words, self._full = address, words, state.get_state()
        return words, self._full

    @staticmethod
    def restore(saved):
        np.random.set_state(saved[1])

    @staticmethod
    def show(saved):
        pos = int.from_bytes(saved[0][-4:], sys.byteorder, signed=True)
        return f"MT19937 {_digest(saved[0][:-4])} at position {pos}"


_NUMPY_LEGACY = _NumpyLegacy()


def _python_random() -> State:
    return State("Python's random generator", random.getstate, random.setstate, "rng",
                 show=lambda s: f"Mersenne Twister {_digest(repr(s).encode())}")


def _numpy_states() -> list[State]:
    return [State("numpy error state (np.geterr)", np.geterr, lambda s: np.seterr(**s), "numpy error state",
                  show=lambda s: ", ".join(f"{k}={v}" for k, v in sorted(s.items()))),
            State("numpy's legacy global generator (np.random.seed / np.random.rand ...)", _NUMPY_LEGACY.read,
                  _NUMPY_LEGACY.restore, "rng", same=lambda a, b: a[0] == b[0], show=_NUMPY_LEGACY.show)]


def _torch_states(torch) -> list[State]:
    def generator(get, put, name):
        return State(name, get, put, "rng", same=lambda a, b: torch.equal(a, b),
                     show=lambda s: f"state {_digest(s.numpy().tobytes())}")

    states = [State("torch default dtype", torch.get_default_dtype, torch.set_default_dtype, "torch default dtype",
                    show=lambda d: str(d)),
              State("torch grad mode", torch.is_grad_enabled, torch.set_grad_enabled, "torch grad mode",
                    show=lambda on: "enabled" if on else "disabled"),
              State("torch intra-op threads", torch.get_num_threads, torch.set_num_threads, "torch threads"),
              State("torch inter-op threads", torch.get_num_interop_threads, None, "torch threads"),
              generator(torch.get_rng_state, torch.set_rng_state, "torch's CPU random generator (torch.manual_seed)")]
    if torch.cuda.is_initialized():  # reading the CUDA generators never initialises CUDA
        states.append(State("torch's CUDA random generators", torch.cuda.get_rng_state_all,
                            torch.cuda.set_rng_state_all, "rng",
                            same=lambda a, b: len(a) == len(b) and all(map(torch.equal, a, b)),
                            show=lambda s: f"states {_digest(b''.join(t.numpy().tobytes() for t in s))}"))
    return states


def _jax_states(jax) -> list[State]:
    return [State("jax_enable_x64", lambda: bool(jax.config.jax_enable_x64),
                  lambda on: jax.config.update("jax_enable_x64", on), "jax x64")]


def states() -> list[State]:
    """The global state to guard now: numpy's and Python's always, torch's and JAX's only when already imported."""
    out = [*_numpy_states(), _python_random()]
    if "torch" in sys.modules:
        out += _torch_states(sys.modules["torch"])
    if "jax" in sys.modules and hasattr(sys.modules["jax"], "config"):
        out += _jax_states(sys.modules["jax"])
    return out


# ----------------------------------------------------------------------------------------------- the guard

class GlobalStateChanged(Exception):
    """Raised by ``unchanged_global_state`` after it restored the state; ``changes`` says what changed."""

    def __init__(self, changes: list[str], advice: list[str]):
        self.changes, self.advice = changes, advice
        super().__init__("; ".join(changes))


@contextlib.contextmanager
def unchanged_global_state(*, allow_rng: bool = False) -> Iterator[None]:
    """Read the global state, run the block, restore whatever changed; raise GlobalStateChanged (after restoring)
    when the block returned normally but changed something. An exception from the block passes through unchanged
    (the state is restored all the same). allow_rng: random generators may be drawn from (e.g. constructing a layer
    draws its initial weights); they are restored silently."""
    guarded = states()
    before = [s.read() for s in guarded]
    failed = True
    try:
        yield
        failed = False
    finally:
        changes, advice = [], []
        for state, old in zip(guarded, before):
            try:
                new = state.read()
                same = state.same(old, new)
            except Exception:  # a library left in a state that cannot even be read: put it back regardless
                new, same = None, False
            if same:
                continue
            if state.restore is not None:
                state.restore(old)
            if failed or (allow_rng and state.kind == "rng"):
                continue
            shown = state.show(new) if new is not None else "unreadable"
            changes.append(f"{state.name}: {state.show(old)} -> {shown}"
                           + ("" if state.restore else " (cannot be set back: torch allows setting it once)"))
            if ADVICE[state.kind] not in advice:
                advice.append(ADVICE[state.kind])
        if changes and not failed:
            raise GlobalStateChanged(changes, advice)
