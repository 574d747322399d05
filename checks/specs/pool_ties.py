"""Ties in max-pooling windows, on purpose, and the subgradients a max-pool backward may return there.

At a tie the max is not differentiable; a backward may route each window's upstream value to any one of the cells
attaining the window's maximum (torch, the loop reference: the first; others: the last), but to exactly one: the
sum over the tied cells is the upstream value and every other cell of the window gets nothing from it. Finite
differences cannot judge there; ``cnn_gradcheck.subgradient`` compares the returned gradient with the admissible one
found here. (No SPECS here: a helper of ``cnn_gradcheck.specs.pooling``; dilation is read when the config has it.)
"""
from __future__ import annotations

import numpy as np

#: search budget for the routing of tied windows (nodes of the depth-first search); beyond it the routing that
#: follows the returned gradient greedily is taken, and the comparison says whether it fits
SEARCH_BUDGET = 200_000
#: two routings differ by sums of upstream values, O(|dy|) for generic dy; a match within this share of max |dy|
#: identifies the routing the backward chose (at any precision down to float16); the verdict itself is policy 1
ROUTING_MATCH = 1e-3


def window_cells(c, H: int, W: int):
    """[((i, j), [(u, v), ...])]: each window's real cells (x coordinates; padding cells left out), row by row."""
    kh, kw, sh, sw, ph, pw = c["kh"], c["kw"], c["sh"], c["sw"], c["ph"], c["pw"]
    dh, dw = c.get("dilh", 1), c.get("dilw", 1)
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = []
    for i in range(Ho):
        for j in range(Wo):
            cells = [(i * sh + s * dh - ph, j * sw + t * dw - pw) for s in range(kh) for t in range(kw)]
            out.append(((i, j), [(u, v) for u, v in cells if 0 <= u < H and 0 <= v < W]))
    return out


def tied_maxima(c, arrays, rng):
    """x with ties at the maximum of some windows: in about half of the windows with two real cells or more (at
    least one), one to all of the other cells take the window's maximum value."""
    x = np.array(arrays["x"], dtype=np.float64)
    N, C, H, W = x.shape
    windows = [(n, ch, cells) for n in range(N) for ch in range(C)
               for _, cells in window_cells(c, H, W) if len(cells) >= 2]
    if not windows:  # 1 x 1 windows (or one real cell each): no tie is possible
        return {**arrays, "x": x}
    chosen = rng.random(len(windows)) < 0.5
    chosen[rng.integers(len(windows))] = True
    for (n, ch, cells), tie in zip(windows, chosen):
        if not tie:
            continue
        values = [x[n, ch, u, v] for u, v in cells]
        top = int(np.argmax(values))
        others = [cell for k, cell in enumerate(cells) if k != top]
        count = int(rng.integers(1, len(others) + 1))
        for k in rng.choice(len(others), size=count, replace=False):
            x[(n, ch, *others[k])] = values[top]
    return {**arrays, "x": x}


def _route_map(x, dy, g, c):
    """The admissible dx of one (n, c) map nearest to g: windows with one maximal cell route dy there; the tied
    windows' routing is searched depth-first, cell sums checked as soon as no later tied window touches the cell."""
    H, W = x.shape
    base = np.zeros_like(x)
    tied = []
    for (i, j), cells in window_cells(c, H, W):
        if not cells:
            continue
        top = max(x[cell] for cell in cells)
        winners = [cell for cell in cells if x[cell] == top]
        if len(winners) == 1:
            base[winners[0]] += dy[i, j]
        else:
            tied.append((dy[i, j], winners))
    if not tied:
        return base
    residual = g - base
    closing = [[] for _ in tied]
    last = {cell: k for k, (_, winners) in enumerate(tied) for cell in winners}
    for cell, k in last.items():
        closing[k].append(cell)
    match = ROUTING_MATCH * max(float(np.max(np.abs(dy), initial=0.0)), np.finfo(float).tiny)
    assigned: dict = {}
    choice: list = [None] * len(tied)
    budget = [SEARCH_BUDGET]

    def search(k: int) -> bool:
        if k == len(tied):
            return True
        value, winners = tied[k]
        for cell in winners:
            budget[0] -= 1
            if budget[0] < 0:
                return False
            assigned[cell] = assigned.get(cell, 0.0) + value
            if all(abs(residual[cc] - assigned.get(cc, 0.0)) <= match for cc in closing[k]) and search(k + 1):
                choice[k] = cell
                return True
            assigned[cell] -= value
        return False

    if not search(0):  # no routing fits: follow the returned gradient greedily; the comparison shows the misfit
        choice = [max(winners, key=lambda cell: residual[cell]) for _, winners in tied]
    out = base.copy()
    for (value, _), cell in zip(tied, choice):
        out[cell] += value
    return out


def maxpool_subgradient(c, arrays, dy, grads):
    """{"x": the admissible dx nearest to grads["x"]}: each window's dy on exactly one of its maximal cells."""
    x, g = np.asarray(arrays["x"], dtype=np.float64), np.asarray(grads["x"], dtype=np.float64)
    dx = np.zeros_like(x)
    for n, ch in np.ndindex(x.shape[:2]):
        dx[n, ch] = _route_map(x[n, ch], np.asarray(dy)[n, ch], g[n, ch], c)
    return {"x": dx}
