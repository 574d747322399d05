"""Wrong convolutions: the classic mistakes of a hand-written conv backward."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import conv2d as ref

from . import Mutant, scaled, wrong_backward

CONV = get_spec("conv2d").reference


def _kernel_not_rotated(dy, x, w, b, stride=1, padding=0, dilation=1):
    """dE/dx computed with the kernel as it is instead of rot180(w)."""
    dx, dw, db = ref.correlate2d_backward(dy, x, w[:, :, ::-1, ::-1].copy(), b, stride, padding, dilation)
    _, dw, db = ref.correlate2d_backward(dy, x, w, b, stride, padding, dilation)
    return dx, dw, db


def _stride_forgotten_in_dx(dy, x, w, b, stride=1, padding=0, dilation=1):
    """dE/dx scattered as if the stride were 1 (windows at i, j instead of i*S, j*S)."""
    sh, sw = stride
    ph, pw = padding
    dh, dwl = dilation
    _, dw, db = ref.correlate2d_backward(dy, x, w, b, stride, padding, dilation)
    xp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    for n in range(dy.shape[0]):
        for k in range(dy.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    for s in range(w.shape[2]):
                        for t in range(w.shape[3]):
                            u, v = i + s * dh, j + t * dwl
                            if u < xp.shape[2] and v < xp.shape[3]:
                                xp[n, :, u, v] += dy[n, k, i, j] * w[k, :, s, t]
    return xp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, db


def _bias_from_first_sample(grads, dy, *arrays, **hyper):
    grads[2] = dy[0].sum(axis=(1, 2))
    return grads


def _flipped_forward(x, w, b, stride=1, padding=0, dilation=1):
    """A forward that flips the kernel (true convolution where cross-correlation was meant)."""
    return ref.convolve2d_forward(x, w, b, stride, padding, dilation)


def _convolve_dw_not_flipped(dy, x, w, b, stride=1, padding=0, dilation=1):
    """True convolution's dw taken from the correlation's backward, forgetting to flip it back."""
    return ref.correlate2d_backward(dy, x, ref.rot180(w), b, stride, padding, dilation)


CONVOLVE = get_spec("convolve2d").reference

MUTANTS = [
    Mutant("conv2d", "forward flips the kernel (caught by the sparse-matrix derivation)",
           type(CONV)("forward flips the kernel", _flipped_forward, CONV.backward), ("forward",),
           minimal={"N": 1, "C_in": 1, "C_out": 1, "H": 1}, oracles=("alternatives",)),
    Mutant("convolve2d", "dw not flipped back (caught by the correlation-with-rot180 derivation)",
           type(CONVOLVE)("dw not flipped back", CONVOLVE.forward, _convolve_dw_not_flipped), ("dw",),
           minimal={"N": 1, "C_in": 1, "C_out": 1, "H": 1}, oracles=("alternatives",)),
    Mutant("conv2d", "kernel not rotated in dx",
           type(CONV)("kernel not rotated in dx", CONV.forward, _kernel_not_rotated), ("dx",),
           minimal={"N": 1, "C_in": 1, "C_out": 1}),
    Mutant("conv2d", "stride forgotten in dx",
           type(CONV)("stride forgotten in dx", CONV.forward, _stride_forgotten_in_dx), ("dx",),
           minimal={"N": 1, "C_in": 1, "C_out": 1, "dilh": 1, "dilw": 1, "ph": 0, "pw": 0}),
    Mutant("conv2d", "bias gradient from the first sample only",
           wrong_backward(CONV, "bias gradient from one sample", _bias_from_first_sample), ("db",),
           minimal={"N": 2, "C_in": 1, "C_out": 1, "kh": 1, "kw": 1}),
    *[Mutant("conv2d", f"d{arg} scaled by 1 + 1e-6 (caught by {oracle})",
             wrong_backward(CONV, f"d{arg} * (1 + 1e-6)", scaled(1 + 1e-6, i)), (f"d{arg}",),
             minimal={"N": 1, "C_in": 1, "C_out": 1}, oracles=(oracle,))
      for i, arg in enumerate("xwb") for oracle in ("pytorch", "finite differences")],
]
