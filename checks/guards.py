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

Cost: reading is cheap except the generators' states. numpy's legacy generator and Python's are read as their raw
Mersenne-Twister words (2.5 kB copied from the C struct, about 1 us, instead of ``np.random.get_state``'s 300 us and
``random.getstate``'s 50 us); the full state (for restoring) is taken only when those words changed. Blind spot of
that shortcut: a call that only consumes the cached second normal of numpy's legacy ``np.random.randn`` leaves the
words as they were and is not seen. Python's generator is read in place only on CPython, and only after checking
once that the words found there are those ``random.getstate`` returns.
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


# ------------------------------------------------------------------ the generators: raw words, full state on change

class _Generator:
    """A global Mersenne-Twister generator read cheaply: its raw words (key[624] and position, 2.5 kB copied from the
    C struct) say whether it changed; the full state (for restoring, with any cached normal) is taken only when the
    words differ from the last ones seen. ``words()`` returns None where the struct cannot be found: then the full
    state is read every time."""

    def __init__(self, full: Callable[[], Any], put: Callable[[Any], None], words: Callable[[], bytes | None]):
        self.full, self.put, self.words = full, put, words
        self._last: tuple = (None, None)

    def read(self):
        words = self.words()
        if words is None:
            return None, self.full()
        if words != self._last[0]:
            self._last = (words, self.full())
        return self._last

    def restore(self, saved):
        self.put(saved[1])

    @staticmethod
    def same(a, b) -> bool:
        return a[0] == b[0] if a[0] is not None else a[1] == b[1]


def _numpy_words() -> bytes:
    """np.random's global RandomState: struct mt19937_state {uint32_t key[624]; int pos;} of its bit generator."""
    return ctypes.string_at(np.random.mtrand._rand._bit_generator.ctypes.state_address, 624 * 4 + 4)


def _python_words() -> bytes | None:
    """random's generator: CPython's RandomObject {PyObject_HEAD; int index; uint32_t state[624];} read in place,
    used only if it agrees with random.getstate() (checked once)."""
    if _PYTHON_LAYOUT_OK[0] is None:
        _PYTHON_LAYOUT_OK[0] = _python_layout_agrees()
    if not _PYTHON_LAYOUT_OK[0]:
        return None
    words = ctypes.string_at(id(random._inst) + object.__basicsize__, 4 + 624 * 4)
    return words + repr(random._inst.gauss_next).encode()  # gauss() keeps its second normal in a Python attribute


_PYTHON_LAYOUT_OK: list = [None]


def _python_layout_agrees() -> bool:
    try:
        if sys.implementation.name != "cpython" or type(random._inst).__basicsize__ < object.__basicsize__ + 2500:
            return False
        raw = ctypes.string_at(id(random._inst) + object.__basicsize__, 4 + 624 * 4)
        version, words, gauss = random.getstate()
        return list(np.frombuffer(raw[4:], dtype=np.uint32)) == list(words[:-1]) and \
            int.from_bytes(raw[:4], sys.byteorder) == words[-1]
    except Exception:
        return False


_NUMPY_LEGACY = _Generator(lambda: np.random.mtrand._rand.get_state(), np.random.set_state, _numpy_words)
_PYTHON_RANDOM = _Generator(random.getstate, random.setstate, _python_words)


def _show_words(saved) -> str:
    if saved[0] is None:
        return f"Mersenne Twister {_digest(repr(saved[1]).encode())}"
    position = int.from_bytes(saved[0][-4:], sys.byteorder, signed=True)
    return f"MT19937 {_digest(saved[0][:-4])} at position {position}"


def _python_random() -> State:
    return State("Python's random generator", _PYTHON_RANDOM.read, _PYTHON_RANDOM.restore, "rng",
                 same=_Generator.same, show=lambda s: f"Mersenne Twister {_digest(repr(s[1]).encode())}")


def _numpy_states() -> list[State]:
    return [State("numpy error state (np.geterr)", np.geterr, lambda s: np.seterr(**s), "numpy error state",
                  show=lambda s: ", ".join(f"{k}={v}" for k, v in sorted(s.items()))),
            State("numpy's legacy global generator (np.random.seed / np.random.rand ...)", _NUMPY_LEGACY.read,
                  _NUMPY_LEGACY.restore, "rng", same=_Generator.same, show=_show_words)]


def _torch_states(torch) -> list[State]:
    def generator(get, put, name):  # compared as bytes: torch.equal costs 40 us a call, bytes 1 us
        def read():
            state = get()  # a ByteTensor (CPU), or a list of them (CUDA: one per device)
            return state, b"".join(t.numpy().tobytes() for t in (state if isinstance(state, list) else [state]))
        return State(name, read, lambda s: put(s[0]), "rng", same=lambda a, b: a[1] == b[1],
                     show=lambda s: f"state {_digest(s[1])}")

    states = [State("torch default dtype", torch.get_default_dtype, torch.set_default_dtype, "torch default dtype",
                    show=lambda d: str(d)),
              State("torch grad mode", torch.is_grad_enabled, torch.set_grad_enabled, "torch grad mode",
                    show=lambda on: "enabled" if on else "disabled"),
              State("torch intra-op threads", torch.get_num_threads, torch.set_num_threads, "torch threads"),
              State("torch inter-op threads", torch.get_num_interop_threads, None, "torch threads"),
              generator(torch.get_rng_state, torch.set_rng_state, "torch's CPU random generator (torch.manual_seed)")]
    if torch.cuda.is_initialized():  # reading the CUDA generators never initialises CUDA
        states.append(generator(torch.cuda.get_rng_state_all, torch.cuda.set_rng_state_all,
                                "torch's CUDA random generators"))
    return states


def _jax_states(jax) -> list[State]:
    return [State("jax_enable_x64", lambda: bool(jax.config.jax_enable_x64),
                  lambda on: jax.config.update("jax_enable_x64", on), "jax x64")]


_STATES: dict[tuple, list[State]] = {}


def states() -> list[State]:
    """The global state to guard now: numpy's and Python's always, torch's and JAX's only when already imported
    (the list is made once per combination of the imported modules and whether CUDA is initialised)."""
    torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
    jax = jax if hasattr(jax, "config") else None
    # keyed by the modules' identity: the states close over the module objects they read
    key = (id(torch) if torch else None, id(jax) if jax else None, torch is not None and torch.cuda.is_initialized())
    found = _STATES.get(key)
    if found is None:
        found = _STATES[key] = [*_numpy_states(), _python_random(), *(_torch_states(torch) if torch else ()),
                                *(_jax_states(jax) if jax else ())]
    return found


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
