"""Convolution as a matrix product: the sparse-matrix view (seed 001) and the im2col form.

Layouts as in ``reference.conv2d``: x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,), y (N, C_out, Ho, Wo);
per-axis stride S, zero padding P, dilation D. The layer is cross-correlation ("conv" in frameworks); seed 001
writes "*: convolution" but slides the kernel unflipped, as every CNN framework does.

1. The sparse-matrix view (001). For one sample, flatten x[n] to vec(x) (length C_in*H*W, index (c, u, v)) and
   y[n] to vec(y) (length C_out*Ho*Wo, index (k, i, j)). Then

       vec(y) = M vec(x) + vec(b),     M[(k, i, j), (c, u, v)] = w[k, c, s, t]
                                        wherever u = i*S + s*D - P and v = j*S + t*D - P,

   zero elsewhere (window positions that fall in the padding read zeros, so they have no column). M is the weight
   matrix of a dense layer in which most connections are absent (local connection) and the present ones share
   the kernel's weights (weight sharing). Seed 001's example: a 3x3 image and a 2x2 kernel, stride 1, give

       [y11]   [w11 w12  0  w21 w22  0   0   0   0 ] [x11 x12 x13 x21 x22 x23 x31 x32 x33]^T
       [y12] = [ 0  w11 w12  0  w21 w22  0   0   0 ]
       [y21]   [ 0   0   0  w11 w12  0  w21 w22  0 ]
       [y22]   [ 0   0   0   0  w11 w12  0  w21 w22]

   a 4x9 matrix: a dense layer would have 36 free parameters, this one has the kernel's 4, each used 4 times.

   Because the layer is this matrix product, its backward is the transpose (the chain rule for a linear map):

       dE/dvec(x) = M^T dE/dvec(y)        (per sample)

   which, written out index by index, is the "full correlation with rot180(w)" of ``reference.conv2d``.

2. The im2col form. Unfold every receptive field of x[n] into a column:

       cols(x)[n][(c, s, t), (i, j)] = xp[n, c, i*S + s*D, j*S + t*D]     (C_in*kh*kw rows, Ho*Wo columns)

   and the kernel into a matrix W_mat[k, (c, s, t)] = w[k, c, s, t]. Then

       y[n] = W_mat @ cols(x)[n] + b      (y[n] reshaped to (C_out, Ho*Wo))
       dE/dW_mat = sum_n dy[n] @ cols(x)[n]^T          dE/db[k] = sum_n sum_(i,j) dy[n, k, (i, j)]
       dE/dx[n] = col2im(W_mat^T @ dy[n])              (col2im = the transpose of im2col: it adds overlaps)

   The shared weights are why dE/dw sums over every position (i, j) and every sample n.
"""
from __future__ import annotations

import numpy as np

from .conv2d import _pair, out_size, zero_pad


def conv_matrix(w, input_shape, stride=1, padding=0, dilation=1) -> np.ndarray:
    """The matrix M of the layer for one sample: vec(y) = M vec(x) + vec(b), shape (C_out*Ho*Wo, C_in*H*W).

    M[(k, i, j), (c, u, v)] = w[k, c, s, t] where u = i*S + s*D - P, v = j*S + t*D - P (inside the image).
    Row (k, i, j) is output element y[k, i, j]; column (c, u, v) is input element x[c, u, v] (C order).
    """
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    C_in, H, W = input_shape
    C_out, _, kh, kw = w.shape
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    M = np.zeros((C_out * Ho * Wo, C_in * H * W))
    for k in range(C_out):
        for i in range(Ho):
            for j in range(Wo):
                row = (k * Ho + i) * Wo + j
                for c in range(C_in):
                    for s in range(kh):
                        for t in range(kw):
                            u, v = i * sh + s * Dh - ph, j * sw + t * Dw - pw
                            if 0 <= u < H and 0 <= v < W:  # positions in the padding multiply zeros
                                M[row, (c * H + u) * W + v] += w[k, c, s, t]
    return M


def conv_matrix_forward(x, w, b, stride=1, padding=0, dilation=1):
    """y[n] = M vec(x[n]) + b, sample by sample (the sparse-matrix view, seed 001)."""
    N, C_in, H, W = x.shape
    M = conv_matrix(w, (C_in, H, W), stride, padding, dilation)
    C_out = w.shape[0]
    y = np.zeros((N, M.shape[0]))
    for n in range(N):
        y[n] = M @ x[n].reshape(-1)
    y = y.reshape(N, C_out, -1)
    for k in range(C_out):
        y[:, k, :] += b[k]
    Ho, Wo = _output_hw(x.shape, w.shape, stride, padding, dilation)
    return y.reshape(N, C_out, Ho, Wo)


def conv_matrix_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """(dx, dw, db): dx[n] = M^T dy[n] (the transposed matrix), dw through im2col, db summed over n, i, j."""
    N, C_in, H, W = x.shape
    M = conv_matrix(w, (C_in, H, W), stride, padding, dilation)
    dx = np.zeros((N, C_in * H * W))
    for n in range(N):
        dx[n] = M.T @ dy[n].reshape(-1)
    _, dw, db = im2col_backward(dy, x, w, b, stride, padding, dilation)
    return dx.reshape(x.shape), dw, db


def im2col(x, kernel, stride=1, padding=0, dilation=1) -> np.ndarray:
    """cols[n, (c, s, t), (i, j)] = xp[n, c, i*S + s*D, j*S + t*D], shape (N, C_in*kh*kw, Ho*Wo)."""
    (kh, kw), (sh, sw), (ph, pw), (Dh, Dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    xp = zero_pad(x, ph, pw)
    cols = np.zeros((N, C_in * kh * kw, Ho * Wo))
    for n in range(N):
        for c in range(C_in):
            for s in range(kh):
                for t in range(kw):
                    for i in range(Ho):
                        for j in range(Wo):
                            cols[n, (c * kh + s) * kw + t, i * Wo + j] = xp[n, c, i * sh + s * Dh, j * sw + t * Dw]
    return cols


def col2im(cols, input_shape, kernel, stride=1, padding=0, dilation=1) -> np.ndarray:
    """The transpose of im2col: dx[n, c, u, v] = sum of cols[n, (c, s, t), (i, j)] over every (s, t, i, j) whose
    window position is (u, v) (overlapping windows add up; positions in the padding are dropped)."""
    (kh, kw), (sh, sw), (ph, pw), (Dh, Dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = input_shape
    Ho, Wo = out_size(H, kh, sh, ph, Dh), out_size(W, kw, sw, pw, Dw)
    dxp = np.zeros((N, C_in, H + 2 * ph, W + 2 * pw))
    for n in range(N):
        for c in range(C_in):
            for s in range(kh):
                for t in range(kw):
                    for i in range(Ho):
                        for j in range(Wo):
                            dxp[n, c, i * sh + s * Dh, j * sw + t * Dw] += cols[n, (c * kh + s) * kw + t, i * Wo + j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def im2col_forward(x, w, b, stride=1, padding=0, dilation=1):
    """y[n] = W_mat @ cols(x)[n] + b with W_mat[k, (c, s, t)] = w[k, c, s, t]."""
    C_out, _, kh, kw = w.shape
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    W_mat = w.reshape(C_out, -1)
    y = np.stack([W_mat @ cols[n] for n in range(x.shape[0])])
    y += b.reshape(1, C_out, 1)
    Ho, Wo = _output_hw(x.shape, w.shape, stride, padding, dilation)
    return y.reshape(x.shape[0], C_out, Ho, Wo)


def im2col_backward(dy, x, w, b, stride=1, padding=0, dilation=1):
    """(dx, dw, db): dW_mat = sum_n dy[n] @ cols(x)[n]^T; dx[n] = col2im(W_mat^T @ dy[n]); db = sum over n, i, j."""
    N = x.shape[0]
    C_out, _, kh, kw = w.shape
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    W_mat = w.reshape(C_out, -1)
    dy_mat = dy.reshape(N, C_out, -1)
    dW_mat = np.zeros_like(W_mat, dtype=np.float64)
    for n in range(N):
        dW_mat += dy_mat[n] @ cols[n].T
    dcols = np.stack([W_mat.T @ dy_mat[n] for n in range(N)])
    dx = col2im(dcols, x.shape, (kh, kw), stride, padding, dilation)
    db = dy_mat.sum(axis=(0, 2))
    return dx, dW_mat.reshape(w.shape), db


def _output_hw(x_shape, w_shape, stride, padding, dilation):
    (sh, sw), (ph, pw), (Dh, Dw) = _pair(stride), _pair(padding), _pair(dilation)
    return (out_size(x_shape[2], w_shape[2], sh, ph, Dh), out_size(x_shape[3], w_shape[3], sw, pw, Dw))
