"""Mistakes only the adjoint oracle can see (or that it must see on its own): backwards off by a relative 1e-10,
below the finite-difference oracle's 1e-8 resolution, and a forward that is not affine where the spec says it is."""
import numpy as np

from cnn_gradcheck.registry import get_spec

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


# dw off by 1e-10 is shown beside finite differences in tests/test_adjoint.py; here: dx with a free configuration
# (shrinks to the smallest), db (the quantity a random v would dilute most) and the not-affine forward, each with the
# channels fixed to keep the shrinker's cost down
MUTANTS = [
    Mutant("conv2d", "dx off by relative 1e-10 (caught by adjoint)",
           wrong_backward(CONV, "dx * (1 + 1e-10)", _scaled(0)), ("dx",), minimal=SMALLEST, oracles=("adjoint",)),
    Mutant("conv2d", "db off by relative 1e-10 (caught by adjoint)",
           wrong_backward(CONV, "db * (1 + 1e-10)", _scaled(2)), ("db",), minimal=SMALLEST, fixed=SMALLEST,
           oracles=("adjoint",)),
    Mutant("conv2d", "forward not affine in x (caught by adjoint)",
           type(CONV)("conv + 1e-4 |x|^2", _not_affine_in_x, CONV.backward), ("dx",),
           minimal=SMALLEST, fixed=SMALLEST, oracles=("adjoint",)),
]
