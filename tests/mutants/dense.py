"""Wrong dense-layer backwards, each with the smallest configuration showing it."""
from cnn_gradcheck.registry import get_spec

from . import Mutant, wrong_backward

DENSE = get_spec("dense").reference


def _dW_reshaped_from_transpose(grads, dy, x, W, b):
    """(delta^T x) reshaped to W's shape: the right shape, the wrong layout (shows once m, n >= 2)."""
    grads[1] = (dy.T @ x).reshape(W.shape)
    return grads


def _db_from_first_sample(grads, dy, x, W, b):
    grads[2] = dy[0].copy()
    return grads


def _dx_with_W_reshaped(grads, dy, x, W, b):
    """delta times W reshaped to (n, m) instead of W^T: the right shape, the wrong layout."""
    grads[0] = dy @ W.reshape(W.shape[1], W.shape[0])
    return grads


MUTANTS = [
    Mutant("dense", "dW = (delta^T x) reshaped (transposed layout)",
           wrong_backward(DENSE, "dense dW transposed", _dW_reshaped_from_transpose), ("dW",),
           minimal={"N": 1, "m": 2, "n": 2}),
    Mutant("dense", "db from the first sample only",
           wrong_backward(DENSE, "dense db from one sample", _db_from_first_sample), ("db",),
           minimal={"N": 2, "m": 1, "n": 1}),
    Mutant("dense", "dx = delta W reshaped instead of delta W^T",
           wrong_backward(DENSE, "dense dx with W reshaped", _dx_with_W_reshaped), ("dx",),
           minimal={"N": 1, "m": 2, "n": 2}),
]
