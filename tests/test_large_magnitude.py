"""Logits in the hundreds: a softmax (or softmax cross-entropy) that does not subtract the maximum is not finite
there (0/0 below -745), and the harness rejects it with a message naming the op and the configuration."""
import numpy as np
import pytest

from cnn_gradcheck.calls import ImplementationError
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation


def _naive_softmax(x):
    with np.errstate(all="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)


def _naive_softmax_cross_entropy(z, t):
    with np.errstate(all="ignore"):
        return np.asarray(-(t * np.log(_naive_softmax(z))).sum())


@pytest.mark.parametrize("op, forward, config", [
    ("softmax", _naive_softmax, {"N": 1, "K": 2, "offset": 0.0}),
    ("softmax_cross_entropy", _naive_softmax_cross_entropy,
     {"N": 1, "K": 2, "scale": 1.0, "offset": 0.0, "targets": "one-hot"})])
def test_naive_exponentials_are_rejected_for_logits_in_the_hundreds(op, forward, config):
    spec = get_spec(op)
    naive = Implementation(f"naive {op}", forward, spec.reference.backward)
    small = spec.make_case(config, 0)
    assert check_case(spec, naive, small).passed  # fine for O(1) logits: only the magnitude exposes it
    config = dict(small.config, offset=-800.0)
    with pytest.raises(ImplementationError) as raised:
        check_case(spec, naive, spec.make_case(config, 0))
    message = str(raised.value)
    assert op in message and "offset=-800.0" in message and "non-finite" in message
