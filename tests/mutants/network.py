"""Wrong whole-network backwards: cnnbp with one of its rules changed, and the ReLU network with the wrong pooling
rule. Each must be rejected as a whole network (the loss's gradients), not only as a layer."""
from dataclasses import replace
from functools import partial

import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Implementation
from cnn_gradcheck.reference import activations, dense, losses, pooling
from cnn_gradcheck.reference import network as ref
from cnn_gradcheck.reference.conv2d import correlate2d_backward

from . import Mutant, wrong_backward

TOOLBOX = get_spec("toolbox_cnn").reference
RELU = get_spec("relu_cnn").reference


def _cnnbp_with(name, **rules):
    """cnnbp with some of its rules replaced (reference.network.CnnbpRules)."""
    return Implementation(name, TOOLBOX.forward, partial(ref.toolbox_cnn_backward, rules=replace(ref.CNNBP, **rules)))


def _not_divided_by_batch(grads, dy, x, *arrays, **hyper):
    grads[1] = grads[1] * x.shape[0]
    return grads


def _mean_rule_through_max_pool(dE, x, y, k, b, W, bo, pool=2):
    """The max-pooling layer's delta spread evenly over its window (the mean-pooling rule) instead of to the max."""
    z, a, p, fv, logits = ref.relu_cnn_layers(x, k, b, W, bo, pool)
    (dlogits,) = losses.softmax_cross_entropy_backward(np.asarray(dE, dtype=np.float64), logits, y)
    dfv, dW, dbo = dense.dense_backward(dlogits, fv, W, bo)
    (da,) = pooling.meanpool2d_backward(dfv.reshape(p.shape), a, pool, pool)
    (dz,) = activations.relu_backward(da, z)
    dx, dk, db = correlate2d_backward(dz, x, k, b)
    return dx, dk, db, dW, dbo


PYTORCH = ("pytorch",)
MUTANTS = [
    Mutant("toolbox_cnn", "cnnbp: kernel not rotated when the delta goes down through a conv layer",
           _cnnbp_with("no rot180 in the 'full' convolution", rotate=lambda k: k.copy()), ("dx",),
           minimal={"N": 1, "C0": 1, "C1": 1, "C2": 1, "k2": 2, "classes": 1}, oracles=PYTORCH),
    Mutant("toolbox_cnn", "cnnbp: upsampled delta not divided by scale^2",
           _cnnbp_with("expand without / scale^2", upsample=ref.expand), ("dk1", "db1"),
           minimal={"N": 1, "C0": 1, "C1": 1, "C2": 1, "s2": 2, "classes": 1}, oracles=PYTORCH),
    Mutant("toolbox_cnn", "cnnbp: kernel gradient without flipall",
           _cnnbp_with("convn(a, d, 'valid')", kernel_gradient=ref.convn_3d_valid), ("dk1",),
           minimal={"N": 1, "C0": 1, "C1": 1, "C2": 1, "classes": 1}, oracles=PYTORCH),
    Mutant("toolbox_cnn", "cnnbp: dk not divided by the batch size",
           wrong_backward(TOOLBOX, "dk1 * batch", _not_divided_by_batch), ("dk1",),
           minimal={"N": 2, "C0": 1, "C1": 1, "C2": 1, "classes": 1}, oracles=PYTORCH),
    Mutant("relu_cnn", "max-pool delta spread over the window (mean rule)",
           Implementation("mean rule through max pool", RELU.forward, _mean_rule_through_max_pool), ("dx",),
           minimal={"N": 1, "C0": 1, "C1": 1, "pool": 2, "classes": 2}),
]
