"""Wrong pooling and subsampling backwards: the classic mistakes, each with the smallest configuration showing it."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import pooling as ref
from cnn_gradcheck.reference import subsampling as sub

from . import Mutant, wrong_backward

MAX = get_spec("maxpool2d").reference
MEAN = get_spec("meanpool2d").reference
SUB = get_spec("subsampling").reference


def _maxpool_assigns(dy, x, kernel, stride, padding=0, dilation=(1, 1)):
    """dx[argmax] = dy instead of +=: a cell that is the argmax of two overlapping windows keeps only one."""
    ph, pw = padding
    xp = ref.pad_with(x, ph, pw, -np.inf)
    dxp = np.zeros_like(xp)
    for n, c, i, j in np.ndindex(dy.shape):
        u, v = ref.window_argmax(xp, n, c, i, j, kernel, stride, dilation)
        dxp[n, c, u, v] = dy[n, c, i, j]
    return (dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]],)


def _maxpool_padding_ignored(dy, x, kernel, stride, padding=0, dilation=(1, 1)):
    """Windows placed at (i*S, j*S) of x itself, as if there were no padding (x extended by -inf at the end only
    so that every window exists): the routing is shifted by P."""
    (ph, pw), (H, W) = padding, x.shape[2:]
    extended = np.pad(x, ((0, 0), (0, 0), (0, 2 * ph), (0, 2 * pw)), constant_values=-np.inf)
    (dx,) = ref.maxpool2d_backward(dy, extended, kernel, stride, 0, dilation)
    return (dx[:, :, :H, :W],)


def _maxpool_dilation_ignored(dy, x, kernel, stride, padding=0, dilation=(1, 1)):
    """The argmax searched among adjacent cells (i*S + s, j*S + t), as if the window were not dilated."""
    (dx,) = ref.maxpool2d_backward(dy, x, kernel, stride, padding)
    return (dx,)


def _mean_without_division(grads, dy, x, kernel, stride):
    """expand(delta) without the / scale^2."""
    grads[0] = grads[0] * (kernel[0] * kernel[1])
    return grads


def _mean_expand_assumes_stride_is_window(dy, x, kernel, stride):
    """cnnbp's expand(delta, [k k]) / k^2 used for any stride: right only when stride == window."""
    kh, kw = kernel
    up = np.kron(dy, np.ones((1, 1, kh, kw))) / (kh * kw)
    dx = np.zeros_like(x)
    h, w = min(up.shape[2], x.shape[2]), min(up.shape[3], x.shape[3])
    dx[:, :, :h, :w] = up[:, :, :h, :w]
    return (dx,)


def _subsampling_without_sigmoid_derivative(dy, x, beta, b, scale):
    """delta = dE/dy, f'(u) forgotten (DeepLearnToolbox's subsampling has no f; the Notes' has)."""
    d = sub.down(x, scale)
    _, _, Ho, Wo = d.shape
    dx = np.zeros_like(x)
    dx[:, :, :Ho * scale, :Wo * scale] = np.kron(dy, np.ones((scale, scale))) * np.reshape(beta, (1, -1, 1, 1))
    return dx, (dy * d).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))


def _subsampling_dx_without_beta(grads, dy, x, beta, b, scale):
    grads[0] = grads[0] / np.asarray(beta).reshape(1, -1, 1, 1)
    return grads


def _subsampling_dbeta_without_down(dy, x, beta, b, scale):
    """dE/dbeta = sum delta (the down(x) factor dropped)."""
    dx, _, db = sub.subsampling_backward(dy, x, beta, b, scale)
    return dx, db.copy(), db


MUTANTS = [
    Mutant("maxpool2d", "overlapping windows assign (=) instead of accumulating (+=)",
           type(MAX)("maxpool dx[argmax] = dy", MAX.forward, _maxpool_assigns), ("dx",),
           minimal={"N": 1, "C": 1, "kh": 2, "sh": 1, "kw": 2, "sw": 1}, fixed={"stride_vs_kernel": "smaller"}),
    Mutant("maxpool2d", "padding ignored when locating the argmax",
           type(MAX)("maxpool padding ignored in backward", MAX.forward, _maxpool_padding_ignored),
           ("dx",), minimal={"N": 1, "C": 1}),
    Mutant("maxpool2d", "dilation ignored when locating the argmax",
           type(MAX)("maxpool dilation ignored in backward", MAX.forward, _maxpool_dilation_ignored),
           ("dx",), minimal={"N": 1, "C": 1, "ph": 0, "pw": 0}),
    Mutant("meanpool2d", "upsampled delta not divided by the window area",
           wrong_backward(MEAN, "mean pool without / scale^2", _mean_without_division), ("dx",),
           minimal={"N": 1, "C": 1}),
    Mutant("meanpool2d", "cnnbp's expand used when stride != window",
           type(MEAN)("mean pool expand for any stride", MEAN.forward, _mean_expand_assumes_stride_is_window),
           ("dx",), minimal={"N": 1, "C": 1}),
    Mutant("subsampling", "sigmoid derivative forgotten in delta",
           type(SUB)("subsampling without f'", SUB.forward, _subsampling_without_sigmoid_derivative),
           ("dx", "dbeta", "db"), minimal={"N": 1, "C": 1, "scale": 1}),
    Mutant("subsampling", "dE/dx without the multiplicative bias beta",
           wrong_backward(SUB, "subsampling dx without beta", _subsampling_dx_without_beta), ("dx",),
           minimal={"N": 1, "C": 1, "scale": 1}),
    Mutant("subsampling", "dE/dbeta without the down(x) factor",
           type(SUB)("subsampling dbeta = sum delta", SUB.forward, _subsampling_dbeta_without_down), ("dbeta",),
           minimal={"N": 1, "C": 1, "scale": 1}),
]
