"""Calls of a plug-in that cannot take the harness down: a time limit on every call, and (``isolate``) the calls run
in a worker process, so that a native crash (SIGSEGV, abort) or a hang ends the worker, not the test run.

The worker is forked from the harness when a plug-in's first call is made (``multiprocessing``'s "fork" start
method, Linux): it inherits the plug-in object, so nothing has to be importable by name. It then serves one call
after another (the arrays go over a pipe in the canonical float64 form; the worker presents them in the plug-in's
library, dtype and memory layout, runs the guarded call and checks what came back, exactly as in-process), so state
a plug-in keeps between calls behaves as it would in-process. torch runs single-threaded in the worker (intra-op):
torch's OpenMP thread pool, once the harness has used it, does not survive fork, and a child using it hangs (the
reason torch's own DataLoader workers do the same). After a crash or a time-out the worker is replaced by
a fresh fork on the next call.

Without a worker (``isolate=False``, or where fork is unsafe: no fork on this platform, or CUDA already initialised
in the harness, which a forked child cannot use) the limit is a SIGALRM timer in the main thread: it stops Python
code and sleeps, not a native loop that never returns to the interpreter.

A time-out ends the check at once (``StopCheck``) instead of being shrunk: every shrinking step that hangs would
wait the whole limit again. A crash is a failure like any other and is shrunk to the smallest crashing case.

Cost: see docs/guards.md (measured per call and per fork).
"""
from __future__ import annotations

import _signal
import faulthandler
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
import weakref
from typing import Any, Callable

from .calls import ImplementationError, TimeLimitReached, describe_call

#: seconds a single call of a plug-in may take (check_plugin(time_limit=...), pytest --plugin-time-limit)
DEFAULT_TIME_LIMIT = 60.0
#: workers kept alive at once (one per plug-in and op being checked; the oldest is ended first)
MAX_WORKERS = 2

_SIGNALS = {"SIGSEGV": "a segmentation fault: memory read or written outside what the process owns (a bad pointer "
                       "or index in native code)",
            "SIGABRT": "abort(): a failed assertion or a fatal error in native code",
            "SIGBUS": "a bus error: misaligned or unmapped memory",
            "SIGFPE": "a floating-point or integer arithmetic trap (integer division by zero)",
            "SIGILL": "an illegal instruction (code built for another CPU)",
            "SIGKILL": "killed from outside (out of memory?)"}


def can_fork() -> bool:
    """Fork is safe here: Linux, and no CUDA context in the harness (a forked child cannot use an initialised one)."""
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if multiprocessing.current_process().daemon:  # a daemonic process (a Pool's worker) may not start children
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()


def time_out(seconds: float, role: str, args, kwargs) -> ImplementationError:
    return ImplementationError(f"the implementation did not return within {seconds:g} s",
                               f"{role} was stopped after {seconds:g} s (the time limit per call: "
                               f"check_plugin(time_limit=...), pytest --plugin-time-limit); a hang or an endless "
                               f"loop at this configuration? The check stops here: shrinking would wait the limit "
                               f"for every smaller case\ncall: {describe_call(role, args, kwargs)}", final=True)


# ------------------------------------------------------------------------------------- in-process time limit

class in_process_limit:  # noqa: N801 -- used as a function: ``with in_process_limit(seconds): ...``
    """Raise TimeLimitReached inside the block after ``seconds`` (SIGALRM; main thread only, else no limit). An
    outer timer (pytest-timeout's) is put back afterwards with the time it had left.

    Entered once per call of a plug-in: a class, not a generator, and ``_signal``'s functions, not ``signal``'s
    (which wrap every handler in an enum): about 3 us instead of 12."""

    __slots__ = ("seconds", "_previous", "_outer", "_interval", "_start")

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._previous = _UNSET

    def _alarm(self, signum, frame):
        raise TimeLimitReached(self.seconds)

    def __enter__(self) -> None:
        if not self.seconds or not _ALARM or threading.get_ident() != threading.main_thread().ident:
            return
        self._previous = _signal.signal(_SIGALRM, self._alarm)
        self._outer, self._interval = _signal.setitimer(_ITIMER_REAL, self.seconds)
        self._start = time.monotonic()

    def __exit__(self, kind, value, traceback) -> bool:
        if self._previous is _UNSET:
            return False
        _signal.setitimer(_ITIMER_REAL, 0)
        _signal.signal(_SIGALRM, self._previous)
        self._previous = _UNSET
        if self._outer:
            _signal.setitimer(_ITIMER_REAL, max(self._outer - (time.monotonic() - self._start), 1e-3),
                              self._interval)
        return False


_UNSET = object()
_ALARM = hasattr(_signal, "setitimer") and hasattr(_signal, "SIGALRM")
_SIGALRM = getattr(_signal, "SIGALRM", None)
_ITIMER_REAL = getattr(_signal, "ITIMER_REAL", None)


# --------------------------------------------------------------------------------------------- the worker

def _serve(conn, serve: Callable[[tuple], Any], crash_log) -> None:
    """The worker's loop: a request in, (True, result) or (False, ImplementationError) out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle: it ends this worker
    if "torch" in sys.modules:  # an OpenMP pool the harness started does not survive fork: a child that used it
        sys.modules["torch"].set_num_threads(1)  # would hang; one thread, as torch's DataLoader workers do
    faulthandler.enable(file=crash_log, all_threads=False)  # where a crash happened, for the report
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        try:
            reply = (True, serve(request))
        except (ImplementationError, KeyboardInterrupt) as e:  # a KeyboardInterrupt raised by the plug-in itself
            reply = (False, e)
        except BaseException as e:  # the harness's own code failed in the worker: say so, do not hang the caller
            reply = (False, ImplementationError("error in the harness's worker process", f"{type(e).__name__}: {e}"))
        try:
            conn.send(reply)
        except Exception as e:  # a result that does not pickle
            conn.send((False, ImplementationError("result cannot be sent back from the worker process",
                                                  f"{type(e).__name__}: {e}")))


_WARM: list = []


def _warm_torch() -> None:
    """Start torch's autograd engine in the harness once before forking, so that every worker inherits it started:
    its lazy start costs each fresh process 0.1-2 s on the first backward, which would count against the limit."""
    torch = sys.modules.get("torch")
    if torch is not None and not _WARM:
        x = torch.ones(1, dtype=torch.float64, requires_grad=True)
        _WARM.extend(torch.autograd.grad((x * x).sum(), x))


class Worker:
    """One forked process serving the calls of one plug-in on one op; ``serve(request)`` runs in the child."""

    def __init__(self, serve: Callable[[tuple], Any]):
        self._serve = serve
        self._process = self._conn = self._log = None
        self.forks = 0

    def _start(self) -> None:
        _warm_torch()
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._log = tempfile.TemporaryFile("w+")
        with warnings.catch_warnings():  # Python 3.12 warns about fork in a process with threads (torch's pools)
            warnings.simplefilter("ignore", DeprecationWarning)
            self._process = context.Process(target=_serve, args=(child, self._serve, self._log), daemon=True,
                                            name="cnn_gradcheck worker")
            self._process.start()
        child.close()
        self.forks += 1

    def call(self, request: tuple, time_limit: float | None, role: str, args, kwargs) -> Any:
        """Run ``request`` in the worker; a crash, an exit or a time-out becomes an ImplementationError."""
        if self._process is None or not self._process.is_alive():
            self.close()
            self._start()
        try:
            self._conn.send(request)
            if not self._conn.poll(time_limit):
                self.close()
                raise time_out(time_limit, role, args, kwargs)
            ok, value = self._conn.recv()
        except (EOFError, OSError):  # the worker died during the call
            raise self._died(role, args, kwargs) from None
        except BaseException:  # Ctrl-C while waiting: the worker is mid-call, its answer would come to the next call
            self.close()
            raise
        if ok:
            return value
        raise value

    def _died(self, role: str, args, kwargs) -> ImplementationError:
        self._process.join(5)
        code = self._process.exitcode
        self._log.seek(0)
        where = _crash_frames(self._log.read())
        self.close()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return ImplementationError(
                f"the implementation crashed the process ({name})",
                f"{role} ended the worker process that runs the plug-in's calls with signal {-code} ({name}: "
                f"{_SIGNALS.get(name, 'a fatal signal')}); the check went on in a new worker{where}\n"
                f"call: {describe_call(role, args, kwargs)}")
        return ImplementationError(
            f"the implementation ended the process (exit status {code})",
            f"{role} ended the worker process that runs the plug-in's calls (os._exit or a native exit()); "
            f"the check went on in a new worker{where}\ncall: {describe_call(role, args, kwargs)}")

    def close(self) -> None:
        if self._process is not None:
            self._conn.close()
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
            self._log.close()
        self._process = self._conn = self._log = None


def _crash_frames(log: str, keep: int = 4) -> str:
    """The innermost frames faulthandler wrote at the crash, outside the harness ("File ..., line N in f")."""
    from .calls import _HARNESS_DIR
    frames = []
    for line in (line.strip() for line in log.splitlines()):
        if line.startswith("File "):
            if _HARNESS_DIR in line:  # the harness's own frames: the user's code lies above (innermost first)
                break
            frames.append(line)
    if not frames:
        return ""
    return "\nwhere (innermost first, from the worker's faulthandler):\n" + "\n".join(f"  {f}" for f in frames[:keep])


# ------------------------------------------------------------------------------------ one worker per check

_WORKERS: dict[tuple, tuple[weakref.ref, Worker]] = {}


def worker_for(owner: Any, key: str, serve: Callable[[tuple], Any]) -> Worker:
    """The worker of (owner, key), forked on its first call; at most MAX_WORKERS stay alive (the oldest ends)."""
    slot = (id(owner), key)
    found = _WORKERS.get(slot)
    if found is not None and found[0]() is owner:
        _WORKERS[slot] = _WORKERS.pop(slot)  # most recently used last
        return found[1]
    worker = Worker(serve)
    _WORKERS[slot] = (weakref.ref(owner), worker)
    weakref.finalize(owner, worker.close)
    while len(_WORKERS) > MAX_WORKERS:
        _WORKERS.pop(next(iter(_WORKERS)))[1].close()
    return worker
