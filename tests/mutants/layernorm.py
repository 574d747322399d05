"""Wrong layer-normalisation backwards: batch norm's formula reused, gamma outside the row sums, the statistics'
dependence on x forgotten."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import layernorm as ref

from . import Mutant, wrong_backward

LN, LN2D = get_spec("layernorm").reference, get_spec("layernorm2d").reference


def _rows(x, normalized_shape, eps):
    D = int(np.prod(normalized_shape))
    x2 = np.reshape(x, (-1, D))
    mu, sigma = ref.row_statistics(x2, eps)
    return x2, (x2 - mu[:, None]) / sigma[:, None], sigma[:, None], D


def _gamma_factored_out(dy, x, gamma, beta, normalized_shape, eps=1e-5):
    """dx = gamma / (D sigma) (D delta - sum delta - xhat sum delta xhat): batch norm's form, where gamma is one
    number per sum; in layer norm gamma varies along d and belongs inside the sums."""
    x2, xhat, sigma, D = _rows(x, normalized_shape, eps)
    d2, g = np.reshape(dy, x2.shape), np.reshape(gamma, (1, D))
    dx = g / (D * sigma) * (D * d2 - d2.sum(axis=1, keepdims=True) - xhat * (d2 * xhat).sum(axis=1, keepdims=True))
    _, dgamma, dbeta = ref.layernorm_backward(dy, x, gamma, beta, normalized_shape, eps)
    return dx.reshape(np.shape(x)), dgamma, dbeta


def _statistics_as_constants(grads, dy, x, gamma, beta, normalized_shape, eps=1e-5):
    """dx = gamma delta / sigma_r: the row's mean and variance treated as constants."""
    x2, _, sigma, D = _rows(x, normalized_shape, eps)
    grads[0] = (np.reshape(gamma, (1, D)) * np.reshape(dy, x2.shape) / sigma).reshape(np.shape(x))
    return grads


def _dgamma_summed_over_d(grads, dy, x, gamma, beta, normalized_shape, eps=1e-5):
    """dgamma summed over the rows AND the normalised positions, then spread evenly: one number for all d."""
    x2, xhat, _, D = _rows(x, normalized_shape, eps)
    d2 = np.reshape(dy, x2.shape)
    grads[1] = np.full(tuple(normalized_shape), (d2 * xhat).sum() / D)
    return grads


MINIMAL = {"N": 1, "K": 2}
MUTANTS = [
    Mutant("layernorm", "gamma factored out of the row sums (batch norm's form)",
           type(LN)("layernorm gamma outside the sums", LN.forward, _gamma_factored_out), ("dx",), minimal=MINIMAL),
    Mutant("layernorm", "row statistics treated as constants in dx",
           wrong_backward(LN, "layernorm dx = gamma delta / sigma", _statistics_as_constants), ("dx",),
           minimal={"N": 1, "K": 1}),  # visible with one value per row: gamma delta / sigma instead of 0
    Mutant("layernorm", "dgamma summed over rows and positions, spread evenly (not per position)",
           wrong_backward(LN, "layernorm dgamma summed over d", _dgamma_summed_over_d), ("dgamma",),
           minimal=MINIMAL),
    Mutant("layernorm2d", "gamma factored out of the row sums, over (C, H, W)",
           type(LN2D)("layernorm2d gamma outside the sums", LN2D.forward, _gamma_factored_out), ("dx",),
           minimal={"N": 1, "dims": 3}, fixed={"dims": 3}),
]
