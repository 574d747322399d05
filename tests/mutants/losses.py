"""Wrong loss gradients, each with the smallest configuration showing it."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import losses as ref

from . import Mutant, wrong_backward

MSE, CE, SCE, TOOLBOX = (get_spec(name).reference
                         for name in ("mse", "cross_entropy", "softmax_cross_entropy", "toolbox_mse"))


def _negated(grads, dE, *arrays):
    grads[0] = -grads[0]
    return grads


def _softmax_ce_ignores_target_mass(dE, z, t):
    """dE/dz = softmax(z) - t with the upstream dE dropped (as if E were always the final loss)."""
    return (ref.softmax_forward(z) - t,)


def _softmax_ce_one_hot_only(dE, z, t):
    """dE/dz = softmax(z) - onehot(argmax t): soft targets treated as hard labels."""
    hard = np.eye(z.shape[1])[np.argmax(t, axis=1)]
    return (float(dE) * (ref.softmax_forward(z) - hard),)


def _toolbox_without_batch_division(grads, dE, y, t):
    grads[0] = grads[0] * y.shape[0]
    return grads


MUTANTS = [
    Mutant("mse", "gradient t - y (sign)", wrong_backward(MSE, "mse t - y", _negated), ("dy",),
           minimal={"N": 1, "K": 1, "scale": 1.0}),
    Mutant("cross_entropy", "gradient t / y (sign)", wrong_backward(CE, "cross-entropy +t/y", _negated), ("dy",),
           minimal={"N": 1, "K": 1}),
    Mutant("softmax_cross_entropy", "upstream dE ignored",
           type(SCE)("softmax CE without dE", SCE.forward, _softmax_ce_ignores_target_mass), ("dz",),
           minimal={"N": 1, "K": 2, "offset": 0.0}),  # K = 1: dE/dz = 1 - 1 = 0 anyway
    Mutant("softmax_cross_entropy", "soft targets treated as one-hot",
           type(SCE)("softmax CE hard labels", SCE.forward, _softmax_ce_one_hot_only), ("dz",),
           minimal={"N": 1, "K": 2}),  # soft targets, or one-hot rows scaled (values=unnormalised targets)
    Mutant("toolbox_mse", "gradient not divided by the batch",
           wrong_backward(TOOLBOX, "toolbox mse without / N", _toolbox_without_batch_division), ("dy",),
           minimal={"N": 2, "K": 1, "scale": 1.0}),
]
