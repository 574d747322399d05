"""Cost of a failure report (with its diagnosis) relative to the check that found the failure.

    python -m benchmarks.report_cost [--ops conv2d,dense] [--sizes 1e2,1e4,1e5] [--repeats 3]

The implementation is the op computed by torch in float64 (``benchmarks.torch_backed``) with its backward scaled by
1 + 1e-6: a failure that every diagnosis entry is tried on (nothing stops the catalogue early). The check is
``check_case`` with the oracles that do not run the loop references (pytorch, finite differences, adjoint); the
report is ``failure_report`` of its result (worst elements, every candidate of the diagnosis catalogue). Printed:
median wall seconds of each and their ratio; the goal is a report under about twice its check and under one
second at 1e5 input elements.
"""
from __future__ import annotations

import argparse
import statistics
import time

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.report import failure_report
from cnn_gradcheck.runner import check_case

from .sizes import FAMILIES, config_near, input_elements
from .torch_backed import torch_backed

ORACLES = ("pytorch", "finite differences", "adjoint")


def measure(op: str, target: int, repeats: int) -> tuple[int, float, float]:
    """(input elements, median check seconds, median report seconds) at the configuration nearest ``target``."""
    spec = get_spec(op)
    config = config_near(spec, FAMILIES[op], target)
    impl, _ = torch_backed(spec, error=1e-6)
    checks, reports = [], []
    failure_report(check_case(spec, impl, spec.make_case(config, 99), ORACLES))  # warm-up (imports, caches)
    for seed in range(repeats):
        case = spec.make_case(config, seed)
        start = time.perf_counter()
        result = check_case(spec, impl, case, ORACLES)
        checks.append(time.perf_counter() - start)
        assert result.failures, f"{op}: the planted error was not caught"
        start = time.perf_counter()
        failure_report(result)
        reports.append(time.perf_counter() - start)
    return input_elements(spec, config), statistics.median(checks), statistics.median(reports)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="conv2d,maxpool2d,dense")
    parser.add_argument("--sizes", default="1e2,1e4,1e5")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'op':<12} {'elements':>9} {'check s':>9} {'report s':>9} {'report/check':>13}")
    for op in args.ops.split(","):
        for size in args.sizes.split(","):
            n, check_s, report_s = measure(op, int(float(size)), args.repeats)
            print(f"{op:<12} {n:>9} {check_s:>9.3f} {report_s:>9.3f} {report_s / check_s:>13.2f}")


if __name__ == "__main__":
    main()
