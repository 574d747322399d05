"""Wrong grouped-convolution backwards: the group's channel offset forgotten, groups ignored."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import grouped_conv as ref

from . import Mutant, scaled, wrong_backward

GROUPED = get_spec("grouped_conv2d").reference


def _offset_forgotten(dx_offset, dw_offset):
    """The backward's loops with input channel c where g Cg + c belongs (in dx, in dw or both): every group's
    gradient lands on (or is read from) the first group's channels."""
    def backward(dy, x, w, b, stride, padding, dilation, groups):
        (sh, sw), (ph, pw), (Dh, Dw) = stride, padding, dilation
        C_out, Cg, kh, kw = w.shape
        Kg = C_out // groups
        xp = ref.zero_pad(x, ph, pw)
        dxp, dw = np.zeros_like(xp), np.zeros_like(w)
        for n, k, i, j in np.ndindex(dy.shape):
            g = k // Kg
            for c, s, t in np.ndindex(Cg, kh, kw):
                u, v = i * sh + s * Dh, j * sw + t * Dw
                dw[k, c, s, t] += dy[n, k, i, j] * xp[n, (g * Cg if dw_offset else 0) + c, u, v]
                dxp[n, (g * Cg if dx_offset else 0) + c, u, v] += dy[n, k, i, j] * w[k, c, s, t]
        return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dy.sum(axis=(0, 2, 3))
    return backward


SMALL = {"N": 1, "groups": 2}
MUTANTS = [
    Mutant("grouped_conv2d", "group's channel offset forgotten in dx",
           type(GROUPED)("grouped dx into channel c", GROUPED.forward, _offset_forgotten(False, True)), ("dx",),
           minimal={**SMALL, "kh": 1, "kw": 1}, fixed={"groups": 2}),
    Mutant("grouped_conv2d", "group's channel offset forgotten in dw",
           type(GROUPED)("grouped dw from channel c", GROUPED.forward, _offset_forgotten(True, False)), ("dw",),
           minimal={**SMALL, "kh": 1, "kw": 1}, fixed={"groups": 2}),
    *[Mutant("grouped_conv2d", f"d{arg} scaled by 1 + 1e-6 (caught by {oracle})",
             wrong_backward(GROUPED, f"d{arg} * (1 + 1e-6)", scaled(1 + 1e-6, i)), (f"d{arg}",),
             minimal={"N": 1, "groups": 1}, oracles=(oracle,))
      for i, arg in enumerate("xwb") for oracle in ("pytorch", "alternatives")],
]
