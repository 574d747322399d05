"""The joint adjoint test and the per-argument n/a path (checks/adjoint.py's docstring) pinned where the complete
mutation run of adjoint.py (2026-11-30, after the joint witnesses; docs/mutation.md) found them unpinned: the calls
a case costs where the docs promise a count, the exactness checks (second difference, odd parts at t and 2t) at
their bounds on constructed forwards, and the n/a comparison of an argument whose step its dtype cannot resolve."""
import re

import numpy as np
import pytest

from cnn_gradcheck import tolerance
from cnn_gradcheck.adjoint import adjoint_oracle, exact_step
from cnn_gradcheck.calls import evaluate
from cnn_gradcheck.compare import NA, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Case, Implementation, as_grad_dict

DENSE, MEANPOOL, CONV = get_spec("dense"), get_spec("meanpool2d"), get_spec("conv2d")
POOL_CONFIG = {"N": 1, "C": 2, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0, "dilh": 1,
               "dilw": 1}
CONV_CONFIG = {"N": 2, "C_in": 1, "C_out": 2, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
               "dilh": 1, "dilw": 1}
DENSE_CONFIG = {"N": 3, "m": 4, "n": 3}
JOINT = "joint direction"


def counted(spec, forward=None, backward=None, dtype=None):
    """An implementation (the op's reference unless given, results cast to ``dtype`` if asked) with its calls
    counted."""
    calls = {"forward": 0, "backward": 0}
    forward = forward or spec.reference.forward
    backward = backward or spec.reference.backward

    def cast(a):
        return np.asarray(a).astype(dtype) if dtype else a

    def f(*args, **hyper):
        calls["forward"] += 1
        return cast(forward(*args, **hyper))

    def b(*args, **hyper):
        calls["backward"] += 1
        return tuple(cast(g) for g in as_grad_dict(spec, backward(*args, **hyper)).values())

    return Implementation("counted", f, b), calls


def adjoint_only(spec, impl, case):
    return {c.quantity: c for c in check_case(spec, impl, case, oracles=("adjoint",)).comparisons}


# --- the cost the docs promise ------------------------------------------------------------------------------------

def test_meanpool_linear_in_x_alone_costs_one_plus_two_forward_and_one_plus_one_backward_calls():
    """Affine along u: the second difference vanishes, so the odd parts at 2t are never computed; the joint test
    settles dx (the evaluation's 1 + 1 calls, then 2 forward calls and 1 backward call)."""
    impl, calls = counted(MEANPOOL)
    result = adjoint_only(MEANPOOL, impl, MEANPOOL.make_case(POOL_CONFIG, seed=3))
    assert result["dx"].verdict == PASS and result["dx"].note.startswith(JOINT)
    assert calls == {"forward": 1 + 2, "backward": 1 + 1}


@pytest.mark.parametrize("spec, config", [(CONV, CONV_CONFIG), (DENSE, DENSE_CONFIG)], ids=["conv2d", "dense"])
def test_a_bilinear_forward_adds_the_odd_parts_at_2t_and_still_settles_every_argument_jointly(spec, config):
    """x * w + b has a second difference along the joint u, so the odd parts at 2t are computed (2 more forward
    calls: 1 + 4 in all); they agree (degree 2 in t), and every argument resolves: 2 backward calls in all."""
    impl, calls = counted(spec)
    result = adjoint_only(spec, impl, spec.make_case(config, seed=3))
    assert all(c.verdict == PASS and c.note.startswith(JOINT) for c in result.values()), result
    assert len(result) == 3 and calls == {"forward": 1 + 4, "backward": 2}
