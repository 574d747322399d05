"""Wrong backwards of the pooling modes: the wrong divisor at the border, the ceil-mode window dropped, global
average pooling without its division."""
import numpy as np

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import pooling
from cnn_gradcheck.reference import pooling_modes as ref

from . import Mutant

AVG, CEIL, GLOBAL = (get_spec(name).reference for name in ("avgpool2d", "maxpool2d_ceil", "global_avgpool2d"))


def _avg_fixed_divisor(dy, x, kernel, stride, padding=0, ceil_mode=False, count_include_pad=True):
    """Every window divided by kh kw: right inside the input, wrong where count_include_pad=False drops padded
    cells and where ceil mode's window runs past the padded input."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(dy.shape):
        a, b, _ = ref.window_rows(i, x.shape[2], kh, sh, ph)
        a2, b2, _ = ref.window_rows(j, x.shape[3], kw, sw, pw)
        dx[n, c, a:b, a2:b2] += dy[n, c, i, j] / (kh * kw)
    return (dx,)


def _ceil_window_dropped(dy, x, kernel, stride, padding=0, dilation=1):
    """The backward in floor mode: the extra windows of ceil mode pass no gradient."""
    H, W = x.shape[2:]
    Ho = ref.pooled_size(H, kernel[0], stride[0], padding[0], dilation[0])
    Wo = ref.pooled_size(W, kernel[1], stride[1], padding[1], dilation[1])
    return pooling.maxpool2d_backward(dy[:, :, :Ho, :Wo], x, kernel, stride, padding, dilation)


def _global_not_divided(dy, x):
    """dE/dx = dE/dy copied to every cell, the 1/(H W) forgotten."""
    return (np.broadcast_to(dy, x.shape).copy(),)


MUTANTS = [
    Mutant("avgpool2d", "divisor kh kw where count_include_pad=False counts only real cells",
           type(AVG)("avgpool divisor always kh kw", AVG.forward, _avg_fixed_divisor), ("dx",),
           minimal={"N": 1, "C": 1}, fixed={"count_include_pad": False, "ceil_mode": False}),
    Mutant("avgpool2d", "divisor kh kw where ceil mode's window runs past the padded input",
           type(AVG)("avgpool divisor always kh kw", AVG.forward, _avg_fixed_divisor), ("dx",),
           minimal={"N": 1, "C": 1, "ph": 0, "pw": 0}, fixed={"count_include_pad": True, "ceil_mode": True}),
    Mutant("maxpool2d_ceil", "ceil mode's extra windows pass no gradient (floor-mode backward)",
           type(CEIL)("maxpool ceil backward in floor mode", CEIL.forward, _ceil_window_dropped), ("dx",),
           minimal={"N": 1, "C": 1}),
    Mutant("global_avgpool2d", "1/(H W) forgotten in the backward",
           type(GLOBAL)("global avgpool without division", GLOBAL.forward, _global_not_divided), ("dx",),
           minimal={"N": 1, "C": 1}),
]
