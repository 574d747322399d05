"""Wrong batch-normalisation backwards: the statistics' dependence on x forgotten, the wrong variance."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import batchnorm as ref

from . import Mutant, scaled, wrong_backward

BN = get_spec("batchnorm2d").reference
AXES = (0, 2, 3)


def _per_channel(v):
    return np.reshape(v, (1, -1, 1, 1))


def _statistics_as_constants(grads, dy, x, gamma, beta, eps=1e-5):
    """dE/dx = gamma delta / sigma: mu and var treated as constants (the evaluation-mode gradient)."""
    _, sigma = ref.batch_statistics(x, eps)
    grads[0] = _per_channel(gamma / sigma) * dy
    return grads


def _variance_term_forgotten(grads, dy, x, gamma, beta, eps=1e-5):
    """dE/dx = gamma / sigma (delta - mean delta): the mean's path kept, the variance's dropped."""
    _, sigma = ref.batch_statistics(x, eps)
    grads[0] = _per_channel(gamma / sigma) * (dy - dy.mean(axis=AXES, keepdims=True))
    return grads


def _unbiased_variance(dy, x, gamma, beta, eps=1e-5):
    """The backward normalises with the unbiased variance (1/(M - 1)), the forward with the biased one (1/M)."""
    M = x.shape[0] * x.shape[2] * x.shape[3]
    mu = x.mean(axis=AXES, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).sum(axis=AXES, keepdims=True) / (M - 1) + eps)
    xhat = (x - mu) / sigma
    dbeta, dgamma = dy.sum(axis=AXES), (dy * xhat).sum(axis=AXES)
    dx = _per_channel(gamma) / (M * sigma) * (M * dy - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    return dx, dgamma, dbeta


def _dgamma_from_x(grads, dy, x, gamma, beta, eps=1e-5):
    """dE/dgamma = sum delta x: the input where the normalised input belongs."""
    grads[1] = (dy * x).sum(axis=AXES)
    return grads


MUTANTS = [
    Mutant("batchnorm2d", "batch statistics treated as constants in dx",
           wrong_backward(BN, "batchnorm dx = gamma delta / sigma", _statistics_as_constants), ("dx",),
           minimal={"N": 1, "C": 1, "H": 1, "W": 2}),
    Mutant("batchnorm2d", "variance's dependence on x forgotten in dx",
           wrong_backward(BN, "batchnorm dx without the variance term", _variance_term_forgotten), ("dx",),
           minimal={"N": 1, "C": 1, "H": 1, "W": 2}),
    Mutant("batchnorm2d", "unbiased variance in the backward",
           type(BN)("batchnorm backward with 1/(M-1)", BN.forward, _unbiased_variance), ("dx", "dgamma"),
           minimal={"N": 1, "C": 1, "H": 1, "W": 2}),
    Mutant("batchnorm2d", "dgamma from x instead of xhat",
           wrong_backward(BN, "batchnorm dgamma = sum delta x", _dgamma_from_x), ("dgamma",),
           minimal={"N": 1, "C": 1, "H": 1, "W": 2}),
    *[Mutant("batchnorm2d", f"d{arg} scaled by 1 + 1e-6 (caught by {oracle})",
             wrong_backward(BN, f"d{arg} * (1 + 1e-6)", scaled(1 + 1e-6, i)), (f"d{arg}",),
             minimal={"N": 1, "C": 1}, oracles=(oracle,))
      for i, arg in enumerate(("x", "gamma", "beta")) for oracle in ("pytorch", "finite differences")],
    Mutant("batchnorm2d", "dgamma off by relative 1e-10 (caught by adjoint: y is linear in gamma)",
           wrong_backward(BN, "dgamma * (1 + 1e-10)", scaled(1 + 1e-10, 1)), ("dgamma",),
           minimal={"N": 1, "C": 1}, oracles=("adjoint",)),
]
