"""The harness's fixed overhead per case at about 1e2 input elements: the time a check of one case spends outside the
implementation's own forward/backward calls (issue 16: target under 0.3 ms), which thorough runs pay tens of
thousands of times.

    python -m benchmarks.overhead [--ops conv2d,dense] [--size 100] [--repeats 300] [--rounds 3]

For each op (``benchmarks.sizes``' family member nearest ``--size`` input elements, benchmarks.torch_backed's
torch-backed implementation, whose Counter records the time spent inside its calls) and two paths:

- ``check_case``: ``cnn_gradcheck.runner.check_case(spec, impl, case, oracles=("finite differences", "adjoint"))``
  on a plain ``Implementation`` (what bench_gradcheck times);
- ``plug-in``: what ``check_plugin`` does per case: ``plug.bind(spec, layout)`` then ``check_case`` on the bound
  plug-in (``cnn_gradcheck.plugins.plugin(forward, backward)``: numpy kind, in-process, the default time limit per
  call, every call through the binding and ``call_user``, forward and backward called twice for repeatability);

it prints the median over ``--repeats`` cases (the median of ``--rounds`` such medians, rounds interleaved between
the ops and paths so that a burst of load on a shared machine hits all of them alike) of

- overhead per case: wall time of the case minus the time inside the implementation's calls;
- of it, stage 3 (calling user code: ``calls.evaluate`` and every guarded forward the witnesses ask for through
  ``Evaluation.forward``, minus the implementation's time) and the rest (the witnesses and the verdicts: finite
  differences, the adjoint test, comparisons, outside any call);
- per layer call: the overhead divided by the number of forward and backward calls the case made.

Also printed: the cost of one empty state guard (``guards.unchanged_global_state``), the floor of every call.
Timings on a shared machine are noisy: read medians, and compare runs made under the same load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from unittest import mock

import numpy as np
import torch

from cnn_gradcheck import guards, runner
from cnn_gradcheck.plugins import plugin
from cnn_gradcheck.registry import all_specs

from .bench_gradcheck import HARNESS_ORACLES, SEED, machine
from .sizes import config_near, input_elements
from .sizes import FAMILIES as _ALL_FAMILIES
from .torch_backed import torch_backed

OPS = ("conv2d", "maxpool2d", "dense", "softmax_cross_entropy")
PATHS = ("check_case", "plug-in")


class StageTimer:
    """Seconds spent in stage 3 during a case: inside ``evaluate`` and inside ``Evaluation.forward`` (wrapped)."""

    def __init__(self):
        self.seconds = 0.0
        self._evaluate = runner.evaluate

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        evaluation = self._evaluate(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        inner = evaluation.forward

        def forward(arrays):
            begin = time.perf_counter()
            try:
                return inner(arrays)
            finally:
                self.seconds += time.perf_counter() - begin

        evaluation.forward = forward
        return evaluation


def one_case(path: str, spec, impl, plug, case, counter, timer: StageTimer) -> tuple[float, float, int]:
    """(overhead s, stage-3 overhead s, layer calls) of one case."""
    counter.reset()
    timer.seconds = 0.0
    start = time.perf_counter()
    if path == "plug-in":
        impl = plug.bind(spec, "contiguous")
    result = runner.check_case(spec, impl, case, oracles=HARNESS_ORACLES)
    total = time.perf_counter() - start
    if result.failures:
        raise SystemExit(f"{spec.name}: the correct implementation failed the check: {result.failures}")
    inside = counter.forward_s + counter.backward_s
    return total - inside, timer.seconds - inside, counter.forward + counter.backward


def guard_cost(repeats: int = 3000) -> float:
    def once():
        with guards.unchanged_global_state():
            pass
    for _ in range(100):
        once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated op names")
    parser.add_argument("--size", type=float, default=1e2, help="target input elements")
    parser.add_argument("--repeats", type=int, default=300, help="cases per op, path and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median of their medians is printed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    specs = all_specs()
    timer = StageTimer()
    setups = {}
    for op in (o for o in args.ops.split(",") if o):
        spec = specs[op]
        config = config_near(spec, _ALL_FAMILIES[op], int(args.size))
        case = spec.make_case(config, SEED)
        impl, counter = torch_backed(spec)
        plug = plugin(impl.forward, impl.backward, name=impl.name)
        setups[op] = (spec, impl, plug, case, counter, input_elements(spec, config))
    print(f"machine: {machine()}")
    print(f"oracles: {', '.join(HARNESS_ORACLES)}; {args.repeats} cases x {args.rounds} rounds per op and path")
    results: dict = {(op, path): [] for op in setups for path in PATHS}
    start_all = time.perf_counter()
    with mock.patch.object(runner, "evaluate", timer.evaluate):
        for (op, path), _ in results.items():  # warm-up: imports, caches, torch's first calls
            for _ in range(10):
                one_case(path, *setups[op][:5], timer)
        for _ in range(args.rounds):
            for (op, path), rounds in results.items():
                samples = [one_case(path, *setups[op][:5], timer) for _ in range(args.repeats)]
                rounds.append(samples)
    guard = guard_cost()
    print()
    print("| op | input elements | path | layer calls per case | overhead per case | stage 3 (calling user code) "
          "| witnesses and verdicts | overhead per layer call |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for (op, path), rounds in results.items():
        def med(index):
            return statistics.median(statistics.median(s[index] for s in samples) for samples in rounds)
        total, stage3, calls = med(0), med(1), rounds[-1][-1][2]
        summary[(op, path)] = (total, stage3, calls)
        print(f"| {op} | {setups[op][5]} | {path} | {calls} | {total * 1e3:.3f} ms | {stage3 * 1e3:.3f} ms "
              f"| {(total - stage3) * 1e3:.3f} ms | {total / calls * 1e6:.0f} us |")
    print()
    print(f"one empty state guard (guards.unchanged_global_state, torch imported): {guard * 1e6:.1f} us")
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"benchmark wall time {time.perf_counter() - start_all:.0f} s")
    return summary


if __name__ == "__main__":
    main()
