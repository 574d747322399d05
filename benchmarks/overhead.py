"""The harness's fixed overhead per case at about 1e2 input elements: the time a check of one case spends outside the
implementation's own forward/backward calls (issue 16: target under 0.3 ms), which thorough runs pay tens of
thousands of times.

    python -m benchmarks.overhead [--ops conv2d,dense] [--size 100] [--repeats 200] [--rounds 3]

For each op (``benchmarks.sizes``' family member nearest ``--size`` input elements; the torch-backed implementation
of ``benchmarks.torch_backed``) and two paths:

- ``check_case``: ``cnn_gradcheck.runner.check_case(spec, impl, case, oracles=("finite differences", "adjoint"))``
  on a plain ``Implementation`` (what bench_gradcheck times);
- ``plug-in``: what ``check_plugin`` does per case: ``plug.bind(spec, layout)`` then ``check_case`` on the bound
  plug-in (``cnn_gradcheck.plugins.plugin(forward, backward)``: numpy kind, in-process, the default time limit per
  call, every call through the binding and ``call_user``, forward and backward called twice for repeatability);

it prints medians over ``--repeats`` cases (the median of ``--rounds`` such medians; rounds interleave the ops and
paths, so that a burst of load on a shared machine hits all of them alike) of

- overhead per case: the case's time minus the time inside the implementation's forward/backward calls;
- of it, stage 3 (calling user code: inside ``calls.evaluate``, ``Evaluation.forward``, the ``cnn_gradcheck.calls``
  functions the witnesses call themselves, and the plug-in's ``bind``; minus the implementation's time), measured
  in separate instrumented runs (their wrappers cost about 1 us a call of their own), and the rest: the witnesses
  and verdicts (finite differences, the adjoint test, comparisons; stages 4-5);
- per layer call: the overhead divided by the forward and backward calls the case made.

Times are CPU time of this thread (``time.thread_time``, torch single-threaded): on a shared machine, wall time
also counts the time the process waits for a core (a 4 ms scheduler tick now and then, which a case of 2 ms meets
often); the wall-clock overhead is printed too. Also printed: one empty state guard
(``guards.unchanged_global_state``), paid twice per plug-in call (the binding's and the adapter's).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from unittest import mock

import torch

from cnn_gradcheck import calls, guards, runner
from cnn_gradcheck.plugins import plugin
from cnn_gradcheck.registry import all_specs
from cnn_gradcheck.spec import Implementation

from .bench_gradcheck import HARNESS_ORACLES, SEED, machine
from .sizes import FAMILIES, config_near, input_elements
from .torch_backed import torch_backed

OPS = ("conv2d", "maxpool2d", "dense", "softmax_cross_entropy")
PATHS = ("check_case", "plug-in")
clock = time.thread_time


@dataclass
class Inside:
    """Time spent inside an implementation's calls (CPU and wall), and how many calls."""

    cpu: float = 0.0
    wall: float = 0.0
    calls: int = 0

    def reset(self) -> None:
        self.cpu = self.wall = 0.0
        self.calls = 0


def timed_implementation(impl: Implementation) -> tuple[Implementation, Inside]:
    inside = Inside()

    def timed(fn):
        def run(*args, **kwargs):
            wall, cpu = time.perf_counter(), clock()
            try:
                return fn(*args, **kwargs)
            finally:
                inside.cpu += clock() - cpu
                inside.wall += time.perf_counter() - wall
                inside.calls += 1
        return run

    return Implementation(impl.name, timed(impl.forward), timed(impl.backward)), inside


class StageTimer:
    """CPU time spent in stage 3 during a case: inside ``evaluate``, ``Evaluation.forward`` and the functions of
    ``cnn_gradcheck.calls`` the witnesses call themselves (the adjoint test's backward calls), counted once where
    they nest. Installed only for the instrumented runs."""

    WRAPPED = ("call_user", "to_float64", "check_shape", "check_finite", "gradient_tuple")

    def __init__(self):
        self.seconds = 0.0
        self._depth = 0

    def timed(self, fn):
        def run(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth = 1
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += clock() - start
                self._depth = 0
        return run

    def evaluate(self, original):
        timed = self.timed(original)

        def evaluate(*args, **kwargs):
            evaluation = timed(*args, **kwargs)
            evaluation.forward = self.timed(evaluation.forward)
            return evaluation
        return evaluate

    @contextlib.contextmanager
    def installed(self):
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(runner, "evaluate", self.evaluate(runner.evaluate)))
            for name in self.WRAPPED:
                stack.enter_context(mock.patch.object(calls, name, self.timed(getattr(calls, name))))
            yield self


@dataclass
class Setup:
    spec: object
    impl: Implementation
    plug: object
    case: object
    inside: Inside
    n_in: int


def one_case(path: str, s: Setup, timer: StageTimer | None) -> tuple[float, float, float, int]:
    """(overhead in CPU s, stage-3 overhead in CPU s (nan without a timer), overhead in wall s, layer calls)."""
    s.inside.reset()
    if timer is not None:
        timer.seconds = 0.0
    wall, start = time.perf_counter(), clock()
    impl = s.plug.bind(s.spec, "contiguous") if path == "plug-in" else s.impl
    bound = clock()
    result = runner.check_case(s.spec, impl, s.case, oracles=HARNESS_ORACLES)
    total, wall = clock() - start, time.perf_counter() - wall
    if result.failures:
        raise SystemExit(f"{s.spec.name}: the correct implementation failed the check: {result.failures}")
    stage3 = timer.seconds + (bound - start) - s.inside.cpu if timer is not None else float("nan")
    return total - s.inside.cpu, stage3, wall - s.inside.wall, s.inside.calls


def guard_cost(repeats: int = 3000) -> float:
    def once():
        with guards.unchanged_global_state():
            pass
    for _ in range(100):
        once()
    times = []
    for _ in range(repeats):
        start = clock()
        once()
        times.append(clock() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated op names")
    parser.add_argument("--size", type=float, default=1e2, help="target input elements")
    parser.add_argument("--repeats", type=int, default=200, help="cases per op, path and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median of their medians is printed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    specs = all_specs()
    timer = StageTimer()
    setups = {}
    for op in (o for o in args.ops.split(",") if o):
        spec = specs[op]
        config = config_near(spec, FAMILIES[op], int(args.size))
        impl, inside = timed_implementation(torch_backed(spec)[0])
        plug = plugin(impl.forward, impl.backward, name=impl.name)
        setups[op] = Setup(spec, impl, plug, spec.make_case(config, SEED), inside, input_elements(spec, config))
    print(f"machine: {machine()}")
    print(f"oracles: {', '.join(HARNESS_ORACLES)}; {args.repeats} cases x {args.rounds} rounds per op and path, "
          f"clean and instrumented")
    results: dict = {(op, path): ([], []) for op in setups for path in PATHS}  # (clean, instrumented) rounds
    start_all = time.perf_counter()
    for op, path in results:  # warm-up: imports, caches, torch's first calls
        for _ in range(10):
            one_case(path, setups[op], None)
    for _ in range(args.rounds):
        for (op, path), (clean, instrumented) in results.items():
            clean.append([one_case(path, setups[op], None) for _ in range(args.repeats)])
            with timer.installed():
                instrumented.append([one_case(path, setups[op], timer) for _ in range(args.repeats)])
    guard = guard_cost()
    print()
    print("| op | input elements | path | layer calls per case | overhead per case | stage 3 (calling user code) "
          "| witnesses and verdicts | overhead per layer call | wall-clock overhead per case |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}

    def med(rounds, value):
        return statistics.median(statistics.median(value(s) for s in samples) for samples in rounds)

    for (op, path), (clean, instrumented) in results.items():
        total, wall, calls_made = med(clean, lambda s: s[0]), med(clean, lambda s: s[2]), clean[-1][-1][3]
        stage3, rest = med(instrumented, lambda s: s[1]), med(instrumented, lambda s: s[0] - s[1])
        summary[(op, path)] = {"overhead": total, "stage3": stage3, "rest": rest, "calls": calls_made,
                               "wall": wall}
        print(f"| {op} | {setups[op].n_in} | {path} | {calls_made} | {total * 1e3:.3f} ms | {stage3 * 1e3:.3f} ms "
              f"| {rest * 1e3:.3f} ms | {total / calls_made * 1e6:.0f} us | {wall * 1e3:.3f} ms |")
    print()
    print(f"one empty state guard (guards.unchanged_global_state, torch imported): {guard * 1e6:.1f} us CPU")
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"benchmark wall time {time.perf_counter() - start_all:.0f} s")
    return summary


if __name__ == "__main__":
    main()
