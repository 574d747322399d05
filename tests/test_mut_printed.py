"""The literal transcriptions of the seeds' formulas (reference/printed.py) compute what the text prints, mistakes
included: where a printed formula is right they equal the loop references, where it is wrong they give the wrong
value (or read outside the array) exactly as the erratum says. tests/test_errata.py checks the verdicts; this pins
the transcriptions themselves, so that an edit that keeps a wrong formula wrong, differently, is noticed."""
import math

import numpy as np
import pytest

from cnn_gradcheck.reference import conv2d as cv
from cnn_gradcheck.reference import pooling
from cnn_gradcheck.reference import printed as pr

RNG = np.random.default_rng(7)


def normal(*shape):
    return RNG.standard_normal(shape)


def test_read_refuses_indices_outside_the_array():
    a = np.arange(6.0).reshape(2, 3)
    assert pr.read(a, (1, 2), "x") == 5.0 and isinstance(pr.read(a, (0, 0), "x"), float)
    for index in [(2, 0), (0, 3), (-1, 0), (0, -1)]:
        with pytest.raises(pr.PrintedIndexError, match=r"reads x\[.*\], outside its shape \(2, 3\)"):
            pr.read(a, index, "x")
    with pytest.raises(pr.PrintedIndexError, match=r"reads dE/dy\[0, 3\]"):
        pr.read(a, (0, 3), "dE/dy")


def conv_case(H=4, W=5, kh=2, kw=3, N=2, C_out=2):
    x, w, b = normal(N, 1, H, W), normal(C_out, 1, kh, kw), normal(C_out)
    dy = normal(N, C_out, H - kh + 1, W - kw + 1)
    return dy, x, w, b


def test_000_forward_is_right():
    dy, x, w, b = conv_case()
    np.testing.assert_allclose(pr.conv_forward_000(x, w, b), cv.correlate2d_forward(x, w, b), rtol=1e-12)


def test_000_kernel_and_bias_gradients_are_right_for_even_kernels_only():
    dy, x, w, b = conv_case(kh=2, kw=2)
    _, dw, db = cv.correlate2d_backward(dy, x, w, b)
    np.testing.assert_allclose(pr.conv_dw_000(dy, x, w, b), dw, rtol=1e-12)
    np.testing.assert_allclose(pr.conv_db_000(dy, x, w, b), db, rtol=1e-12)
    dy, x, w, b = conv_case(kh=3, kw=2)          # M - 2(3//2) = M - 2 is one row past the last output
    with pytest.raises(pr.PrintedIndexError, match="dE/dy"):
        pr.conv_dw_000(dy, x, w, b)
    with pytest.raises(pr.PrintedIndexError, match="dE/dy"):
        pr.conv_db_000(dy, x, w, b)


def test_000_bias_gradient_uses_m_in_the_column_bound():
    dy, x, w, b = conv_case(kh=2, kw=1)          # N - 2(2//2) + 1 = N - 1 columns: the last one is left out
    np.testing.assert_allclose(pr.conv_db_000(dy, x, w, b), dy[:, :, :, :-1].sum(axis=(0, 2, 3)), rtol=1e-12)
    dy, x, w, b = conv_case(kh=2, kw=4)          # m = 2 in the j bound: 2 more columns than there are
    with pytest.raises(pr.PrintedIndexError):
        pr.conv_db_000(dy, x, w, b)
    seen = []
    pr.conv_db_000(*conv_case(kh=2, kw=2), half=lambda m: seen.append(m) or m // 2)
    assert seen and set(seen) == {2}


def test_000_input_gradient_zeroes_only_negative_indices():
    dy, x, w, b = conv_case(kh=1, kw=1)
    np.testing.assert_allclose(pr.conv_dx_000(dy, x, w, b), cv.correlate2d_backward(dy, x, w, b)[0], rtol=1e-12)
    dy, x, w, b = conv_case(kh=2, kw=1)          # i - s = M - 1 reads past the last output row
    with pytest.raises(pr.PrintedIndexError, match=r"dE/dy\[3, 0\]"):
        pr.conv_dx_000(dy, x, w, b)
    # given a dE/dy as large as x (nothing out of range), the sum runs over the taps with i - s >= 0, j - t >= 0
    x, w = normal(1, 1, 3, 4), normal(1, 1, 2, 3)
    dy = normal(1, 1, 3, 4)
    expected = np.zeros_like(x)
    for i in range(3):
        for j in range(4):
            expected[0, 0, i, j] = sum(dy[0, 0, i - s, j - t] * w[0, 0, s, t] for s in range(2) for t in range(3)
                                       if i - s >= 0 and j - t >= 0)
    np.testing.assert_allclose(pr.conv_dx_000(dy, x, w, np.zeros(1)), expected, rtol=1e-12)
    dy, x, w, b = conv_case(H=1, W=4, kh=1, kw=2)
    with pytest.raises(pr.PrintedIndexError, match=r"dE/dy\[0, 3\]"):
        pr.conv_dx_000(dy, x, w, b)


def test_000_maxpool_backward_routes_to_every_tied_cell():
    x = np.array([[[[1.0, 3.0, 0.0, 2.0], [3.0, 2.0, 5.0, 1.0]]]])
    (dx,) = pr.maxpool_backward_000(np.array([[[[10.0, 20.0]]]]), x, (2, 2), (2, 2))
    np.testing.assert_array_equal(dx[0, 0], [[0, 10, 0, 0], [10, 0, 20, 0]])
    # the window is l x l with l the kernel's first size, as printed (l x l windows moved by l)
    x = np.array([[[[1.0, 5.0, 9.0], [2.0, 0.0, 0.0]]]])
    (dx,) = pr.maxpool_backward_000(np.array([[[[10.0]]]]), x, (2, 3), (2, 3))
    np.testing.assert_array_equal(dx[0, 0], [[0, 10, 0], [0, 0, 0]])
    x = normal(2, 2, 4, 6)
    dy = normal(2, 2, 2, 3)
    np.testing.assert_array_equal(pr.maxpool_backward_000(dy, x, (2, 2), (2, 2))[0],
                                  pooling.maxpool2d_backward(dy, x, 2, 2)[0])


def test_relu_derivatives_as_printed():
    x, dy = np.array([[-1.0, 0.0, 2.0]]), np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(pr.relu_backward_000(dy, x)[0], dy)           # y >= 0 lets everything through
    np.testing.assert_array_equal(pr.relu_backward_004(dy, x)[0], [[0.0, 0.0, 3.0]])


def test_004_elementwise_derivatives():
    x = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(pr.sigmoid_backward_004(np.array([[4.0, 4.0]]), x)[0], [[1.0, 0.75]], rtol=1e-15)
    y, t = np.array([[1.0, 0.5]]), np.array([[0.0, 2.0]])
    np.testing.assert_array_equal(pr.mse_backward_004(3.0, y, t)[0], [[3.0, -4.5]])
    np.testing.assert_array_equal(pr.cross_entropy_backward_004(2.0, y, t)[0], [[0.0, -8.0]])


def test_004_softmax_jacobian_final_and_intermediate():
    row = np.array([0.0, math.log(3.0)]) + 700.0
    np.testing.assert_allclose(pr._softmax(row), [0.25, 0.75], rtol=1e-12)
    np.testing.assert_allclose(pr.softmax_jacobian_004(row, "final"), [[0.1875, -0.1875], [-0.1875, 0.1875]],
                               rtol=1e-12)
    np.testing.assert_allclose(pr.softmax_jacobian_004(row, "intermediate"), [[0.1875, 0.1875], [0.1875, 0.1875]],
                               rtol=1e-12)                          # the lost minus sign
    x = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])
    dy = np.array([[1.0, 0.0], [2.0, 4.0]])
    np.testing.assert_allclose(pr.softmax_backward_004(dy, x)[0], [[0.1875, -0.1875], [-0.5, 0.5]], rtol=1e-12)
    np.testing.assert_allclose(pr.softmax_backward_004_intermediate(dy, x)[0], [[0.1875, 0.1875], [1.5, 1.5]],
                               rtol=1e-12)


def test_004_dense_gradients():
    x, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.zeros(3)
    dy = np.array([[1.0, 10.0, 100.0]])
    np.testing.assert_array_equal(pr.dense_dx_004_matrix(dy, x, W, b), [[321.0, 654.0]])
    np.testing.assert_array_equal(pr.dense_dw_004(dy, x, W, b), [[1, 10, 100], [2, 20, 200]])
    # delta_(i+1) w_ki for i = 0 .. n-2: 10 * 1 + 100 * 2 and 10 * 4 + 100 * 5
    np.testing.assert_array_equal(pr.dense_dx_004_expanded(dy, x, W, b), [[210.0, 540.0]])


def strided_case(sh, sw, H=5, W=7, kh=2, kw=3):
    x, w, b = normal(2, 1, H, W), normal(2, 1, kh, kw), normal(2)
    Ho, Wo = cv.out_size(H, kh, sh, 0, 1), cv.out_size(W, kw, sw, 0, 1)
    return normal(2, 2, Ho, Wo), x, w, b


def test_004_correlation_kernel_gradient_misses_the_stride_in_j():
    dy, x, w, b = strided_case(2, 1)
    right = cv.correlate2d_backward(dy, x, w, b, stride=(2, 1))
    np.testing.assert_allclose(pr.conv_dw_004_correlation(dy, x, w, b, (2, 1)), right[1], rtol=1e-12)
    dy, x, w, b = strided_case(1, 2)
    wrong = pr.conv_dw_004_correlation(dy, x, w, b, (1, 2))
    expected = np.zeros_like(w)                       # y_(is+a)(j+b): j without its stride
    for k in range(2):
        for a in range(2):
            for bb in range(3):
                expected[k, 0, a, bb] = np.sum(dy[:, k] * x[:, 0, a:a + dy.shape[2], bb:bb + dy.shape[3]])
    np.testing.assert_allclose(wrong, expected, rtol=1e-12)


def test_004_correlation_input_and_bias_gradients_are_right():
    for stride in [(1, 1), (2, 1), (1, 3), (2, 2)]:
        dy, x, w, b = strided_case(*stride)
        dx, _, db = cv.correlate2d_backward(dy, x, w, b, stride=stride)
        np.testing.assert_allclose(pr.conv_dx_004_correlation(dy, x, w, b, stride), dx, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(pr.conv_db_004(dy, x, w, b), db, rtol=1e-12)


def test_003_mean_pool_backward_expands_and_divides():
    dy = np.array([[[[4.0, 8.0]]]])
    np.testing.assert_array_equal(pr.meanpool_backward_003(dy, np.zeros((1, 1, 2, 4)), (2, 2), (2, 2))[0][0, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2]])
    # the printed scale is the window's first size, used on both axes
    (dx,) = pr.meanpool_backward_003(np.array([[[[8.0]]]]), np.zeros((1, 1, 2, 3)), (2, 3), (2, 3))
    np.testing.assert_array_equal(dx[0, 0], [[2.0, 2.0], [2.0, 2.0]])
    x, dy = normal(2, 2, 6, 3), normal(2, 2, 2, 1)
    np.testing.assert_allclose(pr.meanpool_backward_003(dy, x, (3, 3), (3, 3))[0],
                               pooling.meanpool2d_backward(dy, x, 3, 3)[0], rtol=1e-12)


def test_the_printed_softmax_is_shifted_by_its_largest_logit_so_a_wide_range_stays_finite():
    """Logits 0 and 800: exp(x - max) is finite, exp(x - min) would overflow to inf (and give NaN)."""
    row = np.array([0.0, 800.0])
    np.testing.assert_allclose(pr._softmax(row), [0.0, 1.0], atol=1e-300)
    jacobian = pr.softmax_jacobian_004(row, "intermediate")
    assert np.all(np.isfinite(jacobian))             # y = (0, 1): y (1 - y) = 0 on the diagonal, e_i e_j / S^2 = 0
    np.testing.assert_allclose(jacobian, np.zeros((2, 2)), atol=1e-300)
