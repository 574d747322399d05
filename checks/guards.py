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

Cost: the guard runs around every call of user code (twice per plug-in call), so before and after a call it reads
only a fingerprint of each state (``State.quick``: equal fingerprints mean an unchanged state), all in one
compiled list display compared as one list; a state is read in full (for the report and for restoring) only when
its fingerprint moved, and the full state that goes with each fingerprint is kept from the last time it was read.
The fingerprints: numpy's error state by the immutable capsule numpy >= 2 keeps in a context variable; numpy's
legacy generator and Python's by their raw Mersenne-Twister words (2.5 kB copied through a live view of the C
struct, about 0.2 us, instead of ``np.random.get_state``'s 300 us and ``random.getstate``'s 50 us); torch's CPU
generator likewise in place (its mt19937 engine and cached normals; the layout found and checked once on a clone,
else ``get_rng_state`` as bytes); the rest by value. Blind spot of the words: a call that only consumes the cached
second normal of numpy's legacy ``np.random.randn`` leaves them as they were and is not seen. Python's generator is
read in place only on CPython, and only after checking once that the words found there are those
``random.getstate`` returns. About 5 us per guarded call in all (numpy and torch imported); docs/guards.md.
"""
from __future__ import annotations

import ctypes
import hashlib
import random
import sys
from dataclasses import dataclass
from typing import Any, Callable

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
    """One piece of global state: how to read it, put it back (None: read only), compare and show it.

    quick: a cheap fingerprint of the state (None: ``read`` itself is cheap and serves as one). Equal fingerprints
    must mean an unchanged state; different ones need not mean a change (then ``read`` and ``same`` decide). The
    guard compares fingerprints only, and reads the state in full only when one differs."""

    name: str
    read: Callable[[], Any]
    restore: Callable[[Any], None] | None
    kind: str  # the ADVICE key
    same: Callable[[Any, Any], bool] = lambda a, b: a == b
    show: Callable[[Any], str] = repr
    quick: Callable[[], Any] | None = None


def _digest(data: bytes) -> str:
    return "#" + hashlib.blake2b(data, digest_size=3).hexdigest()


class _Memory:
    """A live read-only window on ``size`` bytes of a C struct that ``owner`` keeps alive: ``bytes()`` copies them
    (about 0.3 us for 2.5 kB, against 2 us for ctypes.string_at)."""

    def __init__(self, owner: Any, address: int, size: int):
        self.owner = owner  # kept alive: the address stays valid as long as the view exists
        self._view = memoryview((ctypes.c_uint8 * size).from_address(address))
        self.bytes = self._view.tobytes


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


# np.random.seed, np.random.rand ... are methods bound, at numpy's import, to one RandomState (mtrand._rand), and
# random.seed, random.random ... to one random.Random (random._inst): the generators to read are fixed objects.

def _numpy_view() -> _Memory:
    """np.random's global RandomState: struct mt19937_state {uint32_t key[624]; int pos;} of its bit generator."""
    bit_generator = np.random.mtrand._rand._bit_generator
    return _Memory(bit_generator, bit_generator.ctypes.state_address, 624 * 4 + 4)


def _python_view() -> _Memory | None:
    """random's generator: CPython's RandomObject {PyObject_HEAD; int index; uint32_t state[624];} read in place,
    used only if it agrees with random.getstate() (checked once); None where it does not."""
    inst = random._inst
    try:
        if sys.implementation.name != "cpython" or type(inst).__basicsize__ < object.__basicsize__ + 2500:
            return None
        view = _Memory(inst, id(inst) + object.__basicsize__, 4 + 624 * 4)
        raw = view.bytes()
        version, words, gauss = random.getstate()
        if list(np.frombuffer(raw[4:], dtype=np.uint32)) == list(words[:-1]) and \
                int.from_bytes(raw[:4], sys.byteorder) == words[-1]:
            return view
    except Exception:
        pass
    return None


_VIEWS: dict = {}


def _view(name: str, make: Callable[[], _Memory | None]) -> _Memory | None:
    if name not in _VIEWS:
        _VIEWS[name] = make()
    return _VIEWS[name]


def _numpy_words() -> bytes:
    return _view("numpy", _numpy_view).bytes()


def _python_words() -> bytes | None:
    view = _view("python", _python_view)
    if view is None:
        return None
    return view.bytes() + repr(random._inst.gauss_next).encode()  # gauss() keeps its second normal in an attribute


def _python_quick() -> Callable[[], Any] | None:
    """The fingerprint of Python's generator: its words and cached normal (None where they cannot be read)."""
    view, inst = _view("python", _python_view), random._inst
    if view is None:
        return None
    words = view.bytes
    return lambda: (words(), inst.gauss_next)


_NUMPY_LEGACY = _Generator(lambda: np.random.mtrand._rand.get_state(), np.random.set_state, _numpy_words)
_PYTHON_RANDOM = _Generator(random.getstate, random.setstate, _python_words)


def _show_words(saved) -> str:
    if saved[0] is None:
        return f"Mersenne Twister {_digest(repr(saved[1]).encode())}"
    position = int.from_bytes(saved[0][-4:], sys.byteorder, signed=True)
    return f"MT19937 {_digest(saved[0][:-4])} at position {position}"


def _python_random() -> State:
    return State("Python's random generator", _PYTHON_RANDOM.read, _PYTHON_RANDOM.restore, "rng",
                 same=_Generator.same, show=lambda s: f"Mersenne Twister {_digest(repr(s[1]).encode())}",
                 quick=_python_quick())


def _numpy_error_quick() -> Callable[[], Any] | None:
    """numpy >= 2 keeps its error state in a context variable holding an immutable capsule: np.seterr and
    np.errstate set a new one, so the same capsule means the same state (20 ns, against np.geterr's 1.5 us)."""
    try:
        from numpy._core import _ufunc_config
        return _ufunc_config._extobj_contextvar.get
    except (ImportError, AttributeError):
        return None


def _numpy_states() -> list[State]:
    return [State("numpy error state (np.geterr)", np.geterr, lambda s: np.seterr(**s), "numpy error state",
                  show=lambda s: ", ".join(f"{k}={v}" for k, v in sorted(s.items())), quick=_numpy_error_quick()),
            State("numpy's legacy global generator (np.random.seed / np.random.rand ...)", _NUMPY_LEGACY.read,
                  _NUMPY_LEGACY.restore, "rng", same=_Generator.same, show=_show_words,
                  quick=_view("numpy", _numpy_view).bytes)]


# ------------------------------------------------------------------ torch's CPU generator, read in place

def _torch_generator_memory(torch) -> Callable[[], bytes] | None:
    """A fingerprint of torch's default CPU generator read in place: its C++ object's mt19937 engine (seed, position,
    624 words) and cached normals (float and double), 2.6 kB through a live view (about 0.3 us, against
    get_rng_state's 2.5 us plus the conversion to bytes). The layout is found and checked once, on a clone of the
    generator (its draws leave the user's generator alone): every draw that changes the clone's ``get_state()``
    (uniform, normal from a fresh pair, normal from the cached one, float and double) must change the bytes found.
    None where anything does not agree: the guard then compares ``get_rng_state`` itself."""
    try:
        generator = torch.default_generator
        if type(generator).__basicsize__ < object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p):
            return None

        def impl(gen) -> int | None:  # THPGenerator {PyObject_HEAD; at::Generator cdata (one intrusive_ptr)}
            address = ctypes.c_void_p.from_address(id(gen) + object.__basicsize__).value
            return address if address and address % 8 == 0 else None

        def state_words(gen) -> bytes:  # CPUGeneratorImplState: seed u64, left i32, seeded i32, next u64, state u64[624]
            return np.frombuffer(gen.get_state().numpy().tobytes(), np.uint64, 624, 24).astype(np.uint32).tobytes()

        def locate(gen) -> int | None:
            address = impl(gen)
            if address is None:
                return None
            head = ctypes.string_at(address, 512)  # the object is over 2.5 kB long
            offset = head.find(state_words(gen)[:32])
            return offset if offset >= 20 else None

        clone = generator.clone_state()
        offset = locate(clone)
        if offset is None or locate(generator) != offset:
            return None
        start, size = offset - 20, 20 + 624 * 4 + 28  # mt19937_data_pod, then optional<float>, optional<double>

        def view(gen) -> _Memory:
            return _Memory(gen, impl(gen) + start, size)

        probe = view(clone)
        if int.from_bytes(probe.bytes()[:8], sys.byteorder) != clone.initial_seed():
            return None
        draws = [lambda: torch.rand(3, generator=clone)] + [
            lambda dtype=dtype: torch.randn(1, dtype=dtype, generator=clone)
            for dtype in (torch.float64, torch.float64, torch.float64, torch.float32, torch.float32, torch.float32)]
        for draw in [*draws, lambda: clone.manual_seed(12345), *draws]:
            before, state = probe.bytes(), clone.get_state().numpy().tobytes()
            draw()
            if clone.get_state().numpy().tobytes() != state and probe.bytes() == before:
                return None
        memory = view(generator)
        if memory.bytes()[20:20 + 624 * 4] != state_words(generator):
            return None
    except Exception:
        return None

    return memory.bytes  # torch's own functions use this object: torch/random.py imported it at torch's import


def _torch_states(torch) -> list[State]:
    def generator(get, put, name, quick=None):  # compared as bytes: torch.equal costs 40 us a call, bytes 1 us
        def read():
            state = get()  # a ByteTensor (CPU), or a list of them (CUDA: one per device)
            return state, b"".join(t.numpy().tobytes() for t in (state if isinstance(state, list) else [state]))
        return State(name, read, lambda s: put(s[0]), "rng", same=lambda a, b: a[1] == b[1],
                     show=lambda s: f"state {_digest(s[1])}", quick=quick or (lambda: read()[1]))

    states = [State("torch default dtype", torch.get_default_dtype, torch.set_default_dtype, "torch default dtype",
                    show=lambda d: str(d)),
              State("torch grad mode", torch.is_grad_enabled, torch.set_grad_enabled, "torch grad mode",
                    show=lambda on: "enabled" if on else "disabled"),
              State("torch intra-op threads", torch.get_num_threads, torch.set_num_threads, "torch threads"),
              State("torch inter-op threads", torch.get_num_interop_threads, None, "torch threads"),
              generator(torch.get_rng_state, torch.set_rng_state, "torch's CPU random generator (torch.manual_seed)",
                        _torch_generator_memory(torch))]
    if torch.cuda.is_initialized():  # reading the CUDA generators never initialises CUDA
        states.append(generator(torch.cuda.get_rng_state_all, torch.cuda.set_rng_state_all,
                                "torch's CUDA random generators"))
    return states


def _jax_states(jax) -> list[State]:
    return [State("jax_enable_x64", lambda: bool(jax.config.jax_enable_x64),
                  lambda on: jax.config.update("jax_enable_x64", on), "jax x64")]


class _Guarded:
    """The states to guard for one combination of imported modules, their fingerprints read in one call, and the
    full state last read for each fingerprint (what a restore puts back): ``known``, a tuple replaced (never
    changed in place) when a fingerprint moved, so that a guard holds on to the one it entered with."""

    def __init__(self, states: list[State]):
        self.states = states
        # one list display of calls (compiled once): about 2/3 of the time of a comprehension over the readers
        readers = {f"read{i}": s.quick or s.read for i, s in enumerate(states)}
        self.fingerprint = eval(f"lambda: [{', '.join(f'{name}()' for name in readers)}]", readers)
        self.known: tuple = tuple((_UNSEEN, None) for _ in states)  # per state: (fingerprint, full state)
        self.last: list | None = None  # the fingerprints ``known`` was last brought up to date with

    def enter(self) -> tuple[list, tuple]:
        """The fingerprints now, and the full state of each (read again only where its fingerprint moved)."""
        now = self.fingerprint()
        if now != self.last:
            known = list(self.known)
            for i, (state, value) in enumerate(zip(self.states, now)):
                if known[i][0] is _UNSEEN or not (known[i][0] is value or known[i][0] == value):
                    known[i] = (value, state.read() if state.quick is not None else value)
            self.known, self.last = tuple(known), now
        return now, self.known


_UNSEEN = object()
_STATES: dict[tuple, _Guarded] = {}


_LAST: list = [None, None, None]  # torch and jax as last seen (CUDA not initialised), and their _Guarded


def _guarded() -> _Guarded:
    modules = sys.modules
    torch, jax = modules.get("torch"), modules.get("jax")
    last = _LAST
    if last[2] is not None and torch is last[0] and jax is last[1] and (torch is None or
                                                                        not torch.cuda.is_initialized()):
        return last[2]
    found = _guarded_for(torch, jax)
    if (torch is None or not torch.cuda.is_initialized()) and (jax is None or hasattr(jax, "config")):
        last[:] = [torch, jax, found]  # not a jax still being imported (no config yet): looked at again next time
    return found


def _guarded_for(torch, jax) -> _Guarded:
    if jax is not None and not hasattr(jax, "config"):
        jax = None
    # keyed by the modules' identity: the states close over the module objects they read
    key = (id(torch), id(jax), torch is not None and torch.cuda.is_initialized())
    found = _STATES.get(key)
    if found is None:
        found = _STATES[key] = _Guarded([*_numpy_states(), _python_random(),
                                         *(_torch_states(torch) if torch else ()), *(_jax_states(jax) if jax else ())])
    return found


def states() -> list[State]:
    """The global state to guard now: numpy's and Python's always, torch's and JAX's only when already imported
    (the list is made once per combination of the imported modules and whether CUDA is initialised)."""
    return _guarded().states


# ----------------------------------------------------------------------------------------------- the guard

class GlobalStateChanged(Exception):
    """Raised by ``unchanged_global_state`` after it restored the state; ``changes`` says what changed."""

    def __init__(self, changes: list[str], advice: list[str]):
        self.changes, self.advice = changes, advice
        super().__init__("; ".join(changes))


class unchanged_global_state:  # noqa: N801 -- used as a function: ``with unchanged_global_state(): ...``
    """Read the global state, run the block, restore whatever changed; raise GlobalStateChanged (after restoring)
    when the block returned normally but changed something. An exception from the block passes through unchanged
    (the state is restored all the same). allow_rng: random generators may be drawn from (e.g. constructing a layer
    draws its initial weights); they are restored silently.

    Cost: the fingerprints of every state (``State.quick``) read before and after, compared as one list: a few
    microseconds a call; each state is read in full only when its fingerprint moved."""

    __slots__ = ("allow_rng", "_guarded", "_before", "_known")

    def __init__(self, *, allow_rng: bool = False):
        self.allow_rng = allow_rng

    def __enter__(self) -> None:
        self._guarded = _guarded()
        self._before, self._known = self._guarded.enter()

    def __exit__(self, kind, value, traceback) -> bool:
        guarded, before = self._guarded, self._before
        try:
            now = guarded.fingerprint()
        except Exception:  # a library left in a state that cannot even be read: compare each in full below
            now = None
        if now == before:
            return False
        failed = kind is not None
        changes, advice = [], []
        for i, state in enumerate(guarded.states):
            if now is not None and (now[i] is before[i] or now[i] == before[i]):
                continue
            old = self._known[i][1]
            try:
                new = state.read() if state.quick is not None or now is None else now[i]
                same = state.same(old, new)
            except Exception:  # a library left in a state that cannot even be read: put it back regardless
                new, same = None, False
            if same:
                continue
            if state.restore is not None:
                state.restore(old)
            if failed or (self.allow_rng and state.kind == "rng"):
                continue
            shown = state.show(new) if new is not None else "unreadable"
            changes.append(f"{state.name}: {state.show(old)} -> {shown}"
                           + ("" if state.restore else " (cannot be set back: torch allows setting it once)"))
            if ADVICE[state.kind] not in advice:
                advice.append(ADVICE[state.kind])
        if changes and not failed:
            raise GlobalStateChanged(changes, advice)
        return False
