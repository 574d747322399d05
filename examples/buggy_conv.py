"""A deliberately buggy convolution in the cs231n style (``out, cache = conv_forward(x, w, b, conv_param)``,
``dx, dw, db = conv_backward(dout, cache)``), to show what a failure report looks like:

    pytest --plugin conv2d=examples.buggy_conv:PLUGIN

The bug: the kernel gradient reads the input window at (i + s, j + t) instead of (i*stride + s, j*stride + t).
Forward, dx and db are right, and so is dw whenever the stride is 1 -- the harness shrinks to a stride-2 case.
"""
import numpy as np

from cnn_gradcheck.plugins import function_pair


def conv_forward(x, w, b, conv_param):
    (sh, sw), (ph, pw) = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    K, _, kh, kw = w.shape
    out_h, out_w = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.empty((x.shape[0], K, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    (sh, sw), (ph, pw) = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    _, _, kh, kw = w.shape
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.tensordot(dout[:, :, i, j], w, axes=(1, 0))
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, i:i + kh, j:j + kw], axes=(0, 0))  # BUG: i*sh, j*sw
    db = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, ph:xp.shape[2] - ph, pw:xp.shape[3] - pw], dw, db


PLUGIN = function_pair(
    conv_forward, conv_backward,
    call=lambda x, w, b, stride, padding, dilation: (x, w, b, {"stride": stride, "pad": padding}),
    limits={"dilation": 1},
    name="buggy conv (examples/buggy_conv.py)",
)
