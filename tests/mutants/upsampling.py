"""Wrong upsampling backwards: nearest's block sum replaced by one cell, bilinear with the corners' weights of
align_corners=True."""
import numpy as np

from cnn_gradcheck.registry import get_spec

from . import Mutant

NEAREST, BILINEAR = get_spec("upsample_nearest").reference, get_spec("upsample_bilinear").reference


def _nearest_one_cell(dy, x, scale):
    """dE/dx[u, v] = dE/dy[u sh, v sw]: one cell of each block instead of its sum (subsampling, not the adjoint)."""
    sh, sw = scale
    return (dy[:, :, ::sh, ::sw].copy(),)


def _bilinear_align_corners(dy, x, scale):
    """The backward of align_corners=True (r = i (H - 1) / (Ho - 1)) against the align_corners=False forward."""
    sh, sw = scale
    N, C, H, W = x.shape
    Ho, Wo = H * sh, W * sw
    dx = np.zeros_like(x)

    def corners(i, size, out):
        r = i * (size - 1) / (out - 1) if out > 1 else 0.0
        u0 = min(int(np.floor(r)), size - 1)
        return u0, min(u0 + 1, size - 1), r - u0

    for n, c, i, j in np.ndindex(N, C, Ho, Wo):
        (u0, u1, a), (v0, v1, b) = corners(i, H, Ho), corners(j, W, Wo)
        for u, v, weight in ((u0, v0, (1 - a) * (1 - b)), (u0, v1, (1 - a) * b), (u1, v0, a * (1 - b)),
                             (u1, v1, a * b)):
            dx[n, c, u, v] += weight * dy[n, c, i, j]
    return (dx,)


MUTANTS = [
    Mutant("upsample_nearest", "one cell of each block instead of the block's sum",
           type(NEAREST)("nearest dx = dy[::s, ::s]", NEAREST.forward, _nearest_one_cell), ("dx",),
           minimal={"N": 1, "C": 1, "H": 1, "W": 1}),
    Mutant("upsample_bilinear", "align_corners=True's weights in the backward",
           type(BILINEAR)("bilinear backward align_corners=True", BILINEAR.forward, _bilinear_align_corners), ("dx",),
           minimal={"N": 1, "C": 1}),
]
