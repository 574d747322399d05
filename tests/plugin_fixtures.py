"""Small correct conv2d implementations in each shape user code has, for the plug-in tests (torch does the
arithmetic, so they are fast and exact)."""
import numpy as np
import torch
import torch.nn.functional as F


def _t(a):
    return torch.tensor(np.asarray(a))  # a copy, whatever the memory layout of a


def conv_forward(x, w, b, stride, padding, dilation):
    """Canonical convention, numpy in and out."""
    return F.conv2d(_t(x), _t(w), _t(b), stride, padding, dilation).numpy()


def conv_backward(dy, x, w, b, stride, padding, dilation):
    leaves = [_t(a).requires_grad_() for a in (x, w, b)]
    y = F.conv2d(*leaves, stride, padding, dilation)
    return tuple(g.numpy() for g in torch.autograd.grad(y, leaves, _t(dy)))


def pair_forward(x, w, b, conv_param):
    """cs231n style: (out, cache)."""
    return conv_forward(x, w, b, **conv_param), (x, w, b, conv_param)


def pair_backward(dout, cache):
    x, w, b, conv_param = cache
    return conv_backward(dout, x, w, b, **conv_param)


class ConvLayer:
    """An object keeping parameters and gradients in attributes; adds into its gradients (dW += ...)."""

    def __init__(self, stride=1, padding=0, dilation=1):
        self.hyper = {"stride": stride, "padding": padding, "dilation": dilation}
        self.W = self.b = self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return conv_forward(x, self.W, self.b, **self.hyper)

    def backward(self, dy):
        dx, dW, db = conv_backward(dy, self.x, self.W, self.b, **self.hyper)
        fresh = self.dW is None or self.dW.shape != dW.shape  # new parameters: start a new sum
        self.dW = dW if fresh else self.dW + dW
        self.db = db if fresh else self.db + db
        return dx


class ConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation):
        ctx.save_for_backward(x, w)
        ctx.hyper = (stride, padding, dilation)
        return F.conv2d(x, w, b, stride, padding, dilation)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        stride, padding, dilation = ctx.hyper
        dx = torch.nn.grad.conv2d_input(x.shape, w, dy, stride, padding, dilation)
        dw = torch.nn.grad.conv2d_weight(x, w.shape, dy, stride, padding, dilation)
        return dx, dw, dy.sum(dim=(0, 2, 3)), None, None, None


def conv_module(w, b, stride, padding, dilation):
    return torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=stride, padding=padding,
                           dilation=dilation, dtype=w.dtype)
