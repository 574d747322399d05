"""The loop references compute the derivations' values exactly: small cases worked out by hand, every reference
against torch's autograd on fixed configurations that exercise each index (asymmetric strides, paddings and
dilations, trailing rows no window reaches, batches and channels above 1), and the corner cases the docstrings
promise (ties, x = 0, logits in the hundreds). Fast, numpy and one torch call per case: this is the selection that
tools/mutation.py runs against every mutant of reference/ (docs/mutation.md)."""
import math

import numpy as np
import pytest
import torch

from cnn_gradcheck.reference import activations as act
from cnn_gradcheck.reference import conv2d as cv
from cnn_gradcheck.reference import conv_matrix as cm
from cnn_gradcheck.reference import dense, losses, network, pooling, subsampling
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Case

# ---- every reference against torch autograd -------------------------------------------------------------------

C = dict  # configuration literals below

CONV = [
    C(N=1, C_in=1, C_out=1, H=3, W=3, kh=2, kw=2, sh=1, sw=1, ph=0, pw=0, dilh=1, dilw=1),
    C(N=2, C_in=2, C_out=3, H=5, W=6, kh=2, kw=3, sh=2, sw=1, ph=1, pw=0, dilh=1, dilw=2),
    C(N=1, C_in=3, C_out=2, H=6, W=5, kh=3, kw=2, sh=1, sw=3, ph=0, pw=2, dilh=2, dilw=1),
    C(N=2, C_in=1, C_out=2, H=7, W=7, kh=3, kw=3, sh=3, sw=2, ph=2, pw=1, dilh=1, dilw=1),  # rows no window reads
    C(N=1, C_in=2, C_out=1, H=4, W=8, kh=1, kw=2, sh=2, sw=3, ph=1, pw=3, dilh=3, dilw=2),
]
POOL = [
    C(N=2, C=2, H=5, W=6, kh=2, kw=3, sh=1, sw=2, ph=1, pw=1),
    C(N=1, C=3, H=7, W=5, kh=3, kw=2, sh=2, sw=3, ph=1, pw=0),
    C(N=2, C=1, H=8, W=7, kh=2, kw=2, sh=3, sw=2, ph=0, pw=1),   # stride > kernel: cells between windows
]
MEANPOOL = [{**c, "ph": 0, "pw": 0} for c in POOL]
SUBSAMPLING = [C(N=2, C=2, scale=2, H=5, W=4), C(N=1, C=3, scale=3, H=6, W=8), C(N=2, C=1, scale=1, H=2, W=3)]
ROWS = [C(N=1, K=1, offset=0.0), C(N=3, K=4, offset=0.0), C(N=2, K=3, offset=800.0), C(N=2, K=3, offset=-800.0)]
LOSS = [C(N=1, K=1, scale=1.0, offset=0.0, targets="one-hot"), C(N=3, K=4, scale=1.0, offset=0.0, targets="soft"),
        C(N=2, K=3, scale=300.0, offset=800.0, targets="soft"), C(N=2, K=3, scale=1.0, offset=-800.0,
                                                                  targets="one-hot")]
TOOLBOX = [C(N=2, C0=2, C1=2, C2=3, k1=3, k2=2, s1=2, s2=1, Oh=1, Ow=2, classes=3, H=0, W=0),
           C(N=1, C0=1, C1=1, C2=1, k1=2, k2=2, s1=1, s2=2, Oh=2, Ow=1, classes=2, H=0, W=0)]
for c in TOOLBOX:  # the sizes the toolbox needs (every subsampling scale divides its map), as the spec builds them
    for axis in "hw":
        c[axis.upper()] = (c[f"O{axis}"] * c["s2"] + c["k2"] - 1) * c["s1"] + c["k1"] - 1
RELU_CNN = [C(N=2, C0=2, C1=2, k=2, pool=2, Oh=2, Ow=1, classes=3, H=5, W=3),
            C(N=1, C0=1, C1=3, k=3, pool=1, Oh=1, Ow=2, classes=2, H=3, W=4)]

IMPLEMENTATIONS = {
    "conv2d": [(cv.correlate2d_forward, cv.correlate2d_backward), (cm.conv_matrix_forward, cm.conv_matrix_backward),
               (cm.im2col_forward, cm.im2col_backward)],
    "convolve2d": [(cv.convolve2d_forward, cv.convolve2d_backward),
                   (cv.convolve2d_via_correlation_forward, cv.convolve2d_via_correlation_backward)],
    "maxpool2d": [(pooling.maxpool2d_forward, pooling.maxpool2d_backward)],
    "meanpool2d": [(pooling.meanpool2d_forward, pooling.meanpool2d_backward)],
    "subsampling": [(subsampling.subsampling_forward, subsampling.subsampling_backward)],
    "dense": [(dense.dense_forward, dense.dense_backward)],
    "relu": [(act.relu_forward, act.relu_backward)],
    "sigmoid": [(act.sigmoid_forward, act.sigmoid_backward)],
    "tanh": [(act.tanh_forward, act.tanh_backward)],
    "softmax": [(act.softmax_forward, act.softmax_backward)],
    "mse": [(losses.mse_forward, losses.mse_backward)],
    "cross_entropy": [(losses.cross_entropy_forward, losses.cross_entropy_backward)],
    "softmax_cross_entropy": [(losses.softmax_cross_entropy_forward, losses.softmax_cross_entropy_backward)],
    "toolbox_mse": [(losses.toolbox_mse_forward, losses.toolbox_mse_backward)],
    "toolbox_cnn": [(network.toolbox_cnn_forward, network.toolbox_cnn_backward)],
    "relu_cnn": [(network.relu_cnn_forward, network.relu_cnn_backward)],
}
CONFIGS = {"conv2d": CONV, "convolve2d": CONV, "maxpool2d": POOL, "meanpool2d": MEANPOOL,
           "subsampling": SUBSAMPLING, "dense": [C(N=1, m=1, n=1), C(N=3, m=2, n=4), C(N=2, m=4, n=3)],
           "relu": ROWS[:2], "sigmoid": ROWS, "tanh": ROWS[:2], "softmax": ROWS, "mse": LOSS,
           "cross_entropy": LOSS[:2], "softmax_cross_entropy": LOSS, "toolbox_mse": LOSS,
           "toolbox_cnn": TOOLBOX, "relu_cnn": RELU_CNN}
CASES = [(op, i, k) for op, impls in IMPLEMENTATIONS.items() for k in range(len(impls))
         for i in range(len(CONFIGS[op]))]


def torch_values(spec, case):
    """y and the gradients for upstream dy, by torch.autograd in float64."""
    tensors = {n: torch.tensor(a, dtype=torch.float64, requires_grad=n in spec.differentiable)
               for n, a in case.arrays.items()}
    y = spec.torch_forward(*[tensors[n] for n in spec.arg_names], **spec.hyper(case.config))
    grads = torch.autograd.grad(y, [tensors[n] for n in spec.differentiable],
                                grad_outputs=torch.tensor(case.dy, dtype=torch.float64), allow_unused=True)
    return y.detach().numpy(), [np.zeros_like(case.arrays[n]) if g is None else g.numpy()
                                for n, g in zip(spec.differentiable, grads)]


def assert_close(got, expected, what):
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    assert np.max(np.abs(got - expected), initial=0.0) <= 1e-10 * scale, f"{what}: {got} != {expected}"


@pytest.mark.parametrize("op, i, k", CASES, ids=[f"{op}-{k}-config{i}" for op, i, k in CASES])
def test_reference_equals_torch_autograd(op, i, k):
    assert_equals_torch(op, CONFIGS[op][i], i + 1, *IMPLEMENTATIONS[op][k])


def assert_equals_torch(op, config, seed, forward, backward):
    """forward and backward (tuple or dict of gradients) equal torch autograd on the op's case, to 1e-10."""
    spec = get_spec(op)
    case = spec.make_case(config, seed=seed)
    arrays = [case.arrays[n] for n in spec.arg_names]
    hyper = spec.hyper(case.config)
    y, grads = torch_values(spec, case)
    assert_close(forward(*arrays, **hyper), y, f"{op} forward")
    got = backward(case.dy, *arrays, **hyper)
    got = [got[n] for n in spec.differentiable] if isinstance(got, dict) else list(got)
    assert len(got) == len(grads)
    for name, g, e in zip(spec.differentiable, got, grads):
        assert_close(g, e, f"{op} d{name}")


# ---- hand-computed cases ----------------------------------------------------------------------------------------

def test_relu_passes_positive_values_and_its_gradient_is_zero_at_zero():
    x = np.array([[-1.5, 0.0, 2.0], [3.0, -0.25, -2.0]])
    dy = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(act.relu_forward(x), [[0, 0, 2], [3, 0, 0]])
    np.testing.assert_array_equal(act.relu_backward(dy, x)[0], [[0, 0, 3], [4, 0, 0]])  # 0 at x = 0 (subgradient)


def test_sigmoid_values_and_no_overflow_at_800():
    x = np.array([[0.0, math.log(3.0), -math.log(3.0)]])
    np.testing.assert_allclose(act.sigmoid_forward(x), [[0.5, 0.75, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(act.sigmoid_backward(np.array([[2.0, 2.0, 4.0]]), x)[0],
                               [[0.5, 0.375, 0.75]], rtol=1e-15)           # dy f (1 - f)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(act.sigmoid(np.array([800.0, -800.0, 30.0])),
                                      [1.0, 0.0, 1 / (1 + math.exp(-30.0))])


def test_tanh_gradient_is_one_minus_tanh_squared():
    x = np.array([[math.atanh(0.5), 0.0, -math.atanh(0.5)]])
    np.testing.assert_allclose(act.tanh_forward(x), [[0.5, 0.0, -0.5]], rtol=1e-15)
    np.testing.assert_allclose(act.tanh_backward(np.array([[2.0, 3.0, -4.0]]), x)[0], [[1.5, 3.0, -3.0]],
                               rtol=1e-15)


def test_softmax_of_logs_and_of_logits_in_the_hundreds():
    x = np.array([[0.0, math.log(2.0), math.log(5.0)], [1000.0, 1000.0 + math.log(2.0), 1000.0 + math.log(5.0)],
                  [-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = act.softmax_forward(x)
        dx = act.softmax_backward(np.array([[1.0, 0.0, 0.0], [0.0, 8.0, 0.0], [1.0, 1.0, 1.0]]), x)[0]
    np.testing.assert_allclose(y, [[1 / 8, 2 / 8, 5 / 8], [1 / 8, 2 / 8, 5 / 8], [0.0, 0.0, 1.0]], rtol=1e-12)
    # y_i (dy_i - sum_k y_k dy_k): the full Jacobian, not its diagonal
    np.testing.assert_allclose(dx, [[7 / 64, -2 / 64, -5 / 64], [-2 / 8, 2 * 6 / 8, -10 / 8], [0.0, 0.0, 0.0]],
                               rtol=1e-12, atol=1e-300)  # 1000 + ln 2 rounds at eps * 1000


def test_losses_on_hand_computed_rows():
    y, t = np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]])
    assert losses.mse_forward(y, t) == 2.5 and losses.mse_forward(y, t).shape == ()
    np.testing.assert_array_equal(losses.mse_backward(np.array(2.0), y, t)[0], [[2.0, -4.0]])
    p, t = np.array([[0.25, 0.5]]), np.array([[1.0, 2.0]])
    assert losses.cross_entropy_forward(p, t) == pytest.approx(4 * math.log(2.0), rel=1e-15)
    np.testing.assert_array_equal(losses.cross_entropy_backward(np.array(3.0), p, t)[0], [[-12.0, -12.0]])
    y, t = np.array([[1.0], [3.0]]), np.array([[0.0], [0.5]])      # toolbox: 1/2 sum e^2 / N
    assert losses.toolbox_mse_forward(y, t) == pytest.approx((0.5 + 0.5 * 6.25) / 2, rel=1e-15)
    np.testing.assert_allclose(losses.toolbox_mse_backward(np.array(2.0), y, t)[0], [[1.0], [2.5]], rtol=1e-15)


def test_softmax_cross_entropy_with_soft_targets_and_logits_in_the_hundreds():
    for shift in (0.0, 800.0, -800.0):
        z = np.array([[0.0, math.log(3.0)], [0.0, 0.0]]) + shift
        t = np.array([[1.0, 1.0], [0.0, 0.5]])          # row masses 2 and 0.5
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            E = losses.softmax_cross_entropy_forward(z, t)
            dz = losses.softmax_cross_entropy_backward(np.array(2.0), z, t)[0]
        assert E == pytest.approx(-(math.log(0.25) + math.log(0.75)) - 0.5 * math.log(0.5), rel=1e-12)
        np.testing.assert_allclose(dz, 2 * np.array([[2 * 0.25 - 1, 2 * 0.75 - 1], [0.25, 0.25 - 0.5]]),
                                   rtol=1e-12)
    np.testing.assert_allclose(losses.log_softmax_row([1000.0, -1000.0]), [0.0, -2000.0], rtol=1e-15)


def test_dense_layer_by_hand():
    x, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(dense.dense_forward(x, W, b), [[19.0, 32.0, 45.0]])
    dx, dW, db = dense.dense_backward(np.array([[1.0, 0.0, -1.0]]), x, W, b)
    np.testing.assert_array_equal(dx, [[-2.0, -2.0]])
    np.testing.assert_array_equal(dW, [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0]])
    np.testing.assert_array_equal(db, [1.0, 0.0, -1.0])


def test_convolution_helpers_by_hand():
    assert cv.out_size(5, 3, 2, 1, 1) == 3 and cv.out_size(7, 3, 1, 0, 2) == 3 and cv.out_size(4, 2, 3, 0, 1) == 1
    assert pooling.out_size(5, 2, 2) == 2 and pooling.out_size(5, 3, 2, 1) == 3
    x = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    padded = cv.pad_with(x, 1, 2, -7.0)
    assert padded.shape == (1, 1, 4, 7)
    np.testing.assert_array_equal(padded[0, 0, 1:3, 2:5], x[0, 0])
    assert np.sum(padded == -7.0) == 28 - 6
    np.testing.assert_array_equal(cv.zero_pad(x, 0, 1)[0, 0], [[0, 1, 2, 3, 0], [0, 4, 5, 6, 0]])
    w = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(cv.rot180(w)[0, 0], [[5, 4, 3], [2, 1, 0]])
    assert cv._pair(3) == (3, 3) and cv._pair((1, 2)) == (1, 2) and pooling._pair(2.0) == (2, 2)


def test_seed_001_example_convolution_and_its_matrix():
    """3x3 image, 2x2 kernel: y_ij = sum_st w_st x_(i+s)(j+t) + b, and seed 001's 4x9 matrix."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = cv.correlate2d_forward(x, w, np.array([0.5]))
    np.testing.assert_array_equal(y[0, 0], [[37.5, 47.5], [67.5, 77.5]])
    np.testing.assert_array_equal(cv.convolve2d_forward(x, w, np.array([0.0]))[0, 0], [[23, 33], [53, 63]])
    M = cm.conv_matrix(w, (1, 3, 3))
    np.testing.assert_array_equal(M, [[1, 2, 0, 3, 4, 0, 0, 0, 0], [0, 1, 2, 0, 3, 4, 0, 0, 0],
                                      [0, 0, 0, 1, 2, 0, 3, 4, 0], [0, 0, 0, 0, 1, 2, 0, 3, 4]])
    cols = cm.im2col(x, (2, 2))
    np.testing.assert_array_equal(cols[0], [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]])
    np.testing.assert_array_equal(cm.col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), (2, 2))[0, 0],
                                  [[1, 2, 1], [2, 4, 2], [1, 2, 1]])          # overlaps add up


def test_conv_matrix_drops_window_positions_in_the_padding():
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    M = cm.conv_matrix(w, (1, 2, 2), stride=2, padding=1)     # 2x2 image padded to 4x4, four 2x2 windows
    np.testing.assert_array_equal(M, [[4, 0, 0, 0], [0, 3, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]])
    dx = cv.correlate2d_backward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), w, np.zeros(1), 2, 1)[0]
    np.testing.assert_array_equal(dx[0, 0], [[4, 3], [2, 1]])


def test_trailing_rows_no_window_reaches_get_zero_gradient():
    x = np.ones((1, 1, 5, 5))
    w = np.ones((1, 1, 2, 2))
    for backward in (cv.correlate2d_backward, cv.convolve2d_backward, cm.conv_matrix_backward, cm.im2col_backward):
        dx = backward(np.ones((1, 1, 2, 2)), x, w, np.zeros(1), stride=2)[0]
        np.testing.assert_array_equal(dx[0, 0], [[1, 1, 1, 1, 0]] * 4 + [[0] * 5])


def test_max_pooling_routes_ties_to_the_first_cell_and_never_to_the_padding():
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, -5.0]]]])
    assert pooling.window_argmax(x, 0, 0, 0, 1, (2, 2), (1, 1)) == (0, 1)        # first of the tied 3s
    np.testing.assert_array_equal(pooling.maxpool2d_forward(x, 2, 1)[0, 0], [[3, 3]])
    (dx,) = pooling.maxpool2d_backward(np.array([[[[10.0, 1.0]]]]), x, 2, 1)
    np.testing.assert_array_equal(dx[0, 0], [[0, 11, 0], [0, 0, 0]])            # overlapping windows add up
    neg = -np.ones((1, 1, 1, 1)) * 5.0                                            # padding is -inf, never 0
    np.testing.assert_array_equal(pooling.maxpool2d_forward(neg, 2, 1, 1)[0, 0], [[-5, -5], [-5, -5]])
    np.testing.assert_array_equal(pooling.maxpool2d_backward(np.ones((1, 1, 2, 2)), neg, 2, 1, 1)[0], [[[[4.0]]]])


def test_mean_pooling_shares_each_delta_equally():
    x = np.arange(1.0, 13.0).reshape(1, 1, 3, 4)
    np.testing.assert_array_equal(pooling.meanpool2d_forward(x, (2, 2), (1, 2))[0, 0], [[3.5, 5.5], [7.5, 9.5]])
    (dx,) = pooling.meanpool2d_backward(np.array([[[[4.0, 8.0], [4.0, 0.0]]]]), x, (2, 2), (1, 2))
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 2, 2], [2, 2, 2, 2], [1, 1, 0, 0]])


def test_subsampling_sums_blocks_and_copies_the_delta_back():
    x = np.arange(1.0, 21.0).reshape(1, 1, 4, 5)              # the last column is read by no block
    np.testing.assert_array_equal(subsampling.down(x, 2)[0, 0], [[1 + 2 + 6 + 7, 3 + 4 + 8 + 9],
                                                                [11 + 12 + 16 + 17, 13 + 14 + 18 + 19]])
    beta, b = np.array([0.5]), np.array([-8.0])              # u = 0.5 * down - 8: 0, 4, 20, 24
    f = 1 / (1 + np.exp(-np.array([[0.0, 4.0], [20.0, 24.0]])))
    np.testing.assert_allclose(subsampling.subsampling_forward(x, beta, b, 2)[0, 0], f, rtol=1e-15)
    dx, dbeta, db = subsampling.subsampling_backward(np.array([[[[4.0, 0.0], [0.0, 0.0]]]]), x, beta, b, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0.5, 0.5, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0] * 5, [0] * 5])
    np.testing.assert_array_equal(db, [1.0])                 # delta = dy f (1 - f) = 4 * 0.25
    np.testing.assert_array_equal(dbeta, [16.0])             # delta * down = 1 * 16


# ---- the toolbox network's MATLAB primitives ------------------------------------------------------------------

def test_matlab_primitives():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(network.convn(a, np.array([[1.0, 10.0]]), "full"),
                                  [[1, 12, 20], [3, 34, 40]])
    np.testing.assert_array_equal(network.convn(a, np.array([[1.0], [10.0]]), "valid"), [[13, 24]])
    np.testing.assert_array_equal(network.expand(np.array([[1.0, 2.0]]), 2), [[1, 1, 2, 2], [1, 1, 2, 2]])
    cube = np.arange(8.0).reshape(2, 2, 2)
    np.testing.assert_array_equal(network.flipall(cube), cube[::-1, ::-1, ::-1])
    np.testing.assert_array_equal(network.sigm_derivative(np.array([0.5, 0.25])), [0.25, 0.1875])
    A = np.arange(12.0).reshape(2, 3, 2)                       # (H, W, batch)
    D = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])                 # (h=2, w=1, batch)
    expected = sum(network.convn(A[:, :, 1 - q], D[:, :, q], "valid") for q in range(2))
    # sum_q convn(A(:, :, N-1-q), D(:, :, q), 'valid'): row 1 of A(:, :, 1) plus twice row 0 of A(:, :, 0)
    np.testing.assert_array_equal(network.convn_3d_valid(A, D), [[7 + 0, 9 + 4, 11 + 8]])


def test_toolbox_sizes_must_be_divisible_by_every_scale():
    k = [np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2))]
    network.check_toolbox_sizes(np.zeros((1, 1, 8, 8)), k, (2, 2))       # 6x6 -> 3x3 -> 2x2 -> 1x1
    network.check_toolbox_sizes(np.zeros((1, 1, 7, 10)), k, (1, 1))      # scale 1 divides everything
    with pytest.raises(ValueError, match="conv layer 2 gives 2x3 maps"):
        network.check_toolbox_sizes(np.zeros((1, 1, 8, 10)), k, (2, 2))  # 6x8 -> 3x4 -> 2x3: 3 is odd
    with pytest.raises(ValueError, match="conv layer 2 gives 3x2 maps"):
        network.check_toolbox_sizes(np.zeros((1, 1, 10, 8)), k, (2, 2))
    with pytest.raises(ValueError, match="conv layer 1 gives 0x1 maps"):
        network.check_toolbox_sizes(np.zeros((1, 1, 2, 3)), k, (1, 1))
    with pytest.raises(ValueError, match="conv layer 1 gives 1x0 maps"):
        network.check_toolbox_sizes(np.zeros((1, 1, 3, 2)), k, (1, 1))


def test_default_hyperparameters_are_stride_1_no_padding_no_dilation():
    spec = get_spec("conv2d")
    case = spec.make_case(CONV[2], seed=9)
    x, w, b = (case.arrays[n] for n in ("x", "w", "b"))
    plain = {"stride": 1, "padding": 0, "dilation": 1}
    dy = np.ones_like(cv.correlate2d_forward(x, w, b))
    for forward, backward in IMPLEMENTATIONS["conv2d"] + IMPLEMENTATIONS["convolve2d"]:
        np.testing.assert_array_equal(forward(x, w, b), forward(x, w, b, **plain))
        for got, expected in zip(backward(dy, x, w, b), backward(dy, x, w, b, **plain)):
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(cm.conv_matrix(w, x.shape[1:]), cm.conv_matrix(w, x.shape[1:], **plain))
    cols = cm.im2col(x, w.shape[2:])
    np.testing.assert_array_equal(cols, cm.im2col(x, w.shape[2:], **plain))
    np.testing.assert_array_equal(cm.col2im(cols, x.shape, w.shape[2:]), cm.col2im(cols, x.shape, w.shape[2:], **plain))
    np.testing.assert_array_equal(pooling.maxpool2d_forward(x, 2, 1), pooling.maxpool2d_forward(x, 2, 1, 0))


def test_network_defaults_are_the_seeds_two_by_two_subsampling_and_pooling():
    spec = get_spec("toolbox_cnn")
    config = C(N=1, C0=1, C1=1, C2=1, k1=3, k2=3, s1=2, s2=2, Oh=1, Ow=1, classes=2, H=0, W=0)
    for axis in "hw":   # 10x10 -> 8x8 -> 4x4 -> 2x2 -> 1x1: only scales of 2 divide
        config[axis.upper()] = (config[f"O{axis}"] * 2 + 2) * 2 + 2
    case = spec.make_case(config, seed=2)
    arrays = [case.arrays[n] for n in spec.arg_names]
    assert network.toolbox_cnn_forward(*arrays) == network.toolbox_cnn_forward(*arrays, scales=(2, 2))
    for got, expected in zip(network.toolbox_cnn_backward(np.array(1.0), *arrays),
                             network.toolbox_cnn_backward(np.array(1.0), *arrays, scales=(2, 2))):
        np.testing.assert_array_equal(got, expected)
    spec = get_spec("relu_cnn")
    case = spec.make_case(C(N=1, C0=1, C1=1, k=2, pool=2, Oh=2, Ow=2, classes=2, H=5, W=5), seed=2)
    arrays = [case.arrays[n] for n in spec.arg_names]
    assert network.relu_cnn_forward(*arrays) == network.relu_cnn_forward(*arrays, pool=2)
    x, _, k, b, W, bo = arrays
    for got, expected in zip(network.relu_cnn_layers(x, k, b, W, bo), network.relu_cnn_layers(x, k, b, W, bo, 2)):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(network.relu_cnn_backward(np.array(1.0), *arrays),
                             network.relu_cnn_backward(np.array(1.0), *arrays, pool=2)):
        np.testing.assert_array_equal(got, expected)


def test_toolbox_network_with_rectangular_kernels_and_maps_equals_torch():
    """cnnbp's rules are written per axis: kernels 3x2 then 2x1 on an 8x7 image give 6x6, 3x3, 2x3 maps (scales 2
    and 1), 6 features."""
    spec = get_spec("toolbox_cnn")
    rng = np.random.default_rng(5)
    arrays = {"x": rng.standard_normal((2, 1, 8, 7)), "y": rng.uniform(0, 1, (2, 2)),
              "k1": rng.standard_normal((2, 1, 3, 2)), "b1": rng.standard_normal(2),
              "k2": rng.standard_normal((1, 2, 2, 1)), "b2": rng.standard_normal(1),
              "W": rng.standard_normal((6, 2)), "bo": rng.standard_normal(2)}
    case = Case("toolbox_cnn", {}, arrays, np.array(1.5), seed=0)
    hyper = {"scales": (2, 1)}
    tensors = {n: torch.tensor(a, requires_grad=n in spec.differentiable) for n, a in arrays.items()}
    y = spec.torch_forward(*[tensors[n] for n in spec.arg_names], **hyper)
    upstream = torch.tensor(1.5, dtype=torch.float64)
    grads = torch.autograd.grad(y, [tensors[n] for n in spec.differentiable], grad_outputs=upstream)
    ordered = [arrays[n] for n in spec.arg_names]
    assert_close(network.toolbox_cnn_forward(*ordered, **hyper), y.detach().numpy(), "toolbox forward")
    for name, got, expected in zip(spec.differentiable, network.toolbox_cnn_backward(case.dy, *ordered, **hyper),
                                   grads):
        assert_close(got, expected.numpy(), f"toolbox d{name}")
