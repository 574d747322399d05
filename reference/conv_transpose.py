"""Transposed convolution (torch's conv_transpose2d, "deconvolution"), forward and backward, written as the
scatter its name describes, plus a second derivation as the adjoint of reference.conv2d.

Layouts: x (N, C_in, H, W), w (C_in, C_out, kh, kw) (torch's layout: input channels first), b (C_out,),
y (N, C_out, Ho, Wo). Per axis stride S, padding P, output_padding O (< max(S, D)), dilation D:

    Ho = (H - 1) S - 2 P + D (kh - 1) + O + 1

Every input cell scatters its kernel-weighted value into the (uncropped) output yfull, which is then cropped by P
at the start (and O extra rows at the end receive bias only, where the scatter does not reach):

    yfull[n, k, i S + s D, j S + t D] += x[n, c, i, j] w[c, k, s, t]        over n, c, i, j, s, t
    y[n, k, p, q]  = b[k] + yfull[n, k, p + P, q + P]                       (0 where yfull has no row p + P)

Backward, delta = dE/dy, dfull = delta placed at offset P (0 outside):

    dE/dx[n, c, i, j]  = sum_k sum_s sum_t w[c, k, s, t] dfull[n, k, i S + s D, j S + t D]
    dE/dw[c, k, s, t]  = sum_n sum_i sum_j x[n, c, i, j] dfull[n, k, i S + s D, j S + t D]
    dE/db[k]           = sum_n sum_p sum_q delta[n, k, p, q]

dE/dx is a strided convolution of delta with w: transposed convolution is the adjoint (transpose) of
convolution, which the second derivation uses: y = conv2d's dE/dx with x in the role of the upstream gradient.
"""
from __future__ import annotations

import numpy as np

from .conv2d import _pair, correlate2d_backward, correlate2d_forward


def out_size(n: int, k: int, s: int, p: int, o: int, d: int) -> int:
    """Ho = (H - 1) S - 2 P + D (kh - 1) + O + 1"""
    return (n - 1) * s - 2 * p + d * (k - 1) + o + 1


def _hyper(stride, padding, output_padding, dilation):
    return _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)


def conv_transpose2d_forward(x, w, b, stride=1, padding=0, output_padding=0, dilation=1):
    """y[n, k, p, q] = b[k] + sum over (c, i, j, s, t) with i S + s D = p + P, j S + t D = q + P of
    x[n, c, i, j] w[c, k, s, t]"""
    (sh, sw), (ph, pw), (oh, ow), (Dh, Dw) = _hyper(stride, padding, output_padding, dilation)
    N, C_in, H, W = x.shape
    _, C_out, kh, kw = w.shape
    Ho, Wo = out_size(H, kh, sh, ph, oh, Dh), out_size(W, kw, sw, pw, ow, Dw)
    y = np.zeros((N, C_out, Ho, Wo))
    for n in range(N):
        for k in range(C_out):
            for p in range(Ho):
                for q in range(Wo):
                    y[n, k, p, q] = b[k]
    for n in range(N):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    for k in range(C_out):
                        for s in range(kh):
                            for t in range(kw):
                                p, q = i * sh + s * Dh - ph, j * sw + t * Dw - pw
                                if 0 <= p < Ho and 0 <= q < Wo:  # cropped by the padding
                                    y[n, k, p, q] += x[n, c, i, j] * w[c, k, s, t]
    return y


def conv_transpose2d_backward(dy, x, w, b, stride=1, padding=0, output_padding=0, dilation=1):
    """(dx, dw, db): each product x[n, c, i, j] w[c, k, s, t] that reached y[n, k, p, q] sends delta there back to
    both factors (module docstring)."""
    (sh, sw), (ph, pw), (oh, ow), (Dh, Dw) = _hyper(stride, padding, output_padding, dilation)
    N, C_in, H, W = x.shape
    _, C_out, kh, kw = w.shape
    _, _, Ho, Wo = dy.shape
    dx, dw, db = np.zeros_like(x, dtype=np.float64), np.zeros_like(w, dtype=np.float64), np.zeros(C_out)
    for n in range(N):
        for k in range(C_out):
            for p in range(Ho):
                for q in range(Wo):
                    db[k] += dy[n, k, p, q]
    for n in range(N):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    for k in range(C_out):
                        for s in range(kh):
                            for t in range(kw):
                                p, q = i * sh + s * Dh - ph, j * sw + t * Dw - pw
                                if 0 <= p < Ho and 0 <= q < Wo:
                                    dx[n, c, i, j] += w[c, k, s, t] * dy[n, k, p, q]
                                    dw[c, k, s, t] += x[n, c, i, j] * dy[n, k, p, q]
    return dx, dw, db


# ---- the adjoint of convolution ----------------------------------------------------------------------------------

def conv_transpose2d_via_conv_forward(x, w, b, stride=1, padding=0, output_padding=0, dilation=1):
    """y = (the dE/dx of conv2d(z, w) for z of y's shape and upstream gradient x) + b: conv2d's weight
    (C_out_conv, C_in_conv, kh, kw) = (C_in, C_out, kh, kw) is transposed convolution's w as it is."""
    (sh, sw), (ph, pw), (oh, ow), (Dh, Dw) = _hyper(stride, padding, output_padding, dilation)
    N, C_in, H, W = x.shape
    _, C_out, kh, kw = w.shape
    z = np.zeros((N, C_out, out_size(H, kh, sh, ph, oh, Dh), out_size(W, kw, sw, pw, ow, Dw)))
    dz, _, _ = correlate2d_backward(x, z, w, np.zeros(C_in), (sh, sw), (ph, pw), (Dh, Dw))
    return dz + np.reshape(b, (1, -1, 1, 1))


def conv_transpose2d_via_conv_backward(dy, x, w, b, stride=1, padding=0, output_padding=0, dilation=1):
    """dx = conv2d(dy, w) (no bias; with O >= S, possible when D > S, conv2d has window positions past x's last
    row: cropped); dw = conv2d's dE/dw with input dy and upstream gradient x; db = sum dy."""
    (sh, sw), (ph, pw), _, (Dh, Dw) = _hyper(stride, padding, output_padding, dilation)
    N, C_in, H, W = x.shape
    dx = correlate2d_forward(dy, w, np.zeros(C_in), (sh, sw), (ph, pw), (Dh, Dw))[:, :, :H, :W]
    _, dw, _ = correlate2d_backward(x, dy, w, np.zeros(C_in), (sh, sw), (ph, pw), (Dh, Dw))
    return dx, dw, dy.sum(axis=(0, 2, 3))
