"""Whole networks as ops: the arguments are the input, the targets and every parameter, the output is the loss.
The standard oracles (PyTorch autograd of the same network, finite differences of the reference's forward) and the
formula table then apply to the networks as they do to single layers.

- "toolbox_cnn": DeepLearnToolbox's i-c-s-c-s-o network, backward written as cnnbp (reference.network, seed 003).
- "relu_cnn":    conv -> ReLU -> max pool -> dense -> softmax cross-entropy (000, 002, 004's order).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from ..reference import network as ref
from .. import tolerance
from ..spec import Formula, Implementation, OpSpec
from ..strategies import normal, pick
from .pooling import window_runner_up_gap


# ----------------------------------------------------------------------------------------------------------------
# DeepLearnToolbox's network
# ----------------------------------------------------------------------------------------------------------------

@st.composite
def toolbox_configs(draw, **fixed):
    """Sizes built from the top down so that every subsampling scale divides its map (the toolbox's assertion):
    output maps Oh x Ow of stage 2, conv 2's maps Oh*s2, stage 1's pooled maps + k2 - 1, conv 1's maps times s1."""
    def field(name, low, high):
        return draw(pick(fixed, name, st.integers(low, high)))

    c = {"N": field("N", 1, 2), "C0": field("C0", 1, 2), "C1": field("C1", 1, 2), "C2": field("C2", 1, 2),
         "k1": field("k1", 1, 3), "k2": field("k2", 1, 3), "s1": field("s1", 1, 2), "s2": field("s2", 1, 2),
         "Oh": field("Oh", 1, 2), "Ow": field("Ow", 1, 2), "classes": field("classes", 1, 3)}
    for axis in ("h", "w"):
        pooled_1 = c[f"O{axis}"] * c["s2"] + c["k2"] - 1
        c[axis.upper()] = pooled_1 * c["s1"] + c["k1"] - 1
    return c


def toolbox_shapes(c):
    return {"x": (c["N"], c["C0"], c["H"], c["W"]), "y": (c["N"], c["classes"]),
            "k1": (c["C1"], c["C0"], c["k1"], c["k1"]), "b1": (c["C1"],),
            "k2": (c["C2"], c["C1"], c["k2"], c["k2"]), "b2": (c["C2"],),
            "W": (c["C2"] * c["Oh"] * c["Ow"], c["classes"]), "bo": (c["classes"],)}


def toolbox_arrays(c, rng):
    shape = toolbox_shapes(c)
    return {"x": normal(rng, shape["x"]), "y": rng.uniform(0.0, 1.0, shape["y"]),
            "k1": normal(rng, shape["k1"], 0.5), "b1": normal(rng, shape["b1"], 0.5),
            "k2": normal(rng, shape["k2"], 0.5), "b2": normal(rng, shape["b2"], 0.5),
            "W": normal(rng, shape["W"]), "bo": normal(rng, shape["bo"])}


def toolbox_torch(x, y, k1, b1, k2, b2, W, bo, scales=(2, 2)):
    """The same network in torch: true convolution is conv2d with the kernel flipped; subsampling is avg_pool2d."""
    a = x
    for k, b, scale in ((k1, b1, scales[0]), (k2, b2, scales[1])):
        a = F.avg_pool2d(torch.sigmoid(F.conv2d(a, k.flip(-2, -1), b)), scale)
    o = torch.sigmoid(a.reshape(x.shape[0], -1) @ W + bo)
    return 0.5 * ((o - y) ** 2).sum() / x.shape[0]


def toolbox_reduction_length(c):
    """The composition's rounding grows with the sum of its layers' longest reductions (a bound, not an estimate)."""
    conv1 = (c["H"] - c["k1"] + 1) * (c["W"] - c["k1"] + 1)
    conv2 = (c["Oh"] * c["s2"]) * (c["Ow"] * c["s2"])
    fvnum = c["C2"] * c["Oh"] * c["Ow"]
    return (c["C0"] * c["k1"] ** 2 + 1 + c["C1"] * c["k2"] ** 2 + 1 + c["s1"] ** 2 + c["s2"] ** 2 + fvnum + 1
            + c["N"] * c["classes"] + c["N"] * (conv1 + conv2) + c["C1"] * c["k1"] ** 2 + c["C2"] * c["k2"] ** 2)


TOOLBOX_CNN = OpSpec(
    name="toolbox_cnn", arg_names=("x", "y", "k1", "b1", "k2", "b2", "W", "bo"), configs=toolbox_configs,
    make_arrays=toolbox_arrays, output_shape=lambda c: (), hyper=lambda c: {"scales": (c["s1"], c["s2"])},
    torch_forward=toolbox_torch,
    reference=Implementation("reference.network.toolbox_cnn (cnnbp)", ref.toolbox_cnn_forward,
                             ref.toolbox_cnn_backward),
    reduction_length=toolbox_reduction_length, grad_args=("x", "k1", "b1", "k2", "b2", "W", "bo"),
    description="DeepLearnToolbox's CNN (sigmoid conv, mean subsampling, sigmoid output, 1/2 sum e^2 / batch)")


# ----------------------------------------------------------------------------------------------------------------
# conv -> ReLU -> max pool -> dense -> softmax cross-entropy
# ----------------------------------------------------------------------------------------------------------------

@st.composite
def relu_configs(draw, **fixed):
    def field(name, low, high):
        return draw(pick(fixed, name, st.integers(low, high)))

    c = {"N": field("N", 1, 2), "C0": field("C0", 1, 2), "C1": field("C1", 1, 2), "k": field("k", 1, 3),
         "pool": field("pool", 1, 2), "Oh": field("Oh", 1, 2), "Ow": field("Ow", 1, 2),
         "classes": field("classes", 2, 3)}
    c["H"] = c["Oh"] * c["pool"] + c["k"] - 1
    c["W"] = c["Ow"] * c["pool"] + c["k"] - 1
    return c


def relu_kink_distance(c, arrays) -> float:
    """How far (in units of the finite-difference step along a direction with |v|_inf <= 1) the input is from a
    kink: the smallest |pre-activation| z and half the smallest gap between the two largest z of a pooling window
    (max pooling commutes with ReLU, so the pooled value is relu(max z): a tie of the two largest z is a kink; one
    among non-positive z is not, and counting it too only errs on the safe side), divided by how fast z moves:
    |dz| <= t sum|k_j| (moving x), t max window sum|x| (moving k), t (moving b). W, bo and y do not move them."""
    x, k, b = arrays["x"], arrays["k"], arrays["b"]
    z, *_ = ref.relu_cnn_layers(x, k, b, arrays["W"], arrays["bo"], c["pool"])
    n, ch, h, w = z.shape
    pooling = {"N": n, "C": ch, "H": h, "W": w, "kh": c["pool"], "kw": c["pool"], "sh": c["pool"],
               "sw": c["pool"], "ph": 0, "pw": 0}
    closest = min(float(np.min(np.abs(z))), window_runner_up_gap(pooling, {"x": z}) / 2)
    rate_x = float(np.max(np.sum(np.abs(k), axis=(1, 2, 3))))
    rate_k = float(np.max(np.abs(ref.correlate2d_forward(np.abs(x), np.ones((1,) + k.shape[1:]), np.zeros(1)))))
    return closest / max(rate_x, rate_k, 1.0)


def relu_shapes(c):
    return {"x": (c["N"], c["C0"], c["H"], c["W"]), "y": (c["N"], c["classes"]),
            "k": (c["C1"], c["C0"], c["k"], c["k"]), "b": (c["C1"],),
            "W": (c["C1"] * c["Oh"] * c["Ow"], c["classes"]), "bo": (c["classes"],)}


def relu_arrays(c, rng):
    """Redraw (from the same generator, so reproducibly) until no ReLU input or max-pool tie lies within MARGIN
    (scaled as relu_kink_distance measures it). Large input and kernel scales make this likely: the distance
    grows with them while the data's density near a kink falls."""
    shape = relu_shapes(c)
    for _ in range(1000):
        arrays = {"x": normal(rng, shape["x"], 2.0), "y": rng.dirichlet(np.ones(c["classes"]), c["N"]),
                  "k": normal(rng, shape["k"], 2.0), "b": normal(rng, shape["b"]),
                  "W": normal(rng, shape["W"], 0.1), "bo": normal(rng, shape["bo"])}
        if relu_kink_distance(c, arrays) >= tolerance.MARGIN:
            return arrays
    raise RuntimeError(f"relu_cnn: no input away from kinks found for {c}")


def relu_torch(x, y, k, b, W, bo, pool=2):
    p = F.max_pool2d(torch.relu(F.conv2d(x, k, b)), pool)
    logits = p.reshape(x.shape[0], -1) @ W + bo
    return -(y * torch.log_softmax(logits, dim=1)).sum()


def relu_terms(c, arrays, dE):
    """Sizes of the terms behind each gradient (tolerance policy 1). The loss gradient p - t cancels (as in
    softmax_cross_entropy): its terms |dE| ((sum t) p + t) travel back through the network's linear maps, which the
    backward applies with the real ReLU masks and max-pool routing. So: the same routing and masks, with |x|, |k|,
    |b|, |W|, |bo| in the linear maps, and the vector-Jacobian product taken with those term sizes."""
    x, t, k, b, W, bo = (torch.tensor(arrays[n], dtype=torch.float64) for n in ("x", "y", "k", "b", "W", "bo"))
    with torch.no_grad():  # the real network fixes the pieces: which units are active, which cell wins a window
        z = F.conv2d(x, k, b)
        pooled, winner = F.max_pool2d(torch.relu(z), c["pool"], return_indices=True)
        logits = pooled.reshape(x.shape[0], -1) @ W + bo
        p = torch.softmax(logits, dim=1)
        g = abs(float(dE)) * (t.sum(dim=1, keepdim=True) * p + t)
        shifted = logits - logits.max(dim=1, keepdim=True).values
        lse = torch.logsumexp(shifted, dim=1, keepdim=True)
    leaves = [a.abs().requires_grad_() for a in (x, k, b, W, bo)]
    xa, ka, ba, Wa, boa = leaves
    active = F.conv2d(xa, ka, ba) * (z > 0)
    routed = active.flatten(2).gather(2, winner.flatten(2)).reshape(pooled.shape)
    grads = torch.autograd.grad(routed.reshape(x.shape[0], -1) @ Wa + boa, leaves, grad_outputs=g)
    return {"forward": float((t * (shifted.abs() + lse)).sum()),
            **{f"d{n}": grad.numpy() for n, grad in zip(("x", "k", "b", "W", "bo"), grads)}}


def relu_reduction_length(c):
    conv = (c["H"] - c["k"] + 1) * (c["W"] - c["k"] + 1)
    fvnum = c["C1"] * c["Oh"] * c["Ow"]
    return (c["C0"] * c["k"] ** 2 + 1 + fvnum + 1 + 2 * c["classes"] + c["N"] * (conv + c["classes"])
            + c["C1"] * c["k"] ** 2)


RELU_CNN = OpSpec(
    name="relu_cnn", arg_names=("x", "y", "k", "b", "W", "bo"), configs=relu_configs, make_arrays=relu_arrays,
    output_shape=lambda c: (), hyper=lambda c: {"pool": c["pool"]}, torch_forward=relu_torch,
    reference=Implementation.from_module(ref, "relu_cnn", "reference.network.relu_cnn"),
    reduction_length=relu_reduction_length, grad_args=("x", "k", "b", "W", "bo"),
    kink_distance=relu_kink_distance, magnitudes=relu_terms,
    nondifferentiable="ReLU at 0 and ties between the largest values of a max-pooling window",
    description="conv -> ReLU -> max pool -> dense -> softmax cross-entropy")

SPECS = [TOOLBOX_CNN, RELU_CNN]
#: op -> (config -> {arg name: shape}), for code that builds its own arrays (initial weights for training)
SHAPES = {"toolbox_cnn": toolbox_shapes, "relu_cnn": relu_shapes}

FORMULAS = [
    Formula("cnnbp: dffW = od fv' / batch, dffb = mean(od), od = e .* o(1-o)", "L = 1/2 sum e^2 / batch",
            "003", "toolbox_cnn", ("forward", "W", "bo")),
    Formula("cnnbp: dk = convn(flipall(a), d, 'valid') / batch, db = sum(d) / batch",
            "d = a(1-a) .* expand(d_s, scale) / scale^2; d_s = sum_j convn(d_j, rot180(k_ij), 'full')", "003",
            "toolbox_cnn", ("k1", "b1", "k2", "b2")),
    Formula("cnnbp's rules carried down to the input", "dL/dx = sum_j convn(d_j, rot180(k_ij), 'full') / batch",
            "003", "toolbox_cnn", ("x",)),
    Formula("conv -> ReLU -> max pool -> dense -> softmax CE, chained layer backwards",
            "dE/dz = relu'(z) .* maxpool^T(W' (softmax(z) - t))", "000, 002, 004", "relu_cnn",
            ("forward", "x", "k", "b", "W", "bo")),
]
