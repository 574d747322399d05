"""Layers as they are written in the wild, each in its own convention, plugged in with at most 3 lines of glue
(the ``GLUE`` entries): every correct layer passes the whole suite, and a buggy twin of each (one mistake *within*
its own convention) is caught. The conventions are declared, never worked around by the layer's author.

    cs231n-style conv function pair, one int stride and pad, a cache      scalar=("stride", "padding")
    channels-last conv returning its gradients in a dict                  axes=..., a dict from backward
    dense layer object: fprop/bprop, init(in, out), training flag,        layer_object(forward="fprop", ...)
        weights drawn on the first call, a (1, C) bias, gradients in gW
    dense layer with batch-mean parameter gradients (dW / N)              conventions="batch_mean_params"
    mean-over-batch softmax-CE returning (loss, dz) (cs231n softmax_loss) conventions=("mean_loss", "fused_...")
    squared error without the 1/2, backward without dE                    conventions=("unhalved", "no_upstream")
    fused softmax-CE backward p - t                                       conventions="fused_softmax_ce"
    torch's default MSELoss (mean over all elements, no 1/2)              conventions=("element_mean_loss", ...)
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings

from cnn_gradcheck import plugins as P
from cnn_gradcheck.plugins import HWIO, NHWC, PluginCheckFailure, check_plugin

#: enough derandomized cases to reach a batch of 2, a stride of 2 and K > 1 (where the buggy twins differ)
FEW = settings(max_examples=8, deadline=None, derandomize=True, database=None)


# ------------------------------------------------------------------ cs231n conv: scalar stride and pad, a cache

def cs_conv_forward(x, w, b, conv_param, bug=False):
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    F_, _, HH, WW = w.shape
    Ho, Wo = 1 + (xp.shape[2] - HH) // s, 1 + (xp.shape[3] - WW) // s
    out = np.zeros((x.shape[0], F_, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", xp[:, :, i * s:i * s + HH, j * s:j * s + WW], w) + b
    return out, (x, w, b, conv_param, bug)


def cs_conv_backward(dout, cache):
    x, w, b, conv_param, bug = cache
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    _, _, HH, WW = w.shape
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = (slice(None), slice(None), slice(i * s, i * s + HH), slice(j * s, j * s + WW))
            read = (slice(None), slice(None), slice(i, i + HH), slice(j, j + WW)) if bug else window  # stride lost
            dw += np.einsum("nchw,nf->fchw", xp[read], dout[:, :, i, j])
            dxp[window] += np.einsum("fchw,nf->nchw", w, dout[:, :, i, j])
    return dxp[:, :, p:xp.shape[2] - p, p:xp.shape[3] - p], dw, dout.sum(axis=(0, 2, 3))


def cs231n_conv(bug):
    return P.function_pair(lambda x, w, b, param: cs_conv_forward(x, w, b, param, bug), cs_conv_backward,
                           call=lambda x, w, b, stride, padding, **_: (x, w, b, {"stride": stride, "pad": padding}),
                           scalar=("stride", "padding"), limits={"dilation": 1}, name=f"cs231n conv{' (bug)' * bug}")


# ----------------------------------------------------------- channels-last conv, gradients returned in a dict

def nhwc_forward(x, w, b, stride, padding, dilation):
    """x (N, H, W, C), w (kh, kw, C_in, C_out); no padding, no dilation."""
    (sh, sw), (kh, kw) = stride, w.shape[:2]
    Ho, Wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    y = np.zeros((x.shape[0], Ho, Wo, w.shape[3])) + b
    for s in range(kh):
        for t in range(kw):
            y += x[:, s:s + sh * (Ho - 1) + 1:sh, t:t + sw * (Wo - 1) + 1:sw, :] @ w[s, t]
    return y


def nhwc_backward(dy, x, w, b, stride, padding, dilation, bug=False):
    (sh, sw), (kh, kw) = stride, w.shape[:2]
    Ho, Wo = dy.shape[1:3]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for s in range(kh):
        for t in range(kw):
            window = (slice(None), slice(s, s + sh * (Ho - 1) + 1, sh), slice(t, t + sw * (Wo - 1) + 1, sw))
            dw[s, t] = np.einsum("nijc,nijk->ck", x[window], dy)
            dx[window] += dy @ w[s, t].T
    db = dy[:1].sum(axis=(0, 1, 2)) if bug else dy.sum(axis=(0, 1, 2))  # bug: the first sample only
    return {"x": dx, "w": dw, "b": db}


def nhwc_conv(bug):
    return P.plugin(nhwc_forward, lambda *a, **h: nhwc_backward(*a, **h, bug=bug), axes={"x": NHWC, "y": NHWC,
                    "w": HWIO}, limits={"padding": 0, "dilation": 1}, name=f"NHWC conv{' (bug)' * bug}")


# ---------------------------------------- a dense layer object: other method names, init, lazy weights, (1, C) bias

class Affine:
    """Weights drawn by init(in, out) and drawn again on the first forward; a (1, n) bias; gradients in gW, gb."""

    def __init__(self, bug=False):
        self.W = self.b = None
        self.bug, self.calls = bug, 0

    def init(self, n_in, n_out):
        self.n_in, self.n_out = n_in, n_out

    def fprop(self, x, training=False):
        assert training, "the harness checks the training-mode forward"
        if self.calls == 0:  # lazily (re)drawn weights, as many layers do on their first call
            self.W = np.random.default_rng().standard_normal((self.n_in, self.n_out))
            self.b = np.zeros((1, self.n_out))
        self.calls += 1
        self.x = x
        return x @ self.W + self.b

    def bprop(self, dy):
        self.gW = self.x.T @ dy
        self.gb = dy[:1] if self.bug else dy.sum(axis=0, keepdims=True)  # bug: the first sample only
        return dy @ self.W.T


def affine_object(bug):
    return P.layer_object(lambda: Affine(bug), init=lambda layer, x, W, b: layer.init(*W.shape), lazy=True,
                          params={"W": "W", "b": "b"}, grads={"W": "gW", "b": "gb"}, forward="fprop",
                          backward="bprop", forward_kwargs={"training": True}, name=f"Affine{' (bug)' * bug}")


# ----------------------------------------------------- batch-mean parameter gradients: dW = x^T dy / N, db = mean

def mean_dense_backward(dy, x, W, b, bug=False):
    n = x.shape[0]
    return (dy @ W.T) / (n if bug else 1), x.T @ dy / n, dy.mean(axis=0)  # bug: dx divided by N too


def batch_mean_dense(bug):
    return P.plugin(lambda x, W, b: x @ W + b, lambda *a: mean_dense_backward(*a, bug=bug),
                    conventions="batch_mean_params", name=f"batch-mean dense{' (bug)' * bug}")


# ------------------------------------------------------------------- losses in their own conventions

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_loss(z, t, bug=False):
    """cs231n's softmax_loss: mean over the batch, returning (loss, dz) together."""
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(t * log_p).sum() / n, (_softmax(z) - t) / (1 if bug else n)  # bug: dz not divided by N


def mean_softmax_loss(bug):
    return P.plugin(lambda z, t: softmax_loss(z, t)[0], lambda z, t: softmax_loss(z, t, bug)[1],
                    conventions=("mean_loss", "fused_softmax_ce"), name=f"softmax_loss{' (bug)' * bug}")


def unhalved_squared_error(bug):
    return P.plugin(lambda y, t: ((y - t) ** 2).sum(), lambda y, t: (1 if bug else 2) * (y - t),
                    conventions=("unhalved", "no_upstream"), name=f"sum (y - t)^2{' (bug)' * bug}")


def fused_softmax_ce(bug):
    return P.plugin(lambda z, t: -(t * np.log(_softmax(z))).sum(), lambda z, t: (z if bug else _softmax(z)) - t,
                    conventions="fused_softmax_ce", name=f"softmax-CE, p - t{' (bug)' * bug}")


def torch_mse_loss(bug):
    return P.torch_function(lambda y, t: F.mse_loss(y, t) * (y.shape[1] if bug else 1),  # bug: mean over N only
                            conventions=("element_mean_loss", "unhalved"), name=f"F.mse_loss{' (bug)' * bug}")


LAYERS = {
    "cs231n conv, scalar stride and pad": ("conv2d", cs231n_conv),
    "channels-last conv, dict gradients": ("conv2d", nhwc_conv),
    "layer object: fprop/bprop, init, lazy weights, (1, C) bias": ("dense", affine_object),
    "batch-mean parameter gradients": ("dense", batch_mean_dense),
    "mean softmax loss returning (loss, dz)": ("softmax_cross_entropy", mean_softmax_loss),
    "squared error without 1/2, no upstream": ("mse", unhalved_squared_error),
    "fused softmax-CE p - t": ("softmax_cross_entropy", fused_softmax_ce),
    "torch MSELoss (mean over elements)": ("mse", torch_mse_loss),
}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_in_its_own_convention_passes_and_its_buggy_twin_is_caught(layer):
    op, make = LAYERS[layer]
    report = check_plugin(op, make(False), settings=FEW)
    assert report.cases == FEW.max_examples
    assert {"pytorch", "reference", "finite differences"} <= report.oracles_seen
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin(op, make(True), settings=FEW)
    message = str(failure.value)
    assert " wrong in " in message and "(bug)" in message, message  # a wrong value, not a misbehaviour


def test_fused_softmax_ce_is_checked_within_its_domain_and_a_plain_p_minus_t_is_still_caught():
    """p - t is the gradient only where the rows of t sum to 1: the declared convention is checked without the
    op's "unnormalised targets"; a backward that assumes sum t = 1 without declaring it is caught by them."""
    report = check_plugin("softmax_cross_entropy", fused_softmax_ce(False), settings=FEW)
    assert report.configs and all(c.get("values") != "unnormalised targets" for c in report.configs)
    assuming = P.plugin(lambda z, t: -(t * np.log(_softmax(z))).sum(), lambda dy, z, t: dy * (_softmax(z) - t),
                        name="p - t undeclared (bug)")
    with pytest.raises(PluginCheckFailure, match="values=unnormalised targets"):
        check_plugin("softmax_cross_entropy", assuming, settings=FEW)


def test_declared_conventions_are_named_in_the_summary_and_the_failure():
    report = check_plugin("mse", unhalved_squared_error(False), settings=FEW)
    assert ("declared conventions, converted to the canonical ones: unhalved: squared error without the 1/2"
            in report.summary())
    with pytest.raises(PluginCheckFailure, match=r"dy wrong in sum \(y - t\)\^2 \(bug\) \[declared conventions: "
                                                 r"unhalved, no_upstream\]"):
        check_plugin("mse", unhalved_squared_error(True), settings=FEW)


def test_an_undeclared_convention_is_caught_as_a_wrong_value():
    """The batch-mean dense layer without its declaration: its parameter gradients are N times too small."""
    with pytest.raises(PluginCheckFailure, match=r"dW, db wrong in"):
        check_plugin("dense", P.plugin(lambda x, W, b: x @ W + b, mean_dense_backward), settings=FEW)


@pytest.mark.parametrize("conventions, problem", [
    (("no_upstream",), "no_upstream does not apply to conv2d: it is for losses"),
    (("unhalved",), "unhalved does not apply to conv2d: it is for the squared errors mse, toolbox_mse"),
    (("batch_mean",), "unknown convention 'batch_mean'; the conventions are batch_mean_params, mean_loss"),
])
def test_a_convention_that_cannot_apply_is_a_bad_option(conventions, problem):
    with pytest.raises(P.PluginOptionError, match=problem):
        check_plugin("conv2d", P.torch_function(F.conv2d, conventions=conventions), settings=FEW)


def test_no_upstream_is_refused_for_autograd_adapters():
    with pytest.raises(P.PluginOptionError, match="a torch plug-in's gradients come from autograd"):
        check_plugin("mse", P.torch_function(lambda y, t: ((y - t) ** 2).sum(), conventions="no_upstream"),
                     settings=FEW)


# ------------------------------------------------------------------------------- layer objects' shapes

class ColumnBias:
    """A dense layer keeping its bias as a (n, 1) column; the gradient of W under another name."""

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b.T

    def backward(self, dy):
        self.grad_W, self.grad_b = self.x.T @ dy, dy.sum(axis=0)[:, None]
        return dy @ self.W.T


@pytest.mark.parametrize("held", ["declared", "found"])
def test_biases_kept_in_another_shape_are_set_and_read_back(held):
    def make(W):
        layer = ColumnBias()
        layer.b = np.zeros((W.shape[1], 1)) if held == "found" else None  # the layer's own (n, 1) zeros
        return layer
    plugin = P.layer_object(make, params={"W": "W", "b": "b"}, grads={"W": "grad_W", "b": "grad_b"},
                            shapes={"b": (-1, 1)} if held == "declared" else None)
    assert check_plugin("dense", plugin, settings=FEW).cases == FEW.max_examples


def test_a_gradient_of_another_size_names_what_was_passed_and_expected():
    class Wrong(ColumnBias):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grad_b = dy  # the whole upstream, not its sum over the batch
            return dx
    plugin = P.layer_object(lambda W: Wrong(), params={"W": "W", "b": "b"}, grads={"W": "grad_W", "b": "grad_b"},
                            shapes={"b": (-1, 1)})
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("dense", plugin, settings=FEW)
    message = str(failure.value)
    assert "wrong gradient shape" in message and "Wrong.grad_b (db) has shape (2, " in message
    assert "the harness passed the parameter with shape (" in message and "expected its gradient in that shape" \
        in message


# ------------------------------------------------------------------------------- tuples returned

def _pool_with_indices(x, kernel, stride, padding):
    return F.max_pool2d(x, kernel, stride, padding, return_indices=True)


def test_a_tuple_output_needs_output_and_its_integer_side_output_is_ignored():
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("maxpool2d", P.torch_function(_pool_with_indices), settings=FEW)
    message = str(failure.value)
    assert "maxpool2d: tuple returned in" in message
    assert "forward returned a tuple of 2 elements: (1, 1, 1, 1) float64, (1, 1, 1, 1) int64" in message
    assert "declare which element it is with the adapter option output=<index> (e.g. output=0" in message
    assert check_plugin("maxpool2d", P.torch_function(_pool_with_indices, output=0), settings=FEW).cases


def test_a_function_pair_may_return_side_outputs_before_its_cache():
    def forward(x, kernel, stride, padding):
        y, idx = F.max_pool2d(torch.tensor(x), kernel, stride, padding, return_indices=True)
        return y.numpy(), idx.numpy(), (x, kernel, stride, padding)

    def backward(dy, cache):
        x, kernel, stride, padding = cache
        leaf = torch.tensor(x, requires_grad=True)
        return torch.autograd.grad(F.max_pool2d(leaf, kernel, stride, padding), leaf, torch.tensor(dy))[0].numpy()
    assert check_plugin("maxpool2d", P.function_pair(forward, backward, output=0), settings=FEW).cases


# ------------------------------------------------------------- 0-d losses keep their shape through every adapter

LOSSES = ("mse", "cross_entropy", "softmax_cross_entropy", "toolbox_mse")


def _as_autograd_function(loss):
    """A torch.autograd.Function computing ``loss(z, t)``, whose backward insists on a 0-d upstream gradient."""
    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, t):
            ctx.save_for_backward(z, t)
            return loss(z, t)

        @staticmethod
        def backward(ctx, dE):
            assert dE.dim() == 0, f"the upstream gradient of a 0-d loss is 0-d, not {tuple(dE.shape)}"
            z, t = ctx.saved_tensors
            with torch.enable_grad():
                leaf = z.detach().requires_grad_()
                return torch.autograd.grad(loss(leaf, t), leaf, dE)[0], None
    return Loss


class _LossModule(torch.nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, z, t):
        return self.loss(z, t)


TORCH_ADAPTERS = {
    "torch_function": lambda loss: P.torch_function(loss),
    "autograd_function": lambda loss: P.autograd_function(_as_autograd_function(loss)),
    "torch_module": lambda loss: P.torch_module(_LossModule(loss), params={}),
}


@pytest.mark.parametrize("adapter", TORCH_ADAPTERS)
@pytest.mark.parametrize("op", LOSSES)
def test_a_loss_with_a_0d_output_passes_through_every_torch_adapter(op, adapter):
    from cnn_gradcheck.registry import all_specs
    report = check_plugin(op, TORCH_ADAPTERS[adapter](all_specs()[op].torch_forward), settings=FEW)
    assert report.cases == FEW.max_examples


def test_the_issue_example_half_squared_error_as_a_torch_function():
    assert check_plugin("mse", P.torch_function(lambda y, t: 0.5 * ((t - y) ** 2).sum()), settings=FEW).cases


class HalfSquaredError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, t):
        ctx.save_for_backward(y, t)
        return 0.5 * ((t - y) ** 2).sum()

    @staticmethod
    def backward(ctx, dE):
        assert dE.dim() == 0, f"the upstream gradient of a 0-d loss is 0-d, not {tuple(dE.shape)}"
        y, t = ctx.saved_tensors
        return dE * (y - t), None


def test_a_0d_loss_as_an_autograd_function_gets_a_0d_upstream_gradient():
    assert check_plugin("mse", P.autograd_function(HalfSquaredError), settings=FEW).cases


def test_a_0d_loss_as_a_torch_module():
    module = P.torch_module(lambda: torch.nn.MSELoss(reduction="sum"), params={}, conventions="unhalved")
    assert check_plugin("mse", module, settings=FEW).cases


@pytest.mark.parametrize("op", LOSSES)
def test_a_numpy_loss_gets_a_0d_upstream_gradient(op):
    from cnn_gradcheck.registry import all_specs
    reference = all_specs()[op].reference
    shapes = []

    def backward(dE, *arrays):
        shapes.append(np.shape(dE))
        return reference.backward(dE, *arrays)
    check_plugin(op, P.plugin(reference.forward, backward), settings=FEW)
    assert set(shapes) == {()}


def test_an_unknown_adapter_option_is_refused_with_the_options():
    with pytest.raises(P.PluginOptionError, match="bad plug-in option 'limit': the options every adapter takes are "
                                                  "dtype, device, axes, limits, layouts, tied, scalar, square"):
        P.torch_function(F.conv2d, limit={"stride": 1})
    with pytest.raises(P.PluginOptionError, match="bad plug-in option output='y'"):
        P.torch_function(F.conv2d, output="y")
