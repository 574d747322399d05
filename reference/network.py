"""Two whole networks, forward and backward, loop-based: DeepLearnToolbox's CNN with its ``cnnbp`` backward, and a
ReLU / max-pooling variant in the Japanese and Russian articles' order (conv -> activation -> pool).

Layouts: images NCHW, kernels (C_out, C_in, kh, kw) (the toolbox's k{i}{j}, input map i -> output map j, is
k[j, i] here), the fully connected layer as reference.dense has it: W (fvnum, onum) is the toolbox's ffW'.

1. The toolbox network (seed 003, "Deep learn toolbox: CNN BP"; the toolbox's cnnff/cnnbp):

       a^0 = x
       'c' layer:  a^l_j = sigm( sum_i convn(a^(l-1)_i, k^l_ij, 'valid') + b^l_j )     (true convolution, MATLAB convn)
       's' layer:  a^l_j = mean of each scale x scale block of a^(l-1)_j            (no weights, no activation)
       fv = a^n reshaped to one vector per sample;  o = sigm(ffW fv + ffb)
       L  = 1/2 sum e^2 / batch,   e = o - y

   ``toolbox_backward`` is ``cnnbp`` line by line: output delta od = e .* o(1 - o); feature-vector delta
   fvd = ffW' od (.* fv(1 - fv) when the last layer is 'c'); below an 's' layer a 'c' layer's delta is
   a(1 - a) .* expand(d, [scale scale]) / scale^2; below a 'c' layer an 's' (or input) layer's delta is
   sum_j convn(d_j, rot180(k_ij), 'full'); kernel gradients dk_ij = convn(flipall(a_i), d_j, 'valid') / batch,
   db_j = sum(d_j) / batch; dffW = od fv' / batch, dffb = mean(od). cnnbp stops before the input; the input's
   gradient here is the 's'-layer rule applied once more (what cnnnumgradcheck would need to check it), / batch.

2. The ReLU variant: z = correlate(x, k) + b (torch's conv), a = relu(z), p = maxpool(a), fv = p reshaped,
   logits = fv W + bo, E = softmax cross-entropy. Its backward chains the layer references' backwards
   (reference.conv2d, activations, pooling, dense, losses): the composition is what is being validated.

Forward passes reuse the layer references; only what cnnbp formulates differently (expand, 'full'/'valid' convn,
flipall) is written here, on top of reference.conv2d's true convolution and rot180.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import activations, dense, losses, pooling
from .conv2d import convolve2d_forward, correlate2d_backward, correlate2d_forward, rot180


# ----------------------------------------------------------------------------------------------------------------
# MATLAB primitives cnnbp is written in
# ----------------------------------------------------------------------------------------------------------------

def convn(a: np.ndarray, k: np.ndarray, shape: str) -> np.ndarray:
    """MATLAB convn(a, k, shape) for 2-D arrays: true convolution, C(p, q) = sum_s sum_t a(p - s, q - t) k(s, t).
    'valid' keeps the positions where k lies inside a; 'full' every position where they overlap (a zero-padded by
    k's size - 1). Written as reference.conv2d's true convolution of one map with one kernel."""
    kh, kw = k.shape
    padding = {"valid": (0, 0), "full": (kh - 1, kw - 1)}[shape]
    return convolve2d_forward(a[None, None], k[None, None], np.zeros(1), padding=padding)[0, 0]


def convn_3d_valid(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """MATLAB convn(A, D, 'valid') for A (H, W, batch) and D (h, w, batch): along the batch axis both have the same
    length, so the 'valid' result has length 1 there and sums the batch: sum_q convn(A(:, :, N-1-q), D(:, :, q))."""
    n = a.shape[2]
    return sum(convn(a[:, :, n - 1 - q], d[:, :, q], "valid") for q in range(n))


def flipall(a: np.ndarray) -> np.ndarray:
    """flipall(A): A reversed along every axis, A(H-1-i, W-1-j, N-1-q)."""
    out = np.zeros_like(a)
    for index in np.ndindex(a.shape):
        out[index] = a[tuple(size - 1 - i for size, i in zip(a.shape, index))]
    return out


def expand(d: np.ndarray, scale: int) -> np.ndarray:
    """expand(d, [scale scale 1]): every element of the map copied into a scale x scale block."""
    h, w = d.shape
    out = np.zeros((h * scale, w * scale))
    for i in range(h * scale):
        for j in range(w * scale):
            out[i, j] = d[i // scale, j // scale]
    return out


def sigm_derivative(a: np.ndarray) -> np.ndarray:
    """sigm'(z) written through the activation a = sigm(z), as the toolbox does: a .* (1 - a)."""
    return a * (1 - a)


# ----------------------------------------------------------------------------------------------------------------
# 1. DeepLearnToolbox's network (cnnff / cnnbp)
# ----------------------------------------------------------------------------------------------------------------

def _mean_pool(a, scale):
    return pooling.meanpool2d_forward(a, scale, scale)


def toolbox_feedforward(x, kernels, biases, scales, W, bo):
    """cnnff: the activations of every layer [x, conv 1, subsampling 1, conv 2, ...], fv and the output o."""
    layers = [x]
    for k, b, scale in zip(kernels, biases, scales):
        layers.append(activations.sigmoid_forward(convolve2d_forward(layers[-1], k, b)))   # 'c'
        layers.append(_mean_pool(layers[-1], scale))                                        # 's'
    fv = layers[-1].reshape(x.shape[0], -1)
    o = activations.sigmoid_forward(dense.dense_forward(fv, W, bo))
    return layers, fv, o


def check_toolbox_sizes(x, kernels, scales):
    """The toolbox asserts that every subsampling scale divides its map ('Layer l size must be integer')."""
    h, w = x.shape[2:]
    for l, (k, scale) in enumerate(zip(kernels, scales), start=1):
        h, w = h - k.shape[2] + 1, w - k.shape[3] + 1
        if h < 1 or w < 1 or h % scale or w % scale:
            raise ValueError(f"toolbox network: conv layer {l} gives {h}x{w} maps, which subsampling scale {scale} "
                             "does not divide (the toolbox requires integer map sizes)")
        h, w = h // scale, w // scale


@dataclass(frozen=True)
class CnnbpRules:
    """The rules of cnnbp that differ between derivations; the defaults are the toolbox's. A test may swap one to
    see that the checks notice (a derivation = cnnbp's skeleton + these rules)."""

    #: delta of a 'c' layer from the delta of the 's' layer above it: a(1-a) .* expand(d, scale) / scale^2
    upsample: Callable[[np.ndarray, int], np.ndarray] = lambda d, scale: expand(d, scale) / scale**2
    #: one term of the delta below a 'c' layer: convn(d_j, rot180(k_ij), 'full'); k_rot is rot180 of all kernels
    delta_through_conv: Callable[[np.ndarray, np.ndarray], np.ndarray] = lambda d, k_rot: convn(d, k_rot, "full")
    #: the kernel each delta term uses (rot180 for the toolbox)
    rotate: Callable[[np.ndarray], np.ndarray] = rot180
    #: dk_ij over the batch: convn(flipall(a_i), d_j, 'valid') with a_i, d_j stacked as (H, W, batch)
    kernel_gradient: Callable[[np.ndarray, np.ndarray], np.ndarray] = \
        lambda a, d: convn_3d_valid(flipall(a), d)


CNNBP = CnnbpRules()


def _stack(maps):
    """NCHW maps of one channel, (N, H, W) -> MATLAB's (H, W, batch) layout."""
    return np.moveaxis(maps, 0, -1)


def _delta_below_conv(d, k, rules):
    """z_i = sum_j convn(d_j, rot180(k_ij), 'full') for every sample and input map i."""
    k_rot = rules.rotate(k)
    n, c_out = d.shape[:2]
    c_in = k.shape[1]
    h, w = d.shape[2] + k.shape[2] - 1, d.shape[3] + k.shape[3] - 1
    z = np.zeros((n, c_in, h, w))
    for q in range(n):
        for i in range(c_in):
            for j in range(c_out):
                z[q, i] += rules.delta_through_conv(d[q, j], k_rot[j, i])
    return z


def cnnbp(layers, fv, o, y, kernels, scales, W, rules: CnnbpRules = CNNBP):
    """cnnbp: gradients of L = 1/2 sum e^2 / batch for every kernel and bias, ffW, ffb, and the input.

    Returns (dx, [dk per conv layer], [db per conv layer], dW, dbo)."""
    batch = o.shape[0]
    e = o - y
    od = e * sigm_derivative(o)                                       # output delta
    fvd = od @ W.T                                                    # feature vector delta, ffW' od
    n_layers = len(layers) - 1                                        # layers[0] is the input
    # (cnnbp multiplies fvd by fv(1 - fv) when the top layer is 'c'; here every 'c' has its 's' above it)
    deltas = [None] * len(layers)
    deltas[-1] = fvd.reshape(layers[-1].shape)                        # reshape into output-map style
    for l in range(n_layers - 1, -1, -1):
        if l % 2 == 1:                                                # 'c' layer below an 's' layer
            a, above, scale = layers[l], deltas[l + 1], scales[l // 2]
            d = np.zeros_like(a)
            for q in range(batch):
                for j in range(a.shape[1]):
                    d[q, j] = sigm_derivative(a[q, j]) * rules.upsample(above[q, j], scale)
            deltas[l] = d
        else:                                                         # 's' (or input) layer below a 'c' layer
            deltas[l] = _delta_below_conv(deltas[l + 1], kernels[l // 2], rules)

    dks, dbs = [], []
    for c, k in enumerate(kernels):
        below, d = layers[2 * c], deltas[2 * c + 1]
        dk = np.zeros_like(k)
        db = np.zeros(k.shape[0])
        for j in range(k.shape[0]):
            for i in range(k.shape[1]):
                dk[j, i] = rules.kernel_gradient(_stack(below[:, i]), _stack(d[:, j])) / batch
            db[j] = np.sum(d[:, j]) / batch
        dks.append(dk)
        dbs.append(db)
    dW = fv.T @ od / batch                                            # dffW = od fv' / batch (transposed layout)
    dbo = np.mean(od, axis=0)                                         # dffb = mean(od, 2)
    dx = deltas[0] / batch
    return dx, dks, dbs, dW, dbo


def toolbox_loss(x, y, kernels, biases, scales, W, bo):
    check_toolbox_sizes(x, kernels, scales)
    _, _, o = toolbox_feedforward(x, kernels, biases, scales, W, bo)
    return losses.toolbox_mse_forward(o, y)


def toolbox_gradients(x, y, kernels, biases, scales, W, bo, rules: CnnbpRules = CNNBP):
    check_toolbox_sizes(x, kernels, scales)
    layers, fv, o = toolbox_feedforward(x, kernels, biases, scales, W, bo)
    return cnnbp(layers, fv, o, y, kernels, scales, W, rules)


# the two-stage network (i - c - s - c - s - o) in the harness's calling convention: arrays, then hyperparameters

def toolbox_cnn_forward(x, y, k1, b1, k2, b2, W, bo, scales=(2, 2)):
    """L(x, y, k1, b1, k2, b2, W, bo) of the toolbox network with two conv/subsampling stages (a 0-d array)."""
    return np.asarray(toolbox_loss(x, y, [k1, k2], [b1, b2], scales, W, bo), dtype=np.float64)


def toolbox_cnn_backward(dE, x, y, k1, b1, k2, b2, W, bo, scales=(2, 2), rules: CnnbpRules = CNNBP):
    """dE times cnnbp's gradients: (dx, dk1, db1, dk2, db2, dW, dbo)."""
    dx, (dk1, dk2), (db1, db2), dW, dbo = toolbox_gradients(x, y, [k1, k2], [b1, b2], scales, W, bo, rules)
    dE = float(dE)
    return tuple(dE * g for g in (dx, dk1, db1, dk2, db2, dW, dbo))


# ----------------------------------------------------------------------------------------------------------------
# 2. conv -> ReLU -> max pool -> dense -> softmax cross-entropy
# ----------------------------------------------------------------------------------------------------------------

def relu_cnn_layers(x, k, b, W, bo, pool=2):
    """The forward's intermediate values: z (conv), a (ReLU), p (max pool), fv, logits."""
    z = correlate2d_forward(x, k, b)
    a = activations.relu_forward(z)
    p = pooling.maxpool2d_forward(a, pool, pool, 0)
    fv = p.reshape(x.shape[0], -1)
    logits = dense.dense_forward(fv, W, bo)
    return z, a, p, fv, logits


def relu_cnn_forward(x, y, k, b, W, bo, pool=2):
    """E(x, y, k, b, W, bo): softmax cross-entropy of the network's logits against targets y (a 0-d array)."""
    *_, logits = relu_cnn_layers(x, k, b, W, bo, pool)
    return np.asarray(losses.softmax_cross_entropy_forward(logits, y), dtype=np.float64)


def relu_cnn_backward(dE, x, y, k, b, W, bo, pool=2):
    """The layer references' backwards in reverse order: (dx, dk, db, dW, dbo)."""
    z, a, p, fv, logits = relu_cnn_layers(x, k, b, W, bo, pool)
    (dlogits,) = losses.softmax_cross_entropy_backward(np.asarray(dE, dtype=np.float64), logits, y)
    dfv, dW, dbo = dense.dense_backward(dlogits, fv, W, bo)
    (da,) = pooling.maxpool2d_backward(dfv.reshape(p.shape), a, pool, pool, 0)
    (dz,) = activations.relu_backward(da, z)
    dx, dk, db = correlate2d_backward(dz, x, k, b)
    return dx, dk, db, dW, dbo
