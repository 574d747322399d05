"""What the harness's pytest plug-in costs a project that installs it but runs only unrelated tests.

    python -m benchmarks.plugin_startup [--runs 7]

Times ``pytest -q`` on one trivial test, in a fresh temporary folder, with the plug-in loaded (as pytest's entry point
loads it in every run) and with it blocked (``-p no:cnn_gradcheck``); prints the medians and which heavy modules the
run imported (none should: the plug-in imports numpy, torch and the harness only when --plugin is given).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST = textwrap.dedent("""
    import sys

    def test_unrelated():
        heavy = sorted(m for m in ("numpy", "torch", "hypothesis", "cnn_gradcheck.plugins") if m in sys.modules)
        print("HEAVY", heavy)
        # what the plug-in may load in a run that never asks for a check: its own module and the package's lazy root
        loaded = sorted(m for m in sys.modules if m.startswith("cnn_gradcheck"))
        assert loaded in ([], ["cnn_gradcheck", "cnn_gradcheck.pytest_plugin"]), loaded
""")


def run(folder: Path, *extra: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *extra],
                         cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    heavy = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY"))
    return seconds, heavy


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_unrelated.py").write_text(TEST)
        run(folder)  # warm the file system caches
        rows = {}
        for label, extra in (("plug-in loaded", ()), ("plug-in blocked", ("-p", "no:cnn_gradcheck"))):
            times, heavy = zip(*(run(folder, *extra) for _ in range(args.runs)))
            rows[label] = (statistics.median(times), heavy[0])
    for label, (median, heavy) in rows.items():
        print(f"{label:16s} median {median:.3f} s over {args.runs} runs; heavy modules imported: {heavy[6:]}")
    loaded, blocked = rows["plug-in loaded"][0], rows["plug-in blocked"][0]
    print(f"cost of the plug-in: {loaded - blocked:+.3f} s per pytest run (wall clock: noisy on a busy machine)")
    own = statistics.median(import_cost() for _ in range(args.runs))
    print(f"importing cnn_gradcheck.pytest_plugin (with the package's lazy __init__): median {own * 1e3:.1f} ms")


def import_cost() -> float:
    """Seconds to import the plug-in module in a fresh interpreter where pytest is already imported (what pytest
    pays at start-up), from ``python -X importtime``: the package's and the module's own cumulative times."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest; import cnn_gradcheck.pytest_plugin"],
                         capture_output=True, text=True).stderr
    cumulative = [int(line.split("|")[1]) for line in out.splitlines()
                  if line.rstrip().endswith(("| cnn_gradcheck.pytest_plugin",))]
    return cumulative[-1] / 1e6


if __name__ == "__main__":
    main()
