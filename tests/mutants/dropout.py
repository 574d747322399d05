"""Wrong dropout backwards: the scale or the mask forgotten, the wrong scale."""
from cnn_gradcheck.registry import get_spec

from . import Mutant

DROPOUT = get_spec("dropout").reference


def _scale_forgotten(dy, x, mask, p=0.5):
    """dE/dx = dE/dy m: the forward scales by 1 / (1 - p), the backward does not."""
    return (dy * mask,)


def _mask_forgotten(dy, x, mask, p=0.5):
    """dE/dx = dE/dy / (1 - p): dropped values get a gradient."""
    return (dy / (1 - p),)


def _scale_by_p(dy, x, mask, p=0.5):
    """dE/dx = dE/dy m / p: 1 - p (the keep probability) confused with p."""
    return (dy * mask / p if p else dy * mask,)


MUTANTS = [
    Mutant("dropout", "1 / (1 - p) scale forgotten in the backward",
           type(DROPOUT)("dropout dx = dy m", DROPOUT.forward, _scale_forgotten), ("dx",), minimal={"N": 1, "K": 1}),
    Mutant("dropout", "mask forgotten in the backward",
           type(DROPOUT)("dropout dx = dy / (1 - p)", DROPOUT.forward, _mask_forgotten), ("dx",),
           minimal={"N": 1, "K": 1}),
    Mutant("dropout", "scaled by 1 / p instead of 1 / (1 - p)",
           type(DROPOUT)("dropout dx = dy m / p", DROPOUT.forward, _scale_by_p), ("dx",),
           minimal={"N": 1, "K": 1}, fixed={"p": 0.8}),
]
