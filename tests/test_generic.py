"""The generic check (``cnn_gradcheck.check``) on layers written here as a user outside the repository would:
BatchNorm2d in training mode, LayerNorm and a grouped convolution, in numpy, with no declared term sizes. Correct
layers pass (with a torch reference, a numpy reference or none); a gradient off by a relative 1e-6 fails; a linear
argument off by 1e-10 fails the adjoint test; misbehaving code gets the guards' messages; failures shrink over the
user's own strategies; option mistakes are said before anything runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, settings, strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import cnn_gradcheck
from cnn_gradcheck import generic
from cnn_gradcheck.generic import CheckFailure, check
from cnn_gradcheck.spec import SpecError

#: the same few cases under every profile; without shrinking where only the verdict matters
FEW = settings(max_examples=8, deadline=None, derandomize=True, database=None)
NO_SHRINK = settings(FEW, phases=[Phase.explicit, Phase.generate])
SHRINK = settings(FEW, phases=[Phase.explicit, Phase.generate, Phase.shrink])


# ------------------------------------------------------------------------------------ a user's numpy layers

def _c(a):
    return a[None, :, None, None]


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """BatchNorm2d, training mode: statistics over (N, H, W) per channel, biased variance."""
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    return _c(gamma) * (x - mean) / np.sqrt(var + eps) + _c(beta)


def batchnorm_backward(dy, x, gamma, beta, eps=1e-5):
    """dx = gamma / (M sigma) (M dy - sum dy - xhat sum dy xhat); dgamma = sum dy xhat; dbeta = sum dy."""
    axes, m = (0, 2, 3), x.size // x.shape[1]
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    dx = _c(gamma) * inv / m * (m * dy - dy.sum(axis=axes, keepdims=True)
                                - xhat * (dy * xhat).sum(axis=axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """LayerNorm over the last axis of (N, D)."""
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def layernorm_backward(dy, x, gamma, beta, eps=1e-5):
    d = x.shape[-1]
    inv = 1 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - x.mean(axis=-1, keepdims=True)) * inv
    g = dy * gamma
    dx = inv / d * (d * g - g.sum(axis=-1, keepdims=True) - xhat * (g * xhat).sum(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _windows(x, kh, kw, stride):
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]  # N, C, Ho, Wo, kh, kw


def gconv_forward(x, w, b, groups=1, stride=1):
    """Grouped cross-correlation: input channels and output channels split into ``groups`` independent convs."""
    out, cg, kh, kw = w.shape
    og = out // groups
    parts = [np.einsum("nchwij,ocij->nohw", _windows(x[:, g * cg:(g + 1) * cg], kh, kw, stride),
                       w[g * og:(g + 1) * og]) for g in range(groups)]
    return np.concatenate(parts, axis=1) + _c(b)


def gconv_backward(dy, x, w, b, groups=1, stride=1):
    out, cg, kh, kw = w.shape
    og, (ho, wo) = out // groups, dy.shape[2:]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for g in range(groups):
        cin, cout = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        dw[cout] = np.einsum("nohw,nchwij->ocij", dy[:, cout], _windows(x[:, cin], kh, kw, stride))
        for i in range(kh):
            for j in range(kw):
                dx[:, cin, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += np.einsum(
                    "nohw,oc->nchw", dy[:, cout], w[cout, :, i, j])
    return dx, dw, dy.sum(axis=(0, 2, 3))


# ------------------------------------------------------------------------------------ the user's strategies

def _rng(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def batchnorm_inputs(draw):
    n, c, h = (draw(st.integers(1, 3)) for _ in range(3))
    w = draw(st.integers(2, 3))  # two values per channel at least: training statistics of one value are undefined
    rng = _rng(draw)
    return {"x": rng.standard_normal((n, c, h, w)), "gamma": rng.standard_normal(c), "beta": rng.standard_normal(c)}


@st.composite
def layernorm_inputs(draw):
    n, d = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    rng = _rng(draw)
    return {"x": rng.standard_normal((n, d)), "gamma": rng.standard_normal(d), "beta": rng.standard_normal(d)}


@st.composite
def gconv_inputs(draw):
    """(arrays, hyperparameters) drawn together: groups and stride must agree with the shapes."""
    groups, cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    ho, wo, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    rng = _rng(draw)
    arrays = {"x": rng.standard_normal((n, groups * cg, (ho - 1) * stride + kh, (wo - 1) * stride + kw)),
              "w": rng.standard_normal((groups * og, cg, kh, kw)), "b": rng.standard_normal(groups * og)}
    return arrays, {"groups": groups, "stride": stride}


def torch_gconv(x, w, b, groups=1, stride=1):
    return F.conv2d(x, w, b, stride=stride, groups=groups)


#: name -> (forward, backward, inputs strategy, torch reference, linear arguments)
LAYERS = {
    "batchnorm2d": (batchnorm_forward, batchnorm_backward, batchnorm_inputs,
                    lambda x, g, b, eps=1e-5: F.batch_norm(x, None, None, g, b, training=True, eps=eps), ()),
    "layernorm": (layernorm_forward, layernorm_backward, layernorm_inputs,
                  lambda x, g, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], g, b, eps), ()),
    "grouped_conv": (gconv_forward, gconv_backward, gconv_inputs, torch_gconv, ("x", "w", "b")),
}
ARGS = {"batchnorm2d": ("x", "gamma", "beta"), "layernorm": ("x", "gamma", "beta"), "grouped_conv": ("x", "w", "b")}


def off_by(backward, arg_names, wrong: str, relative: float):
    """The same backward with the gradient of ``wrong`` scaled by 1 + relative."""
    def wrong_backward(dy, *arrays, **hyper):
        return tuple(g * (1 + relative) if n == wrong else g
                     for n, g in zip(arg_names, backward(dy, *arrays, **hyper)))
    return wrong_backward


# ------------------------------------------------------------------------------------------------ correct layers

@pytest.mark.parametrize("layer", [
    "batchnorm2d", "layernorm",  # their backward cancels; the estimated rounding noise (policy 1b) sizes it
    "grouped_conv"])
def test_a_correct_layer_passes_against_torch(layer):
    forward, backward, inputs, reference, linear = LAYERS[layer]
    # LayerNorm from D = 1 on: there dx is exactly 0 and torch's a rounding residue (docs/rounding.md, fixed)
    report = check(forward, backward, inputs(), reference=reference, linear=linear,
                   settings=settings(NO_SHRINK, max_examples=40))
    assert report.examples >= 40
    assert {"pytorch", "finite differences"} <= report.oracles_seen
    assert ("adjoint" in report.oracles_seen) == bool(linear)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_correct_layer_passes_without_a_reference_and_against_its_numpy_forward(layer):
    forward, backward, inputs, _, linear = LAYERS[layer]
    alone = check(forward, backward, inputs(), linear=linear, settings=NO_SHRINK)
    assert "finite differences" in alone.oracles_seen and "pytorch" not in alone.oracles_seen
    assert "no reference given" in alone.not_run["pytorch"]
    against = check(forward, backward, inputs(), reference=forward, reference_kind="numpy", settings=NO_SHRINK)
    assert {"reference", "finite differences"} <= against.oracles_seen


WRONG = ([(layer, reference) for layer in LAYERS for reference in ("none", "numpy pair", "torch")])


@pytest.mark.parametrize("layer, reference", WRONG)
def test_a_gradient_off_by_one_millionth_fails(layer, reference):
    """Every gradient of every layer, scaled by 1 + 1e-6, is rejected and named (finite differences resolve 1e-8;
    a numpy reference pair is the user's trusted older implementation)."""
    forward, backward, inputs, torch_reference, linear = LAYERS[layer]
    given = {"none": None, "numpy pair": (forward, backward), "torch": torch_reference}[reference]
    for wrong in ARGS[layer]:
        with pytest.raises(CheckFailure) as failure:
            check(forward, off_by(backward, ARGS[layer], wrong, 1e-6), inputs(), linear=linear, reference=given,
                  settings=NO_SHRINK)
        assert str(failure.value).startswith(f"{forward.__name__}: d{wrong} wrong"), str(failure.value)


def test_a_linear_argument_off_by_1e_10_fails_the_adjoint_test():
    forward, backward, inputs, _, _ = LAYERS["grouped_conv"]
    wrong = off_by(backward, ARGS["grouped_conv"], "w", 1e-10)
    check(forward, wrong, inputs(), settings=NO_SHRINK)  # finite differences alone cannot see 1e-10
    with pytest.raises(CheckFailure) as failure:
        check(forward, wrong, inputs(), linear=("x", "w", "b"), settings=NO_SHRINK)
    assert "dw vs adjoint" in str(failure.value)


def test_a_torch_function_needs_no_backward():
    report = check(lambda x, w, b: torch.tanh(x @ w + b), None,
                   {"x": np.ones((2, 3)) * 0.3, "w": np.full((3, 2), 0.2), "b": np.zeros(2)}, settings=FEW)
    assert report.examples >= 8 and "finite differences" in report.oracles_seen
    assert "(torch float64 on cpu; input layouts:" in report.summary()


def test_example_inputs_and_hyperparameters():
    """A dict of arrays (each example draws another dy and other directions) and fixed keyword arguments."""
    x = np.random.default_rng(1).standard_normal((3, 4))
    report = check(layernorm_forward, layernorm_backward, {"x": x, "gamma": np.ones(4), "beta": np.zeros(4)},
                   reference=LAYERS["layernorm"][3], hyper={"eps": 1e-3}, settings=FEW)
    assert report.examples >= 8
    assert "oracles: finite differences" in report.summary()


def test_a_failure_shrinks_over_the_users_strategies():
    """A dgamma off by 1e-6 shrinks to one sample of width 2: at width 1, xhat = 0 and dgamma = 0, so no relative
    error can show; the report prints the shrunk inputs' values."""
    wrong = off_by(layernorm_backward, ARGS["layernorm"], "gamma", 1e-6)
    with pytest.raises(CheckFailure) as failure:
        check(layernorm_forward, wrong, layernorm_inputs(), settings=SHRINK)
    configuration = str(failure.value).splitlines()[1]
    x = configuration.split("layernorm_forward(x=")[1].split(", gamma=")[0]
    assert x.startswith("[[") and x.count(",") == 1, configuration  # one sample, two values


# ----------------------------------------------------------------------------------------- misbehaving code

def _raises(x):
    raise ZeroDivisionError("oops")


def _mutating(dy, x):
    x *= 2
    return dy


_calls = []


def _nondeterministic(dy, x):
    _calls.append(1)
    return dy * (1 + 1e-3 * len(_calls))


MISBEHAVIOURS = {
    "exception": (_raises, lambda dy, x: dy, "exception inside the implementation"),
    "wrong gradient shape": (lambda x: 2 * x, lambda dy, x: 2 * dy[:1], "wrong gradient shape"),
    "NaN": (lambda x: x * np.nan, lambda dy, x: dy, "NaN in the output"),
    "mutated input": (lambda x: x.copy(), _mutating, "input mutated in place"),
    "nondeterministic": (lambda x: x.copy(), _nondeterministic, "nondeterministic results"),
}


@pytest.mark.parametrize("kind", MISBEHAVIOURS)
def test_misbehaving_code_gets_the_guards_message(kind):
    forward, backward, problem = MISBEHAVIOURS[kind]
    with pytest.raises(CheckFailure) as failure:
        check(forward, backward, {"x": np.arange(1.0, 4.0)}, name="elementwise", settings=NO_SHRINK)
    message = str(failure.value)
    assert problem in message and "elementwise" in message and "configuration: elementwise(x=" in message, message
    assert "Traceback" not in message


def test_a_wrong_output_shape_against_the_reference():
    with pytest.raises(CheckFailure) as failure:
        check(lambda x: x.sum(axis=0), lambda dy, x: np.broadcast_to(dy, x.shape).copy(), {"x": np.ones((2, 3))},
              reference=lambda x: x, settings=NO_SHRINK)
    assert "wrong output shape" in str(failure.value) and "(2, 3) was expected" in str(failure.value)


# -------------------------------------------------------------------------------------------- option mistakes

@pytest.mark.parametrize("options, said", [
    (dict(inputs=[1, 2]), "must be a dict of arrays"),
    (dict(inputs={"x": np.ones(2)}, linear=("w",)), "linear names 'w'"),
    (dict(inputs={"x": np.ones(2)}, grad_args=("y",)), "grad_args names 'y'"),
    (dict(inputs={"x": np.ones(2)}, reference=(np.sin,)), "(forward, backward) pair"),
    (dict(inputs=None), "no inputs"),
])
def test_option_mistakes_are_said_before_anything_runs(options, said):
    with pytest.raises(SpecError) as error:
        check(np.sin, lambda dy, x: dy * np.cos(x), **options)
    assert said in str(error.value)


def test_the_package_exports_check_and_register_lazily():
    assert cnn_gradcheck.check is generic.check
    assert cnn_gradcheck.register is __import__("cnn_gradcheck.registry", fromlist=["register"]).register
    assert "check" in cnn_gradcheck.__all__ and "register" in cnn_gradcheck.__all__


def test_a_float32_result_without_a_reference_is_said_to_need_one():
    """The rounding of a float32 forward is sized by a reference's terms (tolerance policy 6); without one the check
    says so instead of guessing. With a torch reference the same float32 layer passes."""
    f32 = lambda x: np.tanh(x).astype(np.float32)  # noqa: E731
    df32 = lambda dy, x: (dy * (1 - np.tanh(x) ** 2)).astype(np.float32)  # noqa: E731
    inputs = {"x": np.linspace(-1, 1, 5)}
    with pytest.raises(SpecError, match="lower precision than float64.*Give a reference="):
        check(f32, df32, inputs, settings=NO_SHRINK)
    report = check(f32, df32, inputs, reference=torch.tanh, settings=NO_SHRINK)
    assert "pytorch" in report.oracles_seen


def test_a_declared_reduction_length_is_used():
    """The longest sum sizes tolerance policy 1; a function of the inputs may declare it (here: a row's length)."""
    seen = []

    def length(arrays):
        seen.append(arrays["x"].shape)
        return arrays["x"].shape[-1]

    report = check(layernorm_forward, layernorm_backward, layernorm_inputs(), reference=(layernorm_forward,
                   layernorm_backward), reduction_length=length, settings=NO_SHRINK)
    assert report.examples >= 8 and seen and all(len(shape) == 2 for shape in seen)
