"""Cost and power of the harness's check against torch.autograd.gradcheck (full and fast_mode), on the same function.

    python -m benchmarks.bench_gradcheck [--ops conv2d,dense] [--sizes 1e2,1e3,1e4,1e5] [--repeats 5]

The function under test is each op computed by torch.nn.functional in float64 behind a numpy forward/backward
(``benchmarks.torch_backed``). For every op and size, three checkers look at it:

- harness:  ``cnn_gradcheck.runner.check_case`` with the oracles that do not consult a second implementation
            (finite differences, and the adjoint test when ``cnn_gradcheck.oracles.ORACLES`` has it). The "pytorch" oracle
            is left out: it compares with torch itself, which here *is* the implementation (circular); the
            "reference" oracle runs the pure-Python loop references, a separate cost that is not the check's.
- gradcheck fast: ``torch.autograd.gradcheck(fast_mode=True)`` with its default eps/atol/rtol.
- gradcheck full: ``torch.autograd.gradcheck`` (full Jacobians of n_in * n_out numbers, 2 forward calls per input
            element). Above FULL_JACOBIAN_CAP entries or FULL_INPUT_CAP inputs it is not run and its time is
            estimated (marked "~"); its planted errors are run only where one check takes under
            FULL_DETECTION_BUDGET_S.

Reported: median wall time of REPEATS checks of the correct implementation, the forward/backward calls one check
makes (counted by wrapping the implementation), whether the correct implementation is flagged (a false alarm), and
whether planted errors (backward scaled by 1 + err, err = 1e-2 to 1e-10) are caught.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import torch

from cnn_gradcheck.oracles import ORACLES
from cnn_gradcheck.registry import all_specs
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import as_grad_dict

from .sizes import FAMILIES, config_near, input_elements
from .torch_backed import as_autograd_function, torch_backed

ERRORS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
SIZES = (1e2, 1e3, 1e4, 1e5, 1e6)
#: repeats of one checker on one case stop once they have taken this long (a check at 1e6 takes seconds)
REPEAT_BUDGET_S = 5.0
SEED = 20240601
#: full gradcheck builds two dense n_in x n_out float64 Jacobians; above this many entries it is not run
FULL_JACOBIAN_CAP = 1.5e8
#: ... nor above this many input elements (2 forward calls each: minutes per check at 1e5)
FULL_INPUT_CAP = 2e4
#: planted-error runs of full gradcheck only where one check takes less than this (seconds)
FULL_DETECTION_BUDGET_S = 2.0
#: JAX's check_grads is a row only where jax is importable
JAX = importlib.util.find_spec("jax") is not None
#: the harness's oracles for this benchmark: those independent of a second implementation
HARNESS_ORACLES = tuple(name for name in ORACLES if name == "finite differences" or "adjoint" in name)


@dataclass
class Row:
    op: str
    n_in: int
    n_out: int
    method: str
    seconds: float | None
    forward_calls: int | None
    backward_calls: int | None
    false_alarm: bool | None
    caught: dict = field(default_factory=dict)  # err -> True/False/None (not run)
    estimated: bool = False
    note: str = ""


def harness_flags(spec, impl, case) -> tuple[bool, str]:
    result = check_case(spec, impl, case, oracles=HARNESS_ORACLES)
    note = "kink (no verdict)" if result.kinks else ""
    return bool(result.failures), note


_GRADCHECK_MODULE = importlib.import_module("torch.autograd.gradcheck")


def _no_slow_mode_message(*args, **kwargs) -> str:
    return "(full Jacobians for the message: skipped by the benchmark)"


def gradcheck_flags(spec, impl, case, fast: bool) -> tuple[bool, str]:
    """gradcheck's verdict. When fast mode finds a mismatch, torch recomputes the full Jacobians just to word its
    message (a full gradcheck's cost: hours and terabytes at 1e5 elements); the verdict is already made then,
    so that step is skipped here. Timings are taken on the correct implementation, which never reaches it."""
    fn, inputs = as_autograd_function(spec, impl, case)
    torch.manual_seed(SEED)  # fast mode's random u, v
    with mock.patch.object(_GRADCHECK_MODULE, "_run_slow_mode_and_get_error", _no_slow_mode_message):
        ok = torch.autograd.gradcheck(fn, inputs, fast_mode=fast, raise_exception=False)
    return not ok, ""


def jax_flags(spec, impl, case) -> tuple[bool, str]:
    """JAX's ``jax.test_util.check_grads`` (order 1, reverse mode: one random projection, like fast gradcheck) on the
    same numpy implementation, reached through ``jax.pure_callback`` under a ``jax.custom_vjp``. Only when jax is
    importable (``make bench`` adds the row then); float64 enabled."""
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    jax.config.update("jax_enable_x64", True)
    hyper = spec.hyper(case.config)
    names = list(spec.differentiable)
    fixed = {n: a for n, a in case.arrays.items() if n not in names}
    out_shape = jax.ShapeDtypeStruct(tuple(case.dy.shape), jnp.float64)

    def arrays_of(values):
        return [dict(zip(names, values), **fixed)[n] for n in spec.arg_names]

    @jax.custom_vjp
    def f(*values):
        return jax.pure_callback(lambda *v: np.asarray(impl.forward(*arrays_of([np.asarray(a) for a in v]),
                                                                     **hyper), dtype=np.float64), out_shape, *values)

    def f_fwd(*values):
        return f(*values), values

    def f_bwd(values, dy):
        shapes = tuple(jax.ShapeDtypeStruct(np.shape(case.arrays[n]), jnp.float64) for n in names)
        grads = jax.pure_callback(
            lambda d, *v: tuple(np.asarray(g, dtype=np.float64) for g in as_grad_dict(
                spec, impl.backward(np.asarray(d), *arrays_of([np.asarray(a) for a in v]), **hyper)).values()),
            shapes, dy, *values)
        return tuple(grads)

    f.defvjp(f_fwd, f_bwd)
    try:
        check_grads(f, tuple(jnp.asarray(case.arrays[n]) for n in names), order=1, modes=["rev"])
    except AssertionError:
        return True, ""
    return False, ""


def timed(run, counter, repeats: int, budget_s: float = float("inf")):
    """Median seconds of up to ``repeats`` runs (fewer once ``budget_s`` is spent); calls of the last run."""
    times, outside, flagged, note = [], [], False, ""
    for _ in range(repeats):
        counter.reset()
        start = time.perf_counter()
        flagged, note = run()
        times.append(time.perf_counter() - start)
        outside.append(times[-1] - counter.forward_s - counter.backward_s)
        if sum(times) > budget_s:
            break
    timed.overhead = statistics.median(outside)  # the checker's own time, outside the implementation's calls
    return statistics.median(times), counter.forward, counter.backward, flagged, note


def measure(spec, case, n_in, n_out, method, run_with, repeats, budget_s=float("inf"),
            detect=True) -> Row:
    impl, counter = torch_backed(spec)
    seconds, fwd, bwd, flagged, note = timed(lambda: run_with(impl), counter, repeats, budget_s)
    if method == "harness":  # the fixed cost per case that the checker adds to the implementation's own calls
        note = "; ".join(filter(None, [note, f"overhead {timed.overhead * 1e3:.2f} ms"]))
    row = Row(spec.name, n_in, n_out, method, seconds, fwd, bwd, flagged, note=note)
    for err in ERRORS:
        if detect:
            wrong, _ = torch_backed(spec, err)
            row.caught[err] = run_with(wrong)[0]
        else:
            row.caught[err] = None
    return row


def full_estimate(spec, case, n_in, n_out) -> Row:
    """Full gradcheck's calls (2 forwards per input element, one backward per output element) at the per-call
    times measured here; a lower bound (Jacobian assembly and comparison not counted)."""
    impl, counter = torch_backed(spec)
    for _ in range(3):
        harness_flags(spec, impl, case)
    per_forward = counter.forward_s / counter.forward
    per_backward = counter.backward_s / counter.backward
    forwards, backwards = 2 * n_in, n_out
    gib = 2 * n_in * n_out * 8 / 2**30
    return Row(spec.name, n_in, n_out, "gradcheck full", forwards * per_forward + backwards * per_backward,
               forwards, backwards, None, {err: None for err in ERRORS}, estimated=True,
               note=f"not run ({forwards} forward calls, two Jacobians of {gib:.3g} GiB); lower-bound estimate "
                    f"from per-call times")


def bench_op(spec, family, sizes, repeats, full=True) -> list[Row]:
    rows = []
    for target in sizes:
        config = config_near(spec, family, int(target))
        case = spec.make_case(config, SEED)
        n_in = input_elements(spec, config)
        n_out = int(case.dy.size)
        rows.append(measure(spec, case, n_in, n_out, "harness",
                            lambda impl: harness_flags(spec, impl, case), repeats, REPEAT_BUDGET_S))
        rows.append(measure(spec, case, n_in, n_out, "gradcheck fast",
                            lambda impl: gradcheck_flags(spec, impl, case, True), repeats, REPEAT_BUDGET_S))
        if JAX:
            rows.append(measure(spec, case, n_in, n_out, "jax check_grads",
                                lambda impl: jax_flags(spec, impl, case), repeats, REPEAT_BUDGET_S))
        if not full or n_in * n_out > FULL_JACOBIAN_CAP or n_in > FULL_INPUT_CAP:
            rows.append(full_estimate(spec, case, n_in, n_out))
        else:
            row = measure(spec, case, n_in, n_out, "gradcheck full",
                          lambda impl: gradcheck_flags(spec, impl, case, False), repeats, budget_s=2.0,
                          detect=False)
            if row.seconds < FULL_DETECTION_BUDGET_S:
                for err in ERRORS:
                    wrong, _ = torch_backed(spec, err)
                    row.caught[err] = gradcheck_flags(spec, wrong, case, False)[0]
            else:
                row.note = f"planted errors not run (one check takes {row.seconds:.1f} s)"
            rows.append(row)
        for row in rows[-(4 if JAX else 3):]:
            print(f"  {format_row(row, _fast_of(rows, row))}", flush=True)
    return rows


def _mark(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _seconds(row: Row) -> str:
    s = row.seconds
    text = f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.1f} s"
    return ("~" + text) if row.estimated else text


def _calls(n, row) -> str:
    return ("~" if row.estimated else "") + f"{n}"


HEADER = ("| op | input elements | output elements | checker | median time | time / gradcheck fast | forward calls | "
          "backward calls | false alarm | caught 1e-2 | 1e-4 | 1e-6 | 1e-8 | 1e-10 | smallest caught | note |")


def smallest_caught(row: Row) -> str:
    """The smallest planted relative error the checker caught ("-" where none was run, "none" where none was)."""
    caught = [err for err in ERRORS if row.caught.get(err)]
    if all(row.caught.get(err) is None for err in ERRORS):
        return "-"
    return f"{min(caught):g}" if caught else "none"


def format_row(row: Row, fast: Row | None = None) -> str:
    caught = " | ".join(_mark(row.caught.get(err)) for err in ERRORS)
    ratio = f"{row.seconds / fast.seconds:.2f}" if fast is not None and fast.seconds else "-"
    return (f"| {row.op} | {row.n_in} | {row.n_out} | {row.method} | {_seconds(row)} | {ratio} | "
            f"{_calls(row.forward_calls, row)} | {_calls(row.backward_calls, row)} | {_mark(row.false_alarm)} | "
            f"{caught} | {smallest_caught(row)} | {row.note} |")


def _fast_of(rows: list[Row], row: Row) -> Row | None:
    return next((r for r in rows if (r.op, r.n_in, r.method) == (row.op, row.n_in, "gradcheck fast")), None)


def table(rows: list[Row]) -> str:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    lines += [format_row(r, _fast_of(rows, r)) for r in rows]
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """The issue's targets, evaluated on the rows."""
    out = []
    harness = [r for r in rows if r.method == "harness"]
    misses = [f"{r.op}@{r.n_in}" for r in harness if not r.caught.get(1e-6)]
    alarms = [f"{r.op}@{r.n_in}" for r in harness if r.false_alarm]
    out.append(f"1e-6 caught at every size: {'yes' if not misses else 'NO, missed at ' + ', '.join(misses)}")
    specs = all_specs()
    linear = [r for r in harness if r.op in specs and (specs[r.op].linear_args or specs[r.op].piecewise_linear_args)]
    missed = [f"{r.op}@{r.n_in}" for r in linear if not r.caught.get(1e-10)]
    out.append(f"1e-10 caught on every op with linear arguments ({', '.join(dict.fromkeys(r.op for r in linear))}): "
               + ("yes" if not missed else "NO, missed at " + ", ".join(missed)))
    out.append(f"zero false alarms: {'yes' if not alarms else 'NO, at ' + ', '.join(alarms)}")
    slower = [f"{r.op}@{r.n_in} ({r.seconds / f.seconds:.2f})" for r in harness
              if (f := _fast_of(rows, r)) is not None and r.seconds > f.seconds]
    out.append("harness time at most 1.0x gradcheck fast_mode: "
               + ("yes, at every op and size" if not slower else "NO at " + ", ".join(slower)))
    by_key = {(r.op, r.n_in, r.method): r for r in rows}
    for op in dict.fromkeys(r.op for r in rows):
        sizes = sorted({r.n_in for r in rows if r.op == op})
        n = min(sizes, key=lambda s: abs(s - 1e4))
        h, fast, full = (by_key[(op, n, m)] for m in ("harness", "gradcheck fast", "gradcheck full"))
        out.append(f"{op} at {n} input elements: harness / fast = {h.seconds / fast.seconds:.2f} (target <= 2), "
                   f"full / harness = {full.seconds / h.seconds:.0f}{' (estimated)' if full.estimated else ''} "
                   f"(target >= 20)")
    return out


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}, torch {torch.__version__}; load average {load}")


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(FAMILIES), help="comma-separated op names")
    parser.add_argument("--sizes", default=",".join(f"{s:g}" for s in SIZES), help="target input elements")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-full", dest="full", action="store_false",
                        help="estimate full gradcheck everywhere instead of running it")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: the sizes here gain nothing from more, and on a shared "
                             "machine spinning worker threads make timings erratic)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = all_specs()
    ops = [op for op in args.ops.split(",") if op]
    sizes = [float(s) for s in args.sizes.split(",") if s]
    print(f"machine: {machine()}")
    print(f"harness oracles: {', '.join(HARNESS_ORACLES)}; gradcheck: defaults (eps 1e-6, atol 1e-5, rtol 1e-3)")
    print("jax check_grads: " + ("a row per case (order 1, reverse mode, default tolerances)" if JAX
                                 else "no row (jax is not importable here)"))
    rows = []
    start = time.perf_counter()
    for op in ops:
        if op not in specs:
            print(f"{op}: skipped, no spec named {op!r} in cnn_gradcheck.registry (known: {', '.join(sorted(specs))})")
            continue
        if op not in FAMILIES:
            print(f"{op}: skipped, no size family in benchmarks.sizes")
            continue
        print(f"{op}:", flush=True)
        rows += bench_op(specs[op], FAMILIES[op], sizes, args.repeats, args.full)
    print()
    print(table(rows))
    print()
    for line in targets(rows):
        print(line)
    print(f"benchmark wall time: {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
