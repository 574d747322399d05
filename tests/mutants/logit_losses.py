"""Wrong log-softmax, NLL, cross-entropy and binary cross-entropy backwards: a sum forgotten, the mean's 1/R
forgotten, the class indices off by one, the gradient taken with respect to the probability instead of the logit."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import logit_losses as ref
from cnn_gradcheck.reference.activations import sigmoid

from . import Mutant

LOG_SOFTMAX, NLL, CE, BCE = (get_spec(name).reference
                             for name in ("log_softmax", "nll_loss", "log_softmax_nll", "bce_with_logits"))


def _log_softmax_without_row_sum(dy, z):
    """dE/dz = dE/dy (1 - softmax): only the k = j term of sum_j dE/dy_j dy_j/dz_k."""
    p = np.exp(ref.log_softmax_forward(z))
    return (dy * (1 - p),)


def _nll_mean_forgotten(dE, y, t, reduction="mean"):
    """dE/dy = -dE at the targets, also for reduction='mean' (the forward divides by N, the backward does not)."""
    return ref.nll_loss_backward(dE, y, t, "sum")


def _target_off_by_one(dE, z, t, reduction="mean"):
    """dE/dz = dE (softmax - onehot(t + 1 mod K)) / R: the class indices read one-based (a 1-based label file)."""
    return ref.log_softmax_nll_backward(dE, z, (t + 1) % z.shape[1], reduction)


def _bce_mean_forgotten(dE, z, t, reduction="mean"):
    """dE/dz = dE (s - t), also for reduction='mean' (1/(N K) forgotten)."""
    return ref.bce_with_logits_backward(dE, z, t, "sum")


def _bce_probability_gradient(dE, z, t, reduction="mean"):
    """dE/ds = (s - t) / (s (1 - s)), the gradient with respect to the probability, returned as the logit's (the
    sigmoid's derivative s (1 - s) not applied)."""
    (dz,) = ref.bce_with_logits_backward(dE, z, t, reduction)
    s = sigmoid(z)
    return (dz / (s * (1 - s)),)


MUTANTS = [
    Mutant("log_softmax", "row sum of dE/dy forgotten (diagonal of the Jacobian only)",
           type(LOG_SOFTMAX)("log_softmax dz = dy (1 - p)", LOG_SOFTMAX.forward, _log_softmax_without_row_sum),
           ("dz",), minimal={"N": 1, "K": 2, "offset": 0.0}),
    Mutant("nll_loss", "1/N of the mean forgotten in the backward",
           type(NLL)("nll backward without 1/N", NLL.forward, _nll_mean_forgotten), ("dy",),
           minimal={"N": 2, "K": 1}, fixed={"reduction": "mean"}),
    Mutant("log_softmax_nll", "class indices read one-based in the backward",
           type(CE)("cross_entropy backward with t + 1", CE.forward, _target_off_by_one), ("dz",),
           minimal={"N": 1, "K": 2}),
    Mutant("bce_with_logits", "1/(N K) of the mean forgotten in the backward",
           type(BCE)("bce backward without 1/R", BCE.forward, _bce_mean_forgotten), ("dz",),
           minimal={"N": 1, "K": 2}, fixed={"reduction": "mean"}),
    Mutant("bce_with_logits", "gradient with respect to the probability, not the logit",
           type(BCE)("bce dE/ds as dE/dz", BCE.forward, _bce_probability_gradient), ("dz",),
           minimal={"N": 1, "K": 1}),
]
