"""Heatmaps of a failing gradient: expected, got and their difference, one row per (sample, channel), as a PNG.

matplotlib is optional (imported only here, only when a picture is asked for). Without it ``write_pictures`` raises
PicturesUnavailable, whose message says what to install; nothing else in the harness needs it.

    from cnn_gradcheck.pictures import write_pictures
    paths = write_pictures(result, "reports/pictures")      # result: a CaseResult (or GradientCheckFailure.result)
"""
from __future__ import annotations

import os
import re
import textwrap

import numpy as np

#: at most this many (sample, channel) rows per picture
MAX_ROWS = 8


class PicturesUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PicturesUnavailable(f"pictures need matplotlib, which is not installed ({error}); "
                                  f"install it with `pip install matplotlib`") from None
    return plt


def panels(a: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, 2-D slice) per picture row: (n, c) of an NCHW array, the whole array for a matrix, a row for a
    vector or a scalar."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim >= 3:
        lead = a.reshape((-1,) + a.shape[-2:])
        index = list(np.ndindex(a.shape[:-2]))
        return [(f"[{', '.join(map(str, i))}]", lead[k]) for k, i in enumerate(index)][:MAX_ROWS]
    return [("", np.atleast_2d(a))]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_picture(expected, got, title: str, path: str) -> str:
    """One PNG: columns expected, got, got - expected (a shared colour scale for the first two)."""
    plt = _pyplot()
    rows = list(zip(panels(expected), panels(got)))
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.6 * len(rows) + 0.6), squeeze=False)
    for r, ((label, e), (_, g)) in enumerate(rows):
        bound = max(float(np.max(np.abs(e), initial=0)), float(np.max(np.abs(g), initial=0)), 1e-300)
        diff = g - e
        dbound = max(float(np.max(np.abs(diff), initial=0)), 1e-300)
        for c, (name, data, vmax) in enumerate((("expected", e, bound), ("got", g, bound),
                                                ("got - expected", diff, dbound))):
            ax = axes[r][c]
            image = ax.imshow(data, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{name} {label}".strip(), fontsize=9)
            ax.set_xticks(range(data.shape[1]))
            ax.set_yticks(range(data.shape[0]))
            ax.tick_params(labelsize=7)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("\n".join(textwrap.fill(line, 110) for line in title.split("\n")), fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_pictures(result, directory: str) -> list[str]:
    """A PNG per failing quantity of a CaseResult that kept its arrays (the PyTorch oracle's first), named
    <op>_<quantity>_<implementation>.png in ``directory``. Returns the paths written."""
    from .diagnosis import diagnose_result

    diagnoses = {d.quantity: d.describe() for d in diagnose_result(result)}
    written, seen = [], set()
    for c in sorted(result.failures, key=lambda c: c.oracle != "pytorch"):
        if not c.arrays or c.quantity in seen:
            continue
        seen.add(c.quantity)
        title = f"{result.case.describe()}\n{c.quantity} vs {c.oracle}"
        if c.quantity in diagnoses:
            title += f"\n{diagnoses[c.quantity].split(' -- ')[0]}"
        path = os.path.join(directory, f"{_safe(result.spec.name)}_{_safe(c.quantity)}_{_safe(result.impl.name)}.png")
        written.append(write_picture(c.arrays["expected"], c.arrays["got"], title, path))
    return written
