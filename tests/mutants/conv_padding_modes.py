"""Wrong backwards of reflect/replicate-padded convolution: the padded cells' gradient dropped (zero padding's
backward), the fold assigning instead of adding."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import conv2d
from cnn_gradcheck.reference import conv_padding_modes as ref

from . import Mutant

PADDED = get_spec("conv2d_padded").reference


def _as_zero_padding(dy, x, w, b, stride, padding, dilation, padding_mode):
    """dE/dx from conv2d's zero-padding backward: the padded cells' gradient is cropped away instead of folded back
    onto the cells they copied."""
    _, dw, db = ref.conv2d_padded_backward(dy, x, w, b, stride, padding, dilation, padding_mode)
    xp = ref.pad(x, padding, padding_mode)
    dxp, _, _ = conv2d.correlate2d_backward(dy, xp, w, b, stride, 0, dilation)
    (ph, pw), (H, W) = padding, x.shape[2:]
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, db


def _fold_assigns(dy, x, w, b, stride, padding, dilation, padding_mode):
    """dx[src(u), src(v)] = dxp[u, v]: a cell copied several times keeps only the last copy's gradient."""
    _, dw, db = ref.conv2d_padded_backward(dy, x, w, b, stride, padding, dilation, padding_mode)
    dxp, _, _ = conv2d.correlate2d_backward(dy, ref.pad(x, padding, padding_mode), w, b, stride, 0, dilation)
    (ph, pw), (H, W) = padding, x.shape[2:]
    dx = np.zeros_like(x)
    for n, c, u, v in np.ndindex(dxp.shape):
        dx[n, c, ref.source(u - ph, H, padding_mode), ref.source(v - pw, W, padding_mode)] = dxp[n, c, u, v]
    return dx, dw, db


MUTANTS = [
    Mutant("conv2d_padded", "padded cells' gradient cropped (zero padding's backward)",
           type(PADDED)("padded conv dx as zero padding", PADDED.forward, _as_zero_padding), ("dx",),
           minimal={"N": 1, "C_in": 1, "C_out": 1}),
    Mutant("conv2d_padded", "fold assigns (=) instead of adding (+=)",
           type(PADDED)("padded conv fold with =", PADDED.forward, _fold_assigns), ("dx",),
           minimal={"N": 1, "C_in": 1, "C_out": 1}),
]
