"""The diagnosis catalogue's newer entries, each with a deliberately wrong layer made the way the mistake is usually
made, and the diagnosis machinery's guards: element-wise mistakes judged on several distinct elements, only the
axes an op has, a compound constant resolved with a second configuration, tiny shrinks re-diagnosed wider."""
from __future__ import annotations

import numpy as np
import pytest

from cnn_gradcheck.diagnosis import compound_names, diagnose_result
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation

CONV = get_spec("conv2d").reference
PLAIN = dict(sh=1, sw=1, ph=0, pw=0, dilh=1, dilw=1)


def diagnosis_of(op, impl, config, quantity, seed=3):
    spec = get_spec(op)
    result = check_case(spec, impl, spec.make_case(config, seed))
    assert quantity in {c.quantity for c in result.failures}, "the check did not fail"
    return {d.quantity: d for d in diagnose_result(result)}[quantity]


def activation(op, derivative):
    """An activation whose backward is dE/dy * derivative(x, y, dy) (y from the reference forward)."""
    forward = get_spec(op).reference.forward

    def backward(dy, x):
        return (dy * derivative(x, forward(x), dy),)
    return Implementation(f"{op} with a wrong derivative", forward, backward)


ACTIVATIONS = {
    "relu multiplied by x": ("relu", lambda x, y, dy: x * (x > 0), "local derivative wrong",
                             "multiplied by the input x"),
    "relu leaky slope": ("relu", lambda x, y, dy: np.where(x > 0, 1.0, 0.01), "leaky slope in the backward",
                         "a leaky slope 0.01"),
    "relu mask from dy": ("relu", lambda x, y, dy: (dy > 0) * 1.0, "local derivative wrong", "upstream gradient"),
    "tanh derivative from the input": ("tanh", lambda x, y, dy: 1 - x * x, "local derivative wrong",
                                       "1 - x^2 from the input"),
    "tanh without the square": ("tanh", lambda x, y, dy: 1 - y, "local derivative wrong", "the square dropped"),
    "tanh sign": ("tanh", lambda x, y, dy: 1 + y * y, "local derivative wrong", "sign flipped"),
    "sigmoid from the upstream gradient": ("sigmoid", lambda x, y, dy: dy * (1 - dy), "local derivative wrong",
                                           "from the upstream gradient"),
    "sigmoid without (1 - y)": ("sigmoid", lambda x, y, dy: y, "local derivative wrong", "(1 - y) term dropped"),
}


@pytest.mark.parametrize("label", list(ACTIVATIONS))
def test_activation_mistakes_are_named_even_from_a_one_element_shrink(label):
    """The failing case has one element (any constant fits there): the diagnosis is made on a wider case."""
    op, derivative, mistake, detail = ACTIVATIONS[label]
    found = None
    for seed in range(20):  # a one-element case that fails (for ReLU: a seed whose x lies on the wrong side)
        spec = get_spec(op)
        result = check_case(spec, activation(op, derivative), spec.make_case(dict(N=1, K=1), seed))
        if any(c.oracle == "pytorch" for c in result.failures):
            found = {d.quantity: d for d in diagnose_result(result)}["dx"]
            break
    assert found is not None
    assert found.mistake == mistake and detail in found.fits[0].detail, found.describe()
    assert "diagnosed on a wider case" in found.note
    assert "scaled by a constant" not in found.describe()


def test_an_element_wise_op_is_not_offered_diagnoses_of_axes_it_does_not_sum():
    """A sigmoid whose gradient loses one element: no 'only part of the channels summed' (there is no such sum)."""
    forward = get_spec("sigmoid").reference.forward

    def backward(dy, x):
        (dx,) = get_spec("sigmoid").reference.backward(dy, x)
        dx = dx.copy()
        dx[0, 0] = 0.0
        return (dx,)
    found = diagnosis_of("sigmoid", Implementation("sigmoid, one element dropped", forward, backward),
                         dict(N=2, K=4), "dx")
    assert "channels" not in found.describe() and "batch" not in found.describe()
    # and from its one-element shrink, not "never written" (true of that one element only)
    found = diagnosis_of("sigmoid", Implementation("sigmoid, one element dropped", forward, backward),
                         dict(N=1, K=1), "dx", seed=0)
    assert found.fits == [] and "on a wider case sigmoid(N=2, K=4; seed=0), also wrong, nothing fits" in found.note


def _conv(change):
    def backward(dy, x, w, b, **hyper):
        return change(list(CONV.backward(dy, x, w, b, **hyper)), dy, x, w, b, **hyper)
    return Implementation("wrong conv", CONV.forward, backward)


def test_a_compound_constant_is_resolved_with_a_second_configuration():
    """dw / (N H_out W_out): at the shrunk case several sizes equal the constant; a second configuration that
    grows them by different amounts separates the factors."""
    def averaged(g, dy, x, w, b, **hyper):
        g[1] = g[1] / (dy.shape[0] * dy.shape[2] * dy.shape[3])
        return g
    found = diagnosis_of("conv2d", _conv(averaged), dict(N=2, C_in=1, C_out=1, H=2, W=2, kh=1, kw=1, **PLAIN),
                         "dw")
    assert found.mistake == "scaled by a constant"
    assert "1/(N*H_out*W_out)" in found.fits[0].constant_name.split(" = "), found.describe()


def test_compound_names_need_both_configurations():
    one = {"N": 2.0, "H": 2.0, "W": 2.0}
    assert compound_names(0.5, one, 1 / 3, {"N": 3.0, "H": 4.0, "W": 5.0}) == ["1/N"]
    assert compound_names(0.25, one, 1 / 20, {"N": 2.0, "H": 4.0, "W": 5.0}) == ["1/(H*W)"]
    assert compound_names(-4.0, one, -6.0, {"N": 3.0, "H": 2.0, "W": 5.0}) == ["-2*N"]


def test_a_window_off_by_one_is_not_called_never_written():
    """range(kh - 1) in dw: at the 1x1 shrink the result is all zeros; a wider kernel tells them apart."""
    def last_row_skipped(g, dy, x, w, b, **hyper):
        g[1] = g[1].copy()
        g[1][:, :, -1, :] = 0.0
        return g
    found = diagnosis_of("conv2d", _conv(last_row_skipped), dict(N=1, C_in=1, C_out=1, H=2, W=2, kh=1, kw=1,
                                                                  **PLAIN), "dw")
    assert found.mistake == "window off by one" and "last kernel row" in found.fits[0].detail, found.describe()


def test_a_square_kernel_assumed_is_named():
    def square(g, dy, x, w, b, **hyper):
        g[0] = CONV.backward(dy, x, w * (np.arange(w.shape[3]) < w.shape[2]), b, **hyper)[0]
        return g
    found = diagnosis_of("conv2d", _conv(square), dict(N=1, C_in=1, C_out=1, H=4, W=5, kh=2, kw=3, **PLAIN), "dx")
    assert found.mistake == "square kernel assumed", found.describe()


def test_a_bias_gradient_summed_over_the_wrong_axis_is_named():
    def wrong_axis(g, dy, x, w, b, **hyper):
        g[2] = dy.sum(axis=(0, 1, 2))
        return g
    found = diagnosis_of("conv2d", _conv(wrong_axis), dict(N=1, C_in=1, C_out=3, H=3, W=3, kh=1, kw=1, **PLAIN),
                         "db")
    assert found.mistake == "bias broadcast across the wrong axis", found.describe()


def test_argmax_unravelled_with_swapped_axes_is_named():
    spec = get_spec("maxpool2d")
    ref = spec.reference

    def backward(dy, x, kernel, stride, padding=0):
        (kh, kw), (sh, sw) = kernel, stride
        dx = np.zeros_like(x)
        for n, c, i, j in np.ndindex(dy.shape):
            window = x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
            k = int(np.argmax(window))
            a, b = k % kh, k // kh  # swapped: (k // kw, k % kw) is right
            dx[n, c, i * sh + a, j * sw + b] += dy[n, c, i, j]
        return (dx,)
    found = diagnosis_of("maxpool2d", Implementation("maxpool argmax swapped", ref.forward, backward),
                         dict(N=1, C=2, H=4, W=4, kh=2, kw=2, sh=2, sw=2, ph=0, pw=0), "dx")
    assert found.mistake == "argmax unravelled with swapped axes", found.describe()


def _quick():
    from hypothesis import settings
    return settings(max_examples=25, deadline=None, derandomize=True, database=None)


def test_an_empty_crop_at_padding_zero_is_named():
    """dx = dxp[:, :, p:-p, q:-q] is empty when p = 0: a wrong gradient shape, and the report says why."""
    from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin

    def backward(dy, x, w, b, stride, padding, dilation):
        p, q = padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (q, q)))
        dxp, dw, db = CONV.backward(dy, xp, w, b, stride=stride, padding=(0, 0), dilation=dilation)
        return dxp[:, :, p:-p, q:-q], dw, db
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", plugin(CONV.forward, backward), settings=_quick())
    message = str(failure.value)
    assert "wrong gradient shape" in message
    assert "a crop written [p:-p] is empty when p = 0" in message


def test_a_softmax_without_max_subtraction_is_named():
    from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin
    spec = get_spec("softmax")

    def forward(x):
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)
    with np.errstate(all="ignore"), pytest.raises(PluginCheckFailure) as failure:
        check_plugin("softmax", plugin(forward, spec.reference.backward), settings=_quick())
    message = str(failure.value)
    assert "NaN" in message and "unless the row maximum is subtracted first" in message


def test_a_bias_added_along_the_wrong_axis_in_the_forward_is_named():
    spec = get_spec("dense")
    ref = spec.reference

    def forward(x, W, b):
        return ref.forward(x, W, np.zeros_like(b)) + b[:, None]  # per sample instead of per output unit
    found = diagnosis_of("dense", Implementation("dense bias per sample", forward, ref.backward),
                         dict(N=3, m=2, n=3), "forward")
    assert found.mistake == "bias broadcast across the wrong axis", found.describe()
