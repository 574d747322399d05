"""The ``Evaluation`` record: what one guarded run of an implementation on one case gave (stage 3, built by
``cnn_gradcheck.calls.evaluate``, read by every oracle of stage 4). It lives apart from both so that neither imports
the other for it: calls -> evaluation <- oracles, no cycle."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np


@dataclass
class Evaluation:
    """The implementation's outputs for one case, computed once.

    y, grads:  the forward output and one gradient per differentiable argument (float64 copies);
    forward:   arrays -> y at other inputs, with the same guards (finite differences, the adjoint test);
    dtype:     the coarsest precision among the implementation's results: the tolerances' eps
               (``cnn_gradcheck.tolerance``, policy 6);
    repeat_difference: the largest |difference| between two identical calls (plug-ins are called twice), 0.0 when
               they agreed bit for bit or were called once; a summary can say "repeated calls differ by up to X,
               within rounding" (tolerance policy 8).
    stencils:  the forward along joint directions (``finite_diff.Stencil``), filled by the oracles that share them.
    """

    y: np.ndarray
    grads: dict[str, np.ndarray]
    forward: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    dtype: str = "float64"
    repeat_difference: float = 0.0
    stencils: dict = field(default_factory=dict)
