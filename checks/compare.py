"""Comparison records: what an oracle found for one quantity of one case, and the element-wise comparison of arrays."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import tolerance

PASS, FAIL, KINK = "pass", "fail", "kink"
#: the oracle cannot judge at this precision (tolerance policy 7); the note says why; neither a pass nor a failure
NA = "n/a"


@dataclass
class Comparison:
    """One oracle's verdict on one quantity ("forward", "dx", ...) of one case.

    error: max |got - expected| (absolute); relative: error / scale (the scale named by the policy);
    worst_index: where the element-wise error is largest (None for scalar comparisons such as a directional
    derivative); expected/got: the two values there. ``arrays`` keeps the full expected/got arrays for diagnosis.
    resolution: tolerance / scale, the smallest relative discrepancy this comparison could see (None where not
    recorded); ``could_resolve`` asks it about a discrepancy another oracle found (tolerance policy 7).
    """

    oracle: str
    quantity: str
    verdict: str
    error: float
    relative: float
    tolerance: float
    worst_index: tuple | None = None
    expected: float | None = None
    got: float | None = None
    note: str = ""
    arrays: dict[str, Any] = field(default_factory=dict, repr=False)
    resolution: float | None = None

    def could_resolve(self, discrepancy: float) -> bool:
        """Whether this comparison could have seen a relative ``discrepancy`` (found by another oracle): False means
        its agreement says nothing about it ("cannot resolve this at float32, tolerance ..."), never that it agreed.
        A comparison without a recorded resolution is not second-guessed (True)."""
        return self.resolution is None or tolerance.resolves(self.resolution, discrepancy)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def ratio(self) -> float:
        """error / tolerance: below 1 passes."""
        return self.error / self.tolerance if self.tolerance > 0 else (0.0 if self.error == 0 else np.inf)


def compare_arrays(oracle: str, quantity: str, expected, got, reduction_length: int, dtype="float64",
                   magnitude=None, estimate: tolerance.Estimate | None = None) -> Comparison:
    """Element-wise comparison of two exact computations under the rounding policy (tolerance policy 1: the terms'
    ``magnitude`` and the oracle's rounding ``estimate``, both from the oracle's side)."""
    expected = np.asarray(expected, dtype=np.float64)
    got_arr = np.asarray(got, dtype=np.float64)
    if expected.shape != got_arr.shape:
        return Comparison(oracle, quantity, FAIL, np.inf, np.inf, 0.0,
                          note=f"shape {got_arr.shape} where {expected.shape} was expected")
    tol = tolerance.rounding_tolerance(expected, reduction_length, dtype, magnitude, estimate)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), tolerance.TINY)
    resolution = tolerance.resolution(tol, scale)
    if expected.size == 0:
        return Comparison(oracle, quantity, PASS, 0.0, 0.0, tol, resolution=resolution)
    relative_bound = tolerance.rounding_relative(reduction_length, dtype)
    if relative_bound > tolerance.MAX_RELATIVE_TOLERANCE:  # policy 7: an exact oracle that cannot decide fails
        return Comparison(oracle, quantity, FAIL, np.inf, np.inf, tol,
                          note=f"no verdict possible at {dtype}: sums of {reduction_length} terms may carry rounding "
                               f"up to {relative_bound:.0%} of the values' scale (policy 7); check smaller "
                               f"configurations (shorter sums) or compute in a finer precision",
                          arrays={"expected": expected, "got": got_arr}, resolution=resolution)
    diff = np.abs(got_arr - expected)
    if not np.all(np.isfinite(got_arr)):
        diff = np.where(np.isfinite(got_arr), diff, np.inf)
    flat = int(np.argmax(diff))
    worst = np.unravel_index(flat, expected.shape) if expected.ndim else ()
    err = float(diff.reshape(-1)[flat])
    verdict = PASS if err <= tol else FAIL
    return Comparison(oracle, quantity, verdict, err, err / scale, tol, tuple(int(i) for i in worst),
                      float(expected.reshape(-1)[flat]), float(got_arr.reshape(-1)[flat]),
                      arrays={"expected": expected, "got": got_arr}, resolution=resolution)
