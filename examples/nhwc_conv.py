"""A worked example: a channels-last (NHWC) numpy convolution layer that keeps its parameters and gradients in dicts,
checked by the harness as the op "conv2d".

The layer is written the way such layers usually are: images (N, H, W, C), kernels (kh, kw, C_in, C_out) (HWIO), its
own stride and zero padding, no dilation, and gradients that *accumulate* across backward calls (``+=``), as in
frameworks that sum gradients over micro-batches.

    y[n, i, j, k] = b[k] + sum_s sum_t sum_c  xp[n, i*sh + s, j*sw + t, c] W[s, t, c, k]     (xp: x zero-padded)

Check it:
    from cnn_gradcheck.plugins import check_plugin
    from cnn_gradcheck.examples.nhwc_conv import PLUGIN
    print(check_plugin("conv2d", PLUGIN).summary())
or from the command line:
    pytest --plugin conv2d=examples.nhwc_conv:PLUGIN
"""
import numpy as np

from cnn_gradcheck.plugins import HWIO, NHWC, layer_object


class ConvNHWC:
    def __init__(self, W, b, stride=(1, 1), pad=(0, 0)):
        self.params = {"W": W, "b": b}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.stride, self.pad = tuple(stride), tuple(pad)

    def _windows(self, xp, s, t, out_h, out_w):
        """xp[:, i*sh + s, j*sw + t, :] for all output positions (i, j): a strided slice, shape (N, Ho, Wo, C)."""
        sh, sw = self.stride
        return xp[:, s:s + sh * (out_h - 1) + 1:sh, t:t + sw * (out_w - 1) + 1:sw, :]

    def forward(self, x):
        W, b = self.params["W"], self.params["b"]
        (ph, pw), (sh, sw) = self.pad, self.stride
        self.xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        kh, kw = W.shape[:2]
        self.out_h = (self.xp.shape[1] - kh) // sh + 1
        self.out_w = (self.xp.shape[2] - kw) // sw + 1
        y = np.zeros((x.shape[0], self.out_h, self.out_w, W.shape[3])) + b
        for s in range(kh):
            for t in range(kw):
                y += self._windows(self.xp, s, t, self.out_h, self.out_w) @ W[s, t]
        return y

    def backward(self, dy):
        """dE/dW[s,t,c,k] = sum_{n,i,j} xp[n, i*sh+s, j*sw+t, c] dy[n,i,j,k];  dE/db[k] = sum_{n,i,j} dy[n,i,j,k];
        dE/dxp[n, i*sh+s, j*sw+t, c] += sum_k dy[n,i,j,k] W[s,t,c,k]  (then the padding is cut off)."""
        W = self.params["W"]
        (ph, pw) = self.pad
        dxp = np.zeros_like(self.xp)
        for s in range(W.shape[0]):
            for t in range(W.shape[1]):
                window = self._windows(self.xp, s, t, self.out_h, self.out_w)
                self.grads["W"][s, t] += np.einsum("nijc,nijk->ck", window, dy)
                self._windows(dxp, s, t, self.out_h, self.out_w)[...] += dy @ W[s, t].T
        self.grads["b"] += dy.sum(axis=(0, 1, 2))
        return dxp[:, ph:dxp.shape[1] - ph, pw:dxp.shape[2] - pw, :]


PLUGIN = layer_object(
    lambda w, b, stride, padding, dilation: ConvNHWC(w, b, stride, padding),  # a fresh layer for every call
    params={"w": "params.W", "b": "params.b"},        # where the layer keeps conv2d's w and b
    grads={"w": "grads.W", "b": "grads.b"},           # where backward leaves dE/dw, dE/db (dx is returned)
    accumulate="reset",                               # the layer adds into its gradients: zero them first
    axes={"x": NHWC, "y": NHWC, "w": HWIO},           # channels-last images, HWIO kernels
    limits={"dilation": 1},                           # no dilation: the generator stays at dilation 1
    name="ConvNHWC (examples/nhwc_conv.py)",
)
