"""Mistakes only the adjoint oracle can see (or that it must see on its own): backwards off by a relative 1e-10,
below the finite-difference oracle's 1e-8 resolution, and a forward that is not affine where the spec says it is."""
import numpy as np

from checks.registry import get_spec

from . import Mutant, wrong_backward

CONV = get_spec("conv2d").reference
SMALLEST = {"N": 1, "C_in": 1, "C_out": 1}


def _scaled(index, factor=1 + 1e-10):
    def change(grads, dy, *arrays, **hyper):
        grads[index] = np.asarray(grads[index]) * factor
        return grads
    return change


def _not_affine_in_x(x, w, b, **hyper):
    """conv(x, w) + b plus a term quadratic in x, small enough (1e-4) to look like rounding to a glance."""
    return CONV.forward(x, w, b, **hyper) + 1e-4 * float(np.sum(x * x))


MUTANTS = [
    *[Mutant("conv2d", f"d{arg} off by relative 1e-10 (caught by adjoint)",
             wrong_backward(CONV, f"d{arg} * (1 + 1e-10)", _scaled(i)), (f"d{arg}",),
             minimal=SMALLEST, oracles=("adjoint",))
      for i, arg in enumerate("xwb")],
    Mutant("conv2d", "forward not affine in x (caught by adjoint)",
           type(CONV)("conv + 1e-4 |x|^2", _not_affine_in_x, CONV.backward), ("dx",),
           minimal=SMALLEST, oracles=("adjoint",)),
]
