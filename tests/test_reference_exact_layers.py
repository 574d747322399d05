"""The loop references of the layers added after the seeds' formulas (batch and layer norm, conv1d/conv3d, padding
modes, transposed and grouped convolution, dropout, log-softmax and the logit losses, pooling modes, ReLU's
variants, upsampling) compute torch's values exactly: each reference and its alternative derivations against
torch's autograd to 1e-10 of the scale, on fixed configurations that exercise each index (asymmetric strides,
paddings and dilations per axis, trailing rows no window reaches, batches and channels above 1), and hand-computed
cases for the subgradients, the borders and the size rules. The same spirit and helpers as
tests/test_reference_exact.py; fast (numpy loops and one torch call per case): this is the selection that
tools/mutation.py runs against every mutant of these modules (docs/mutation.md)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_gradcheck.reference import batchnorm as bn
from cnn_gradcheck.reference import conv_nd as cnd
from cnn_gradcheck.reference import conv_padding_modes as cpm
from cnn_gradcheck.reference import conv_transpose as ct
from cnn_gradcheck.reference import dropout as do
from cnn_gradcheck.reference import grouped_conv as gc
from cnn_gradcheck.reference import layernorm as ln
from cnn_gradcheck.reference import logit_losses as ll
from cnn_gradcheck.reference import pooling_modes as pm
from cnn_gradcheck.reference import relu_variants as rv
from cnn_gradcheck.reference import upsampling as up
from test_reference_exact import assert_close, assert_equals_torch  # tests/ is on sys.path

C = dict

# ---- every reference against torch autograd -------------------------------------------------------------------

CONV1D = [
    C(N=2, C_in=2, C_out=3, W=9, kw=3, sw=2, pw=1, dilw=2),
    C(N=1, C_in=1, C_out=1, W=4, kw=2, sw=1, pw=0, dilw=1),
    C(N=2, C_in=3, C_out=2, W=9, kw=2, sw=3, pw=0, dilw=1),     # rows 2, 5, 8: no window reads them
    C(N=1, C_in=2, C_out=2, W=5, kw=2, sw=2, pw=2, dilw=3),
]
CONV3D = [
    C(N=2, C_in=2, C_out=2, D=3, H=4, W=5, kd=2, kh=1, kw=2, sd=1, sh=2, sw=3, pd=1, ph=0, pw=1, dild=1, dilh=1,
      dilw=2),
    C(N=1, C_in=1, C_out=3, D=2, H=3, W=3, kd=1, kh=2, kw=2, sd=2, sh=1, sw=1, pd=0, ph=1, pw=0, dild=1, dilh=2,
      dilw=1),
    C(N=1, C_in=2, C_out=1, D=4, H=2, W=2, kd=2, kh=2, kw=1, sd=3, sh=1, sw=2, pd=0, ph=1, pw=1, dild=2, dilh=1,
      dilw=1),
]
PADDED = [
    C(N=2, C_in=2, C_out=3, H=4, W=5, kh=3, kw=2, sh=2, sw=1, ph=2, pw=1, dilh=1, dilw=2, padding_mode="reflect"),
    C(N=1, C_in=1, C_out=2, H=3, W=4, kh=2, kw=3, sh=1, sw=2, ph=2, pw=3, dilh=2, dilw=1, padding_mode="reflect"),
    C(N=2, C_in=2, C_out=1, H=3, W=2, kh=2, kw=2, sh=1, sw=3, ph=1, pw=3, dilh=1, dilw=1, padding_mode="replicate"),
    C(N=1, C_in=3, C_out=2, H=5, W=3, kh=3, kw=1, sh=3, sw=1, ph=2, pw=0, dilh=1, dilw=1, padding_mode="replicate"),
]
TRANSPOSE = [
    C(N=2, C_in=2, C_out=3, H=3, W=4, kh=3, kw=2, sh=2, sw=1, ph=1, pw=0, oh=1, ow=1, dilh=1, dilw=2),
    C(N=1, C_in=3, C_out=2, H=2, W=3, kh=2, kw=3, sh=1, sw=3, ph=0, pw=2, oh=1, ow=2, dilh=2, dilw=1),  # O >= S
    C(N=2, C_in=1, C_out=1, H=2, W=2, kh=1, kw=2, sh=3, sw=2, ph=0, pw=1, oh=2, ow=0, dilh=1, dilw=1),
    C(N=1, C_in=2, C_out=2, H=3, W=2, kh=2, kw=2, sh=1, sw=1, ph=0, pw=0, oh=0, ow=0, dilh=1, dilw=1),
    C(N=1, C_in=2, C_out=1, H=2, W=3, kh=2, kw=3, sh=2, sw=1, ph=1, pw=1, oh=0, ow=1, dilh=1, dilw=2),  # O >= S in w
]
GROUPED = [
    C(N=2, groups=2, C_in=4, C_out=6, H=5, W=6, kh=2, kw=3, sh=2, sw=1, ph=1, pw=0, dilh=1, dilw=2),
    C(N=1, groups=3, C_in=3, C_out=3, H=6, W=5, kh=3, kw=2, sh=1, sw=3, ph=0, pw=2, dilh=2, dilw=1),  # depthwise
    C(N=2, groups=1, C_in=2, C_out=2, H=7, W=4, kh=3, kw=2, sh=3, sw=2, ph=2, pw=1, dilh=1, dilw=1),
    C(N=1, groups=2, C_in=2, C_out=4, H=4, W=4, kh=2, kw=2, sh=1, sw=1, ph=0, pw=0, dilh=1, dilw=1),
]
BATCHNORM = [C(N=2, C=3, H=2, W=3, eps=1e-5, offset=0.0), C(N=1, C=2, H=3, W=2, eps=0.1, offset=10.0),
             C(N=3, C=1, H=1, W=2, eps=1e-5, offset=0.0)]
LAYERNORM = [C(N=3, K=4, eps=1e-5, offset=0.0), C(N=1, K=2, eps=0.1, offset=10.0)]
LAYERNORM2D = [C(N=2, C=2, H=2, W=3, dims=1, eps=1e-5, offset=0.0), C(N=2, C=2, H=3, W=2, dims=2, eps=0.1, offset=0.0),
               C(N=2, C=3, H=2, W=2, dims=3, eps=1e-5, offset=10.0)]
DROPOUT = [C(N=3, K=4, p=0.5), C(N=2, K=3, p=0.8), C(N=1, K=4, p=0.0), C(N=2, K=2, p=0.1)]
LOG_SOFTMAX = [C(N=3, K=4, offset=0.0), C(N=2, K=3, offset=800.0), C(N=1, K=1, offset=0.0)]
NLL = [C(N=3, K=4, reduction="mean"), C(N=2, K=3, reduction="sum")]
LOG_SOFTMAX_NLL = [C(N=3, K=4, offset=0.0, reduction="mean"), C(N=2, K=3, offset=-800.0, reduction="sum")]
BCE = [C(N=3, K=4, targets="soft", scale=1.0, reduction="mean"), C(N=2, K=3, targets="soft", scale=50.0,
                                                                   reduction="sum"),
       C(N=2, K=2, targets="hard", scale=1.0, reduction="sum")]
AVGPOOL = [
    C(N=2, C=2, H=5, W=6, kh=2, kw=3, sh=1, sw=2, ph=1, pw=1, ceil_mode=False, count_include_pad=True),
    C(N=2, C=2, H=5, W=6, kh=2, kw=3, sh=1, sw=2, ph=1, pw=1, ceil_mode=False, count_include_pad=False),
    C(N=1, C=3, H=6, W=5, kh=3, kw=2, sh=2, sw=2, ph=1, pw=1, ceil_mode=True, count_include_pad=True),
    C(N=1, C=3, H=6, W=5, kh=3, kw=2, sh=2, sw=2, ph=1, pw=1, ceil_mode=True, count_include_pad=False),
    C(N=2, C=1, H=8, W=7, kh=2, kw=2, sh=3, sw=2, ph=0, pw=1, ceil_mode=True, count_include_pad=True),
    C(N=1, C=2, H=7, W=5, kh=3, kw=2, sh=3, sw=3, ph=0, pw=0, ceil_mode=False, count_include_pad=True),
]
MAXPOOL_CEIL = [
    C(N=2, C=2, H=5, W=6, kh=2, kw=3, sh=2, sw=2, ph=1, pw=0, dilh=1, dilw=1),
    C(N=1, C=3, H=6, W=7, kh=2, kw=3, sh=2, sw=3, ph=0, pw=1, dilh=2, dilw=1),
    C(N=2, C=1, H=7, W=4, kh=3, kw=2, sh=3, sw=1, ph=1, pw=1, dilh=1, dilw=2),
]
GLOBAL = [C(N=2, C=3, H=2, W=3), C(N=1, C=1, H=1, W=1)]
LEAKY = [C(N=3, K=4, slope=0.01), C(N=2, K=3, slope=-0.5), C(N=2, K=2, slope=0.3)]
ELU = [C(N=3, K=4, alpha=1.0), C(N=2, K=3, alpha=0.5), C(N=2, K=2, alpha=2.0)]
GELU = [C(N=3, K=4)]
UPSAMPLE = [C(N=2, C=2, H=3, W=2, sh=2, sw=3), C(N=1, C=3, H=1, W=3, sh=3, sw=1), C(N=2, C=1, H=2, W=1, sh=1, sw=2)]

IMPLEMENTATIONS = {
    "conv1d": [(cnd.convnd_forward, cnd.convnd_backward),
               (cnd.conv1d_via_conv2d_forward, cnd.conv1d_via_conv2d_backward)],
    "conv3d": [(cnd.convnd_forward, cnd.convnd_backward)],
    "conv2d_padded": [(cpm.conv2d_padded_forward, cpm.conv2d_padded_backward)],
    "conv_transpose2d": [(ct.conv_transpose2d_forward, ct.conv_transpose2d_backward),
                         (ct.conv_transpose2d_via_conv_forward, ct.conv_transpose2d_via_conv_backward)],
    "grouped_conv2d": [(gc.grouped_conv2d_forward, gc.grouped_conv2d_backward),
                       (gc.grouped_conv2d_via_groups_forward, gc.grouped_conv2d_via_groups_backward)],
    "batchnorm2d": [(bn.batchnorm2d_forward, bn.batchnorm2d_backward)],
    "layernorm": [(ln.layernorm_forward, ln.layernorm_backward)],
    "layernorm2d": [(ln.layernorm_forward, ln.layernorm_backward)],
    "dropout": [(do.dropout_forward, do.dropout_backward)],
    "log_softmax": [(ll.log_softmax_forward, ll.log_softmax_backward)],
    "nll_loss": [(ll.nll_loss_forward, ll.nll_loss_backward)],
    "log_softmax_nll": [(ll.log_softmax_nll_forward, ll.log_softmax_nll_backward)],
    "bce_with_logits": [(ll.bce_with_logits_forward, ll.bce_with_logits_backward)],
    "avgpool2d": [(pm.avgpool2d_forward, pm.avgpool2d_backward)],
    "maxpool2d_ceil": [(pm.maxpool2d_ceil_forward, pm.maxpool2d_ceil_backward)],
    "global_avgpool2d": [(pm.global_avgpool2d_forward, pm.global_avgpool2d_backward)],
    "leaky_relu": [(rv.leaky_relu_forward, rv.leaky_relu_backward)],
    "elu": [(rv.elu_forward, rv.elu_backward)],
    "gelu": [(rv.gelu_forward, rv.gelu_backward)],
    "upsample_nearest": [(up.upsample_nearest_forward, up.upsample_nearest_backward)],
    "upsample_bilinear": [(up.upsample_bilinear_forward, up.upsample_bilinear_backward)],
}
CONFIGS = {"conv1d": CONV1D, "conv3d": CONV3D, "conv2d_padded": PADDED, "conv_transpose2d": TRANSPOSE,
           "grouped_conv2d": GROUPED, "batchnorm2d": BATCHNORM, "layernorm": LAYERNORM, "layernorm2d": LAYERNORM2D,
           "dropout": DROPOUT, "log_softmax": LOG_SOFTMAX, "nll_loss": NLL, "log_softmax_nll": LOG_SOFTMAX_NLL,
           "bce_with_logits": BCE, "avgpool2d": AVGPOOL, "maxpool2d_ceil": MAXPOOL_CEIL, "global_avgpool2d": GLOBAL,
           "leaky_relu": LEAKY, "elu": ELU, "gelu": GELU, "upsample_nearest": UPSAMPLE,
           "upsample_bilinear": UPSAMPLE}
CASES = [(op, i, k) for op, impls in IMPLEMENTATIONS.items() for k in range(len(impls))
         for i in range(len(CONFIGS[op]))]


@pytest.mark.parametrize("op, i, k", CASES, ids=[f"{op}-{k}-config{i}" for op, i, k in CASES])
def test_reference_equals_torch_autograd(op, i, k):
    assert_equals_torch(op, CONFIGS[op][i], i + 1, *IMPLEMENTATIONS[op][k])


# ---- hand-computed cases ----------------------------------------------------------------------------------------

def test_leaky_relu_and_elu_take_the_left_subgradient_at_zero():
    x = np.array([[-2.0, 0.0, 3.0]])
    dy = np.array([[1.0, 2.0, 4.0]])
    np.testing.assert_array_equal(rv.leaky_relu_forward(x, 0.3), [[0.3 * -2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(rv.leaky_relu_backward(dy, x, 0.3)[0], [[0.3, 0.6, 4.0]])
    np.testing.assert_array_equal(rv.elu_forward(x, 0.5), [[0.5 * math.expm1(-2.0), 0.0, 3.0]])
    np.testing.assert_array_equal(rv.elu_backward(dy, x, 0.5)[0], [[0.5 * math.exp(-2.0), 1.0, 4.0]])


def test_gelu_values_by_hand():
    x = np.array([0.0, 1.0, -1.0, -10.0])
    y = rv.gelu_forward(x)
    assert y[0] == 0.0
    assert abs(y[1] - 0.8413447460685429) <= 1e-15 and abs(y[2] + 0.15865525393145707) <= 1e-15
    assert y[3] < 0 and abs(y[3] / (-10 * 7.619853024160527e-24) - 1) <= 1e-12   # Phi(-10): no cancellation
    (g,) = rv.gelu_backward(np.ones(4), x)
    assert g[0] == 0.5
    assert abs(g[1] - (0.8413447460685429 + 0.24197072451914337)) <= 1e-15
    assert rv.phi(0.0) == 1 / math.sqrt(2 * math.pi) and rv.Phi(0.0) == 0.5


def test_relu_variant_defaults_are_torchs():
    x = np.array([[-1.5, 0.5, -0.25]])
    dy = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(rv.leaky_relu_forward(x), F.leaky_relu(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(rv.leaky_relu_backward(dy, x)[0], [[0.01, 2.0, 0.03]])
    assert_close(rv.elu_forward(x), F.elu(torch.tensor(x)).numpy(), "elu default")
    assert_close(rv.elu_backward(dy, x)[0], [[math.exp(-1.5), 2.0, 3 * math.exp(-0.25)]], "elu default backward")


def test_dropout_scales_the_kept_values_and_defaults_to_one_half():
    x = np.array([[1.0, -2.0], [3.0, 4.0]])
    mask = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(do.dropout_forward(x, mask), [[2.0, 0.0], [0.0, 8.0]])
    np.testing.assert_array_equal(do.dropout_backward(x, x, mask)[0], [[2.0, 0.0], [0.0, 8.0]])
    np.testing.assert_array_equal(do.dropout_forward(x, mask, 0.75), [[4.0, 0.0], [0.0, 16.0]])


def test_logit_losses_by_hand_and_their_default_mean():
    y = np.log(np.array([[0.5, 0.25, 0.25], [0.125, 0.75, 0.125]]))
    t = np.array([1.0, 1.0])
    assert ll.nll_loss_forward(y, t) == -(y[0, 1] + y[1, 1]) / 2
    assert ll.nll_loss_forward(y, t, "sum") == -(y[0, 1] + y[1, 1])
    np.testing.assert_array_equal(ll.nll_loss_backward(np.array(3.0), y, t)[0], [[0, -1.5, 0], [0, -1.5, 0]])
    z = np.array([[0.0, math.log(2.0), math.log(3.0)], [700.0, 700.0, 0.0]])
    np.testing.assert_allclose(ll.log_softmax_forward(z), [np.log([1 / 6, 2 / 6, 3 / 6]), [math.log(0.5)] * 2
                                                           + [-700 - math.log(2.0)]], rtol=1e-15)
    (dz,) = ll.log_softmax_nll_backward(np.array(2.0), z, np.array([2.0, 0.0]))
    np.testing.assert_allclose(dz, [[1 / 6, 2 / 6, -1 / 2], [-1 / 2, 1 / 2, 0.0]], rtol=1e-14, atol=1e-300)
    assert ll.log_softmax_nll_forward(z, np.array([2.0, 0.0])) == pytest.approx(
        (math.log(2.0) + math.log(2.0)) / 2, rel=1e-15)
    zb = np.array([[0.0, 100.0, -100.0]])
    tb = np.array([[0.5, 1.0, 1.0]])
    assert ll.bce_with_logits_forward(zb, tb) == pytest.approx((math.log(2.0) + 0.0 + 100.0) / 3, rel=1e-15)
    np.testing.assert_allclose(ll.bce_with_logits_backward(np.array(3.0), zb, tb)[0], [[0.0, 0.0, -1.0]],
                               atol=1e-40)
    for f, args in ((ll.nll_loss_forward, (y, t)), (ll.log_softmax_nll_forward, (z, t)),
                    (ll.bce_with_logits_forward, (zb, tb))):
        with pytest.raises(ValueError, match="reduction must be"):
            f(*args, reduction="none")


def test_norms_by_hand_and_their_default_eps():
    x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(1, 1, 2, 2)   # mu 4, var 5
    y = bn.batchnorm2d_forward(x, np.array([2.0]), np.array([1.0]), eps=0.0)
    np.testing.assert_allclose(y.ravel(), 2 * np.array([-3.0, -1.0, 1.0, 3.0]) / math.sqrt(5) + 1, rtol=1e-15)
    mu, sigma = bn.batch_statistics(x, 4.0)
    assert mu[0] == 4.0 and sigma[0] == 3.0
    mu, sigma = ln.row_statistics(np.array([[1.0, 3.0, 5.0, 7.0]]), 4.0)
    assert mu[0] == 4.0 and sigma[0] == 3.0
    gamma, beta, dy = np.array([1.5]), np.array([0.5]), np.array([4.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(bn.batchnorm2d_forward(x, gamma, beta), bn.batchnorm2d_forward(x, gamma, beta,
                                                                                                 1e-5))
    for got, expected in zip(bn.batchnorm2d_backward(dy, x, gamma, beta), bn.batchnorm2d_backward(dy, x, gamma, beta,
                                                                                                  1e-5)):
        np.testing.assert_array_equal(got, expected)
    x2, g2, b2 = x.reshape(2, 2), np.array([1.5, -1.0]), np.array([0.5, 2.0])
    np.testing.assert_array_equal(ln.layernorm_forward(x2, g2, b2, (2,)), ln.layernorm_forward(x2, g2, b2, (2,), 1e-5))
    for got, expected in zip(ln.layernorm_backward(x2, x2, g2, b2, (2,)),
                             ln.layernorm_backward(x2, x2, g2, b2, (2,), 1e-5)):
        np.testing.assert_array_equal(got, expected)
    assert_close(ln.layernorm_forward(x2, g2, b2, (2,)),
                 F.layer_norm(torch.tensor(x2), (2,), torch.tensor(g2), torch.tensor(b2)).numpy(), "eps default")


def test_padding_sources_reflect_without_repeating_the_edge_and_replicate_with_it():
    assert [cpm.source(r, 3, "reflect") for r in range(-2, 5)] == [2, 1, 0, 1, 2, 1, 0]
    assert [cpm.source(r, 3, "replicate") for r in range(-2, 5)] == [0, 0, 0, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="padding_mode must be"):
        cpm.source(0, 3, "zeros")
    x = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    np.testing.assert_array_equal(cpm.pad(x, (0, 2), "reflect")[0, 0], [[3, 2, 1, 2, 3, 2, 1]])
    np.testing.assert_array_equal(cpm.fold(np.ones((1, 1, 1, 7)), x.shape, (0, 2), "reflect")[0, 0], [[2, 3, 2]])
    np.testing.assert_array_equal(cpm.fold(np.ones((1, 1, 3, 5)), x.shape, 1, "replicate")[0, 0], [[6, 3, 6]])


def test_conv_default_hyperparameters_are_torchs():
    rng = np.random.default_rng(5)
    x3, w3, b = rng.standard_normal((2, 2, 5)), rng.standard_normal((3, 2, 2)), rng.standard_normal(3)
    dy = rng.standard_normal((2, 3, 4))
    for fwd, bwd in IMPLEMENTATIONS["conv1d"]:
        assert_close(fwd(x3, w3, b), F.conv1d(*map(torch.tensor, (x3, w3, b))).numpy(), "conv1d defaults")
        for got, expected in zip(bwd(dy, x3, w3, b), bwd(dy, x3, w3, b, 1, 0, 1)):
            np.testing.assert_array_equal(got, expected)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 2, 2))
    dy2 = rng.standard_normal((1, 2, 3, 3))
    explicit = {"stride": 1, "padding": 0, "dilation": 1}
    for fwd, bwd in IMPLEMENTATIONS["grouped_conv2d"]:
        assert_close(fwd(x, w, b[:2]), fwd(x, w, b[:2], **explicit, groups=1), "grouped defaults")
        for got, expected in zip(bwd(dy2, x, w, b[:2]), bwd(dy2, x, w, b[:2], **explicit, groups=1)):
            np.testing.assert_array_equal(got, expected)
    xp = rng.standard_normal((1, 2, 4, 4))
    np.testing.assert_array_equal(cpm.conv2d_padded_forward(xp, w, b[:2], padding=1),
                                  cpm.conv2d_padded_forward(xp, w, b[:2], 1, 1, 1, "reflect"))
    np.testing.assert_array_equal(cpm.conv2d_padded_forward(xp, w, b[:2]),
                                  cpm.conv2d_padded_forward(xp, w, b[:2], 1, 0, 1, "reflect"))
    dyp = rng.standard_normal((1, 2, 5, 5))
    for got, expected in zip(cpm.conv2d_padded_backward(dyp, xp, w, b[:2], padding=1),
                             cpm.conv2d_padded_backward(dyp, xp, w, b[:2], 1, 1, 1, "reflect")):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(cpm.conv2d_padded_backward(dy2, xp, w, b[:2]),
                             cpm.conv2d_padded_backward(dy2, xp, w, b[:2], 1, 0, 1, "reflect")):
        np.testing.assert_array_equal(got, expected)
    xt = rng.standard_normal((1, 2, 3, 3))
    dyt = rng.standard_normal((1, 2, 4, 4))
    for fwd, bwd in IMPLEMENTATIONS["conv_transpose2d"]:
        assert_close(fwd(xt, w, b[:2]), F.conv_transpose2d(*map(torch.tensor, (xt, w, b[:2]))).numpy(),
                     "conv_transpose2d defaults")
        for got, expected in zip(bwd(dyt, xt, w, b[:2]), bwd(dyt, xt, w, b[:2], 1, 0, 0, 1)):
            np.testing.assert_array_equal(got, expected)


def test_transposed_convolution_scatters_each_input_cell():
    x = np.array([[[[1.0, 2.0]]]])
    w = np.array([[[[1.0, 10.0]]]])
    # stride 3, output_padding 1: 1 10 0 2 20 then one row of bias only
    for fwd, _ in IMPLEMENTATIONS["conv_transpose2d"]:
        np.testing.assert_array_equal(fwd(x, w, np.array([0.5]), stride=3, output_padding=(0, 1))[0, 0],
                                      [[1.5, 10.5, 0.5, 2.5, 20.5, 0.5]])
        np.testing.assert_array_equal(fwd(x, w, np.array([0.0]), stride=3, padding=(0, 1))[0, 0], [[10, 0, 2]])
    assert ct.out_size(2, 2, 3, 0, 1, 2) == 7 and ct.out_size(1, 1, 1, 0, 0, 1) == 1


def test_grouped_convolution_reads_only_its_groups_channels():
    x = np.zeros((1, 4, 1, 1))
    x[0, :, 0, 0] = [1.0, 2.0, 3.0, 4.0]
    w = np.ones((4, 2, 1, 1))                              # groups 2: maps 0, 1 read channels 0, 1; maps 2, 3 read 2, 3
    for fwd, bwd in IMPLEMENTATIONS["grouped_conv2d"]:
        np.testing.assert_array_equal(fwd(x, w, np.zeros(4), groups=2)[0, :, 0, 0], [3, 3, 7, 7])
        dx, dw, db = bwd(np.arange(1.0, 5.0).reshape(1, 4, 1, 1), x, w, np.zeros(4), groups=2)
        np.testing.assert_array_equal(dx[0, :, 0, 0], [3, 3, 7, 7])
        np.testing.assert_array_equal(dw[:, :, 0, 0], [[1, 2], [2, 4], [9, 12], [12, 16]])
        np.testing.assert_array_equal(db, [1, 2, 3, 4])


def test_pooled_sizes_in_floor_and_ceil_mode():
    assert pm.pooled_size(5, 2, 2) == 2 and pm.pooled_size(5, 2, 2, ceil_mode=True) == 3
    assert pm.pooled_size(5, 2, 2, 1, ceil_mode=True) == 3        # the 4th window would start at H + P: dropped
    assert pm.pooled_size(6, 3, 2, 1, ceil_mode=True) == 4 and pm.pooled_size(6, 3, 2, 1) == 3
    assert pm.pooled_size(7, 2, 3, 0, 2, ceil_mode=True) == 3 and pm.pooled_size(7, 2, 3, 0, 2) == 2
    assert pm.pooled_size(4, 2, 2, ceil_mode=True) == 2                  # divisible: ceil = floor
    assert pm.ceil_extension(5, 2, 2, 0, 1) == 1 and pm.ceil_extension(4, 2, 2, 0, 1) == 0
    assert pm.ceil_extension(6, 3, 2, 1, 1) == 1 and pm.ceil_extension(5, 2, 2, 1, 1) == 0
    assert pm.ceil_extension(7, 2, 3, 0, 2) == 2                   # the last window reads 6 and 8
    assert pm.window_rows(3, 6, 3, 2, 1) == (5, 6, 2)                   # clipped at H + P, the padding counts
    assert pm.window_rows(0, 6, 3, 2, 1) == (0, 2, 3)


def test_windows_must_read_a_real_cell():
    assert pm.windows_read_input(1, 2, 1, 1, 2) is False      # padded rows 0 and 2 around the single real row 1
    assert pm.windows_read_input(2, 2, 1, 1, 2) is True
    assert pm.windows_read_input(1, 2, 1, 1) is True            # dilation 1 by default: padded rows 0 and 1
    assert pm.windows_read_input(1, 1, 1) is True               # no padding by default
    # floor mode by default; ceil mode adds a window that starts in a wide left padding and skips the input
    assert pm.windows_read_input(2, 3, 2, 3, 3) is True
    assert pm.windows_read_input(2, 3, 2, 3, 3, ceil_mode=True) is False
    assert pm.windows_read_input(3, 1, 2, 0, 1, ceil_mode=True) is True
    assert pm.windows_read_input(2, 2, 3, 1, 2, ceil_mode=False) is True
    assert pm.windows_read_input(2, 2, 2, 1, 3) is False      # one window, padded rows 0 and 3; real rows 1, 2
    with pytest.raises(ValueError, match="reads no real cell"):
        pm.maxpool2d_ceil_forward(np.ones((1, 1, 1, 3)), (2, 1), 1, (1, 0), (2, 1))
    with pytest.raises(ValueError, match="reads no real cell"):
        pm.maxpool2d_ceil_backward(np.ones((1, 1, 2, 3)), np.ones((1, 1, 3, 1)), (1, 2), 1, (0, 1), (1, 2))
    with pytest.raises(ValueError, match="reads no real cell"):   # only ceil mode's extra window skips the input
        pm.maxpool2d_ceil_forward(np.ones((1, 1, 2, 1)), (3, 1), (2, 1), (3, 0), (3, 1))


def test_average_pooling_divisors_by_hand():
    x = np.arange(1.0, 7.0).reshape(1, 1, 1, 6)
    args = ((1, 3), (1, 2), (0, 1))
    # windows over padded columns -1..1, 1..3, 3..5, 5..7 (ceil mode; 7 lies past the padded input)
    np.testing.assert_array_equal(pm.avgpool2d_forward(x, *args, ceil_mode=True)[0, 0],
                                  [[3 / 3, 9 / 3, 15 / 3, 6 / 2]])
    np.testing.assert_array_equal(pm.avgpool2d_forward(x, *args, ceil_mode=True, count_include_pad=False)[0, 0],
                                  [[3 / 2, 9 / 3, 15 / 3, 6 / 1]])
    np.testing.assert_array_equal(pm.avgpool2d_forward(x, *args), pm.avgpool2d_forward(x, *args, False, True))
    np.testing.assert_array_equal(pm.avgpool2d_forward(x, (1, 2), (1, 2)), [[[[1.5, 3.5, 5.5]]]])
    dy = np.array([[[[3.0, 3.0, 3.0, 2.0]]]])
    np.testing.assert_array_equal(pm.avgpool2d_backward(dy, x, *args, ceil_mode=True)[0][0, 0],
                                  [[1, 1 + 1, 1, 1 + 1, 1, 1 + 1]])
    np.testing.assert_array_equal(pm.avgpool2d_backward(dy, x, *args)[0],
                                  pm.avgpool2d_backward(dy, x, *args, False, True)[0])
    np.testing.assert_array_equal(pm.avgpool2d_backward(dy[..., :3], x, (1, 2), (1, 2))[0],
                                  [[[[1.5, 1.5, 1.5, 1.5, 1.5, 1.5]]]])
    xg = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(pm.global_avgpool2d_forward(xg), [[[[2.5]]]])
    np.testing.assert_array_equal(pm.global_avgpool2d_backward(np.array([[[[12.0]]]]), xg)[0],
                                  np.full((1, 1, 2, 3), 2.0))


def test_max_pooling_in_ceil_mode_by_hand_and_its_defaults():
    x = np.array([[[[1.0, 5.0, 2.0, 4.0, 3.0]]]])
    np.testing.assert_array_equal(pm.maxpool2d_ceil_forward(x, (1, 2), (1, 2))[0, 0], [[5, 4, 3]])
    (dx,) = pm.maxpool2d_ceil_backward(np.array([[[[1.0, 2.0, 3.0]]]]), x, (1, 2), (1, 2))
    np.testing.assert_array_equal(dx, [[[[0, 1, 0, 2, 3]]]])
    np.testing.assert_array_equal(pm.maxpool2d_ceil_forward(x, (1, 2), (1, 2)),
                                  pm.maxpool2d_ceil_forward(x, (1, 2), (1, 2), 0, 1))
    np.testing.assert_array_equal(pm.maxpool2d_ceil_backward(np.ones((1, 1, 1, 3)), x, (1, 2), (1, 2))[0],
                                  pm.maxpool2d_ceil_backward(np.ones((1, 1, 1, 3)), x, (1, 2), (1, 2), 0, 1)[0])


def test_bilinear_sources_and_nearest_blocks_by_hand():
    assert up.source(0, 2, 3) == (0, 1, 0.0)                       # r = -0.25 clamped to 0
    assert up.source(1, 2, 3) == (0, 1, 0.25)
    assert up.source(5, 2, 3) == (2, 2, 0.25)                      # past the last row: u1 clamped
    assert up.source(2, 3, 1) == (0, 0, pytest.approx(1 / 3, abs=1e-15))
    x = np.array([[[[1.0, 3.0]]]])
    np.testing.assert_allclose(up.upsample_bilinear_forward(x, (1, 2))[0, 0], [[1.0, 1.5, 2.5, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(up.upsample_bilinear_backward(np.array([[[[1.0, 1.0, 1.0, 1.0]]]]), x, (1, 2))[0],
                               [[[[2.0, 2.0]]]], rtol=1e-15)
    np.testing.assert_array_equal(up.upsample_nearest_forward(x, (2, 1))[0, 0], [[1, 3], [1, 3]])
    np.testing.assert_array_equal(up.upsample_nearest_backward(np.arange(8.0).reshape(1, 1, 2, 4), x, 2)[0],
                                  [[[[0 + 1 + 4 + 5, 2 + 3 + 6 + 7]]]])
