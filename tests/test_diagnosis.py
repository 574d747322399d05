"""A deliberately wrong layer of each common kind gets its mistake named in the failure report.

Each WrongLayer is data: the op, a wrong implementation written the way the mistake is usually made, a fixed
configuration large enough that only one catalogue entry fits, the quantity it breaks and the mistake the diagnosis
must name. The mutants of tests/mutants that make one of these mistakes are checked the same way on their shrunk
configurations (EXPECTED_FOR_MUTANTS)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pytest

from cnn_gradcheck.diagnosis import Context, Mistake, diagnose, diagnose_result, named_constants, shift
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.report import failure_report, worst_elements
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation
from cnn_gradcheck.reference import conv2d as ref
from cnn_gradcheck.reference import pooling as pool

from mutants import all_mutants, wrong_backward

CONV = get_spec("conv2d").reference


def conv_config(**changes) -> dict:
    config = dict(N=2, C_in=2, C_out=2, kh=2, sh=1, dilh=1, ph=0, H=4, kw=2, sw=1, dilw=1, pw=0, W=4)
    config.update(changes)
    return config


def pool_config(**changes) -> dict:
    config = dict(N=1, C=2, kh=2, sh=1, ph=0, H=4, kw=2, sw=1, pw=0, W=4)
    config.update(changes)
    return config


@dataclass(frozen=True)
class WrongLayer:
    op: str
    impl: Implementation
    config: Mapping[str, Any]
    quantity: str
    mistake: str
    constant: str = ""  # for "scaled by a constant": the name the fitted constant must get
    seed: int = 3
    extra: Mapping[str, Any] = field(default_factory=dict)


def _conv_backward(change):
    return wrong_backward(CONV, "wrong conv backward", change)


def _set(index, make):
    def change(grads, dy, x, w, b, **hyper):
        grads[index] = make(grads, dy, x, w, b, **hyper)
        return grads
    return change


def _overwriting_dw(grads, dy, x, w, b, stride, padding, dilation):
    """dw[k, c, s, t] = dy * x  -- '=' where the sum over n, i, j needs '+='."""
    dw = np.zeros_like(w)
    for n in range(dy.shape[0]):
        for k in range(dy.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    for c in range(w.shape[1]):
                        for s in range(w.shape[2]):
                            for t in range(w.shape[3]):
                                dw[k, c, s, t] = dy[n, k, i, j] * x[n, c, i + s, j + t]
    return dw


def _one_output_channel_dx(grads, dy, x, w, b, **hyper):
    """dx from the first output channel only (a loop over k that stops after k = 0)."""
    return ref.correlate2d_backward(dy[:, :1], x, w[:1], b[:1], **hyper)[0]


def _transposed_dw(grads, dy, x, w, b, stride, padding, dilation):
    """dw[k, c, t, s] written where dw[k, c, s, t] belongs (the two kernel loops' indices exchanged)."""
    return ref.correlate2d_backward(dy, x, w, b, stride, padding, dilation)[1].transpose(0, 1, 3, 2)


def _overwriting_maxpool(dy, x, kernel, stride, padding=0):
    """The max-pooling backward with '=': a cell that wins two overlapping windows keeps only the last."""
    dxp = np.zeros_like(x)
    for n in range(dy.shape[0]):
        for c in range(dy.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    u, v = pool.window_argmax(x, n, c, i, j, kernel, stride)
                    dxp[n, c, u, v] = dy[n, c, i, j]
    return (dxp,)


def _meanpool_without_division(dy, x, kernel, stride):
    (dx,) = pool.meanpool2d_backward(dy, x, kernel, stride)
    return (dx * kernel[0] * kernel[1],)


def _noise(grads, dy, x, w, b, **hyper):
    return grads[1] + 1e-3 * np.random.default_rng(0).standard_normal(grads[1].shape)


MAXPOOL = get_spec("maxpool2d").reference
MEANPOOL = get_spec("meanpool2d").reference

WRONG_LAYERS = {
    "kernel not rotated": WrongLayer(
        "conv2d", Implementation("dx without rot180", CONV.forward,
                                 lambda dy, x, w, b, **h: (ref.correlate2d_backward(dy, x, w[:, :, ::-1, ::-1], b, **h)[0],
                                                           *ref.correlate2d_backward(dy, x, w, b, **h)[1:])),
        conv_config(kh=3, kw=2), "dx", "kernel rotated by 180 degrees, or not rotated where it must be"),
    "convolution in place of cross-correlation": WrongLayer(
        "conv2d", Implementation("true convolution forward", ref.convolve2d_forward, CONV.backward),
        conv_config(kh=3), "forward", "kernel rotated by 180 degrees, or not rotated where it must be"),
    "transposed kernel gradient": WrongLayer(
        "conv2d", _conv_backward(_set(1, _transposed_dw)), conv_config(kh=3, kw=3, H=5, W=5), "dw",
        "transposed layout"),
    "batch mean instead of sum": WrongLayer(
        "conv2d", _conv_backward(_set(1, lambda g, dy, *a, **h: g[1] / dy.shape[0])), conv_config(N=2), "dw",
        "scaled by a constant", constant="1/N"),
    "sign flipped": WrongLayer(
        "conv2d", _conv_backward(_set(2, lambda g, *a, **h: -g[2])), conv_config(), "db",
        "scaled by a constant", constant="-1 (sign flipped)"),
    "upstream gradient dropped": WrongLayer(
        "conv2d", _conv_backward(_set(1, lambda g, dy, x, w, b, **h: ref.correlate2d_backward(
            np.ones_like(dy), x, w, b, **h)[1])), conv_config(), "dw", "upstream gradient dropped"),
    "stride forgotten": WrongLayer(
        "conv2d", _conv_backward(_set(1, lambda g, dy, x, w, b, stride, padding, dilation:
                                      ref.correlate2d_backward(dy, x, w, b, 1, padding, dilation)[1])),
        conv_config(sh=2, sw=2, H=5, W=5), "dw", "stride misapplied"),
    "padding cropped at the wrong offset": WrongLayer(
        "conv2d", _conv_backward(_set(0, lambda g, dy, x, w, b, stride, padding, dilation:
                                      ref.correlate2d_backward(dy, np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))),
                                                               w, b, stride, 0, dilation)[0][:, :, :4, :4])),
        conv_config(kh=3, kw=3, ph=1, pw=1), "dx", "padding misapplied"),
    "dilation forgotten": WrongLayer(
        "conv2d", _conv_backward(_set(0, lambda g, dy, x, w, b, stride, padding, dilation:
                                      ref.correlate2d_backward(dy, x, w, b, stride, padding, 1)[0])),
        conv_config(dilh=2, dilw=2, H=5, W=5), "dx", "dilation misapplied"),
    "bias from one sample": WrongLayer(
        "conv2d", _conv_backward(_set(2, lambda g, dy, *a, **h: dy[0].sum(axis=(1, 2)))), conv_config(N=3), "db",
        "only part of the batch summed"),
    "one output channel summed": WrongLayer(
        "conv2d", _conv_backward(_set(0, _one_output_channel_dx)), conv_config(C_out=3), "dx",
        "only part of the channels summed"),
    "off by one": WrongLayer(
        "conv2d", _conv_backward(_set(0, lambda g, *a, **h: shift(g[0], 3, 1))), conv_config(), "dx",
        "one-cell shift"),
    "overwritten kernel gradient": WrongLayer(
        "conv2d", _conv_backward(_set(1, _overwriting_dw)), conv_config(), "dw",
        "overwritten instead of accumulated"),
    "overwritten max-pooling gradient": WrongLayer(
        "maxpool2d", Implementation("max pool with '='", MAXPOOL.forward, _overwriting_maxpool),
        pool_config(kh=3, kw=3, H=5, W=5), "dx", "overwritten instead of accumulated"),
    "mean pooling without the division": WrongLayer(
        "meanpool2d", Implementation("mean pool times area", MEANPOOL.forward, _meanpool_without_division),
        pool_config(kh=2, kw=3, sh=2, sw=3, H=4, W=6), "dx", "scaled by a constant",
        constant="window area kh*kw"),
    "gradient never written": WrongLayer(
        "conv2d", _conv_backward(_set(2, lambda g, *a, **h: np.zeros_like(g[2]))), conv_config(), "db",
        "gradient never written"),
}


def _result(layer: WrongLayer):
    spec = get_spec(layer.op)
    return check_case(spec, layer.impl, spec.make_case(layer.config, layer.seed))


@pytest.mark.parametrize("label", list(WRONG_LAYERS))
def test_wrong_layer_gets_its_mistake_named(label):
    layer = WRONG_LAYERS[label]
    result = _result(layer)
    assert layer.quantity in {c.quantity for c in result.failures}, f"{label}: the check did not fail"
    diagnoses = {d.quantity: d for d in diagnose_result(result)}
    found = diagnoses[layer.quantity]
    assert found.mistake == layer.mistake, f"{label}: {found.describe()}"
    assert len({f.mistake.name for f in found.fits}) == 1, f"{label}: ambiguous: {found.describe()}"
    if layer.constant:
        assert layer.constant in found.fits[0].constant_name.split(" = "), found.describe()
    report = failure_report(result)
    assert f"diagnosis {layer.quantity}: {layer.mistake}" in report
    assert "worst elements of" in report


def test_unexplained_error_is_reported_as_such():
    layer = WrongLayer("conv2d", _conv_backward(_set(1, _noise)), conv_config(), "dw", "")
    result = _result(layer)
    (diagnosis,) = [d for d in diagnose_result(result) if d.quantity == "dw"]
    assert diagnosis.fits == []
    assert "diagnosis dw: no catalogued mistake fits" in failure_report(result)


EXPECTED_FOR_MUTANTS = {
    "kernel not rotated in dx": "kernel rotated by 180 degrees, or not rotated where it must be",
    "stride forgotten in dx": "stride misapplied",
    "bias gradient from the first sample only": "only part of the batch summed",
}


@pytest.mark.parametrize("name", list(EXPECTED_FOR_MUTANTS))
def test_catalogue_mutants_are_diagnosed(name):
    (mutant,) = [m for m in all_mutants() if m.name == name]
    spec = get_spec(mutant.op)
    # a configuration big enough to be unambiguous, inside the mutant's restrictions
    config = conv_config(N=2, C_in=1, C_out=2, kh=3, kw=2, sh=2, sw=2, H=7, W=6, **{})
    case = spec.make_case({**config, **mutant.fixed}, 5)
    result = check_case(spec, mutant.impl, case, mutant.oracles)
    (quantity,) = mutant.wrong
    diagnosis = {d.quantity: d for d in diagnose_result(result)}[quantity]
    assert diagnosis.mistake == EXPECTED_FOR_MUTANTS[name], diagnosis.describe()


def test_scale_constant_is_estimated_by_least_squares_and_named():
    spec = get_spec("conv2d")
    case = spec.make_case(conv_config(), 1)
    expected = np.arange(1.0, 7.0)
    ctx = Context(spec, case, "dx", expected, expected * 0.5)
    (fit,) = diagnose(ctx).fits
    assert fit.scale == pytest.approx(0.5, rel=1e-15) and "1/N" in fit.constant_name.split(" = ")
    ctx = Context(spec, case, "dx", expected, expected * 0.37)
    assert diagnose(ctx).fits[0].constant_name == ""
    assert named_constants({"N": 4, "kh": 2, "kw": 3})["window area kh*kw"] == 6


def test_catalogue_is_extendable_per_op():
    spec = get_spec("conv2d")
    case = spec.make_case(conv_config(), 1)
    expected = np.arange(1.0, 7.0)
    squared = Mistake("squared", "squared where it should not be", lambda ctx: [("", ctx.expected ** 2)],
                      ops=("conv2d",))
    found = diagnose(Context(spec, case, "dx", expected, expected ** 2), catalogue=[squared])
    assert found.mistake == "squared"
    other = diagnose(Context(get_spec("maxpool2d"), get_spec("maxpool2d").make_case(pool_config(), 1), "dx",
                             expected, expected ** 2), catalogue=[squared])
    assert other.fits == []


def test_worst_elements_are_sorted_by_error():
    worst = worst_elements(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[0.0, 1.5], [0.0, 3.1]]), rows=2)
    assert [w[0] for w in worst] == [(1, 0), (0, 1)]


def test_pictures_without_matplotlib_say_what_to_install(tmp_path, monkeypatch):
    from cnn_gradcheck.pictures import PicturesUnavailable, write_pictures

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(PicturesUnavailable, match="pip install matplotlib"):
        write_pictures(_result(WRONG_LAYERS["stride forgotten"]), str(tmp_path))


def test_pictures_of_a_failing_gradient(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional 'plots' extra; pictures need it")
    from cnn_gradcheck.pictures import write_pictures

    result = _result(WRONG_LAYERS["stride forgotten"])
    paths = write_pictures(result, str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["conv2d_dw_wrong_conv_backward.png"]
    with open(paths[0], "rb") as picture:
        assert picture.read(8) == b"\x89PNG\r\n\x1a\n"
