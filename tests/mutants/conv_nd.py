"""Wrong 1-D and 3-D convolution backwards: the dilation forgotten in dw, the stride of one axis forgotten in dx."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import conv_nd as ref

from . import Mutant, scaled, wrong_backward

CONV1D, CONV3D = get_spec("conv1d").reference, get_spec("conv3d").reference


def _dilation_forgotten_in_dw(grads, dy, x, w, b, stride, padding, dilation):
    """dw read at o S + s (adjacent taps) instead of o S + s D."""
    (S,), (P,) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (P, P)))
    dw = np.zeros_like(w)
    for n, k, o in np.ndindex(dy.shape):
        for c, s in np.ndindex(w.shape[1:]):
            dw[k, c, s] += dy[n, k, o] * xp[n, c, o * S + s]
    grads[1] = dw
    return grads


def _depth_stride_forgotten_in_dx(grads, dy, x, w, b, stride, padding, dilation):
    """dx scattered with stride 1 on the first (depth) axis: output plane o writes at o + s D, not o S + s D."""
    S, P, D, K, Y, xp = ref._setup(x, w, (1,) + tuple(stride[1:]), padding, dilation)
    dxp = np.zeros_like(xp)
    for n, k, *o in np.ndindex(dy.shape):
        for c in range(x.shape[1]):
            for s in np.ndindex(*K):
                u = (o[0] + s[0] * D[0],) + tuple(oa * sa + ka * da for oa, ka, sa, da in
                                                  zip(o[1:], s[1:], stride[1:], D[1:]))
                if u[0] < xp.shape[2]:
                    dxp[(n, c) + u] += dy[(n, k, *o)] * w[(k, c) + s]
    grads[0] = dxp[(slice(None), slice(None)) + tuple(slice(p, p + m) for p, m in zip(P, x.shape[2:]))]
    return grads


ONE = {"N": 1, "C_in": 1, "C_out": 1}
MUTANTS = [
    Mutant("conv1d", "dilation forgotten in dw",
           wrong_backward(CONV1D, "conv1d dw without dilation", _dilation_forgotten_in_dw), ("dw",),
           minimal={**ONE, "kw": 2, "dilw": 2}),
    Mutant("conv3d", "depth stride forgotten in dx",
           wrong_backward(CONV3D, "conv3d dx with depth stride 1", _depth_stride_forgotten_in_dx), ("dx",),
           minimal={**ONE, "sd": 2}, fixed={**ONE, "sd": 2}),
    Mutant("conv1d", "dx scaled by 1 + 1e-6 (caught by conv2d on a one-row image)",
           wrong_backward(CONV1D, "dx * (1 + 1e-6)", scaled(1 + 1e-6, 0)), ("dx",), minimal=ONE,
           oracles=("alternatives",)),
    Mutant("conv3d", "dw scaled by 1 + 1e-6 (caught by pytorch)",
           wrong_backward(CONV3D, "dw * (1 + 1e-6)", scaled(1 + 1e-6, 1)), ("dw",), minimal=ONE,
           oracles=("pytorch",)),
]
