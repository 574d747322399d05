"""Wrong transposed-convolution backwards: the padding offset forgotten, the kernel flipped in dx."""
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.reference import conv_transpose as ref

from . import Mutant, scaled, wrong_backward

TRANSPOSE = get_spec("conv_transpose2d").reference


def _padding_offset_forgotten(dy, x, w, b, stride, padding, output_padding, dilation):
    """dx and dw read delta at (i S + s D, j S + t D) as if P were 0: the gradient of the uncropped output."""
    dx, dw, db = ref.conv_transpose2d_backward(dy, x, w, b, stride, (0, 0), output_padding, dilation)
    return dx, dw, db


def _kernel_flipped_in_dx(grads, dy, x, w, b, **hyper):
    """dx with rot180(w), as a true convolution's backward would flip it (conv_transpose2d does not)."""
    grads[0] = ref.conv_transpose2d_backward(dy, x, w[:, :, ::-1, ::-1].copy(), b, **hyper)[0]
    return grads


ONE = {"N": 1, "C_in": 1, "C_out": 1}
MUTANTS = [
    Mutant("conv_transpose2d", "padding offset forgotten in the backward",
           type(TRANSPOSE)("conv_transpose backward without P", TRANSPOSE.forward, _padding_offset_forgotten),
           ("dx", "dw"), minimal={**ONE, "ph": 0}, fixed={**ONE, "pw": 1}),
    Mutant("conv_transpose2d", "kernel flipped in dx",
           wrong_backward(TRANSPOSE, "conv_transpose dx with rot180(w)", _kernel_flipped_in_dx), ("dx",),
           minimal={**ONE, "kh": 1}),
    *[Mutant("conv_transpose2d", f"d{arg} scaled by 1 + 1e-6 (caught by {oracle})",
             wrong_backward(TRANSPOSE, f"d{arg} * (1 + 1e-6)", scaled(1 + 1e-6, i)), (f"d{arg}",),
             minimal=ONE, oracles=(oracle,))
      for i, arg in enumerate("xwb") for oracle in ("pytorch", "alternatives")],
]
