"""One rounding model behind every verdict (checks/tolerance.py, policies 1b, 1c and 2): rounding noise is estimated
from the oracle's side (a float32 evaluation of the torch op, the inputs' own rounding carried through the op), not
declared, so correct layers pass without term sizes written by hand, while wrong ones are still rejected."""
import numpy as np
import torch.nn.functional as F
from hypothesis import strategies as st

from cnn_gradcheck import tolerance
from cnn_gradcheck.compare import FAIL, PASS
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation, OpSpec

CROSS_ENTROPY = get_spec("cross_entropy")
SOFTMAX_CE = get_spec("softmax_cross_entropy")


# ---- a correct BatchNorm2d written outside the repository, through a hand-built spec without magnitudes ---------

def bn_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    return gamma.reshape(1, -1, 1, 1) * (x - mu) / np.sqrt(var + eps) + beta.reshape(1, -1, 1, 1)


def bn_backward(dy, x, gamma, beta, eps=1e-5):
    """Training-mode batch norm backward, the usual closed form:
    dx = (1 / (m sigma)) (m dxh - sum dxh - xh sum(dxh xh)), dxh = dy gamma."""
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xh = (x - mu) * inv
    m = x.shape[0] * x.shape[2] * x.shape[3]
    dxh = dy * gamma.reshape(1, -1, 1, 1)
    dx = inv / m * (m * dxh - dxh.sum(axis=(0, 2, 3), keepdims=True)
                    - xh * (dxh * xh).sum(axis=(0, 2, 3), keepdims=True))
    return dx, (dy * xh).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))


def _bn_arrays(c, rng):
    return {"x": rng.standard_normal((c["N"], c["C"], c["H"], c["W"])), "gamma": rng.standard_normal(c["C"]),
            "beta": rng.standard_normal(c["C"])}


BATCHNORM = OpSpec(
    name="batchnorm2d", arg_names=("x", "gamma", "beta"),
    configs=lambda **fixed: st.fixed_dictionaries({"N": st.integers(1, 3), "C": st.integers(1, 3),
                                                   "H": st.integers(1, 4), "W": st.integers(1, 4)}),
    make_arrays=_bn_arrays, output_shape=lambda c: (c["N"], c["C"], c["H"], c["W"]), hyper=lambda c: {},
    torch_forward=lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
    reference=Implementation("numpy batchnorm2d", bn_forward, bn_backward),
    reduction_length=lambda c: c["N"] * c["H"] * c["W"], linear_args=("beta",))
USER_BN = Implementation("user's numpy batchnorm2d", bn_forward, bn_backward)


def test_a_correct_batchnorm_without_declared_magnitudes_passes():
    """Two elements per channel: dx is (1 - xh^2)-small, a cancellation no |inputs| evaluation shows (it was
    rejected with an error of 5.9e-13 relative against a tolerance of 2e-19). 60 seeds at the worst shape."""
    for seed in range(60):
        for config in ({"N": 1, "C": 1, "H": 1, "W": 2}, {"N": 2, "C": 2, "H": 3, "W": 3}):
            result = check_case(BATCHNORM, USER_BN, BATCHNORM.make_case(config, seed))
            assert result.passed, [str(c) for c in result.failures]


def test_a_batchnorm_gradient_off_by_1e_6_is_still_rejected():
    def backward(dy, x, gamma, beta):
        dx, dgamma, dbeta = bn_backward(dy, x, gamma, beta)
        return dx, dgamma * (1 + 1e-6), dbeta
    wrong = Implementation("batchnorm, dgamma * (1 + 1e-6)", bn_forward, backward)
    result = check_case(BATCHNORM, wrong, BATCHNORM.make_case({"N": 2, "C": 2, "H": 3, "W": 3}, 0))
    assert {c.quantity for c in result.failures} == {"dgamma"}
    assert {c.oracle for c in result.failures} >= {"pytorch", "finite differences"}


# ---- exact zeros and exact constants: a floor from the inputs' scale -------------------------------------------

def _ce_forward(y, t):
    """-sum t ln y with y rounded through (y / 49) 49: a correct loss with one rounding of noise (1 - 2^-53 at 1)."""
    return np.asarray(-(t * np.log(y / 49 * 49)).sum())


def test_a_correct_cross_entropy_at_an_exact_zero_loss_passes():
    """K = 1: y = t = 1, the exact loss is 0; the tolerance must not collapse to 7.9e-323: it has a floor from the
    inputs' own rounding carried through the op, eps sum |dE/dy| |y| = eps."""
    case = CROSS_ENTROPY.make_case({"N": 2, "K": 1, "scale": 1.0, "offset": 0.0, "targets": "one-hot"}, 0)
    assert CROSS_ENTROPY.reference.forward(case.arrays["y"], case.arrays["t"]) == 0.0
    assert _ce_forward(case.arrays["y"], case.arrays["t"]) != 0.0
    impl = Implementation("cross-entropy through y / 49 * 49", _ce_forward, CROSS_ENTROPY.reference.backward)
    result = check_case(CROSS_ENTROPY, impl, case)
    assert result.passed, [str(c) for c in result.failures]
    forward = [c for c in result.comparisons if c.quantity == "forward" and c.oracle == "pytorch"]
    assert forward and forward[0].tolerance >= tolerance.eps_of("float64")


def test_a_constant_loss_still_rejects_a_gradient_off_by_2_to_the_minus_54_through_finite_differences():
    """Softmax cross-entropy of one class is exactly 0 whatever the logits: its gradient is exactly 0. A gradient
    of 2^-54 dE is wrong, and finite differences alone must say so: the floor comes from the inputs' rounding
    carried through the op (|dE/dz| |z| = 0 here), not from |z| alone."""
    def backward(dE, z, t):
        (dz,) = SOFTMAX_CE.reference.backward(dE, z, t)
        return (dz + 2.0 ** -54 * np.asarray(dE),)
    wrong = Implementation("softmax-CE gradient + 2^-54", SOFTMAX_CE.reference.forward, backward)
    for offset in (0.0, -800.0):
        case = SOFTMAX_CE.make_case({"N": 2, "K": 1, "scale": 1.0, "offset": offset, "targets": "one-hot"}, 3)
        result = check_case(SOFTMAX_CE, wrong, case, oracles=("finite differences",))
        assert [c.verdict for c in result.comparisons] == [FAIL], [str(c) for c in result.comparisons]
        correct = check_case(SOFTMAX_CE, SOFTMAX_CE.reference, case, oracles=("finite differences",))
        assert [c.verdict for c in correct.comparisons] == [PASS]
