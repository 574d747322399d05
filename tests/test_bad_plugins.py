"""Bad plug-ins: each misbehaviour gets a clear message naming the problem, the op and the configuration, never an
internal traceback. One record per bad plug-in (data, not code): the plug-in and the phrases its message must hold."""
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, settings

from cnn_gradcheck import calls, plugins as P
from cnn_gradcheck.plugins import PluginCheckFailure, PluginOptionError, check_plugin
from cnn_gradcheck.registry import get_spec

import plugin_fixtures as fx  # tests/ is on sys.path

# failures are found on the first, smallest case; no shrinking needed to show the message
QUICK = settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True,
                 database=None)  # same cases under every profile


def _forward_then(change):
    def forward(x, w, b, stride, padding, dilation):
        return change(fx.conv_forward(x, w, b, stride, padding, dilation), x)
    return P.plugin(forward, fx.conv_backward, name="bad forward")


def _backward_then(change):
    def backward(dy, x, w, b, stride, padding, dilation):
        return change(list(fx.conv_backward(dy, x, w, b, stride, padding, dilation)), dy)
    return P.plugin(fx.conv_forward, backward, name="bad backward")


def _raises(y, x):
    raise ValueError("unsupported padding mode")


def _exits(y, x):
    sys.exit(3)


def _generator_exit(grads, dy):
    raise GeneratorExit("closed")


def _mutates_x(y, x):
    x[...] = 0.0
    return y


def _mutates_dy(grads, dy):
    dy *= 2.0
    return grads


def _with_nan(y, x):
    y = y.copy()
    y.flat[0] = np.nan
    return y


def _inf_in_dx(grads, dy):
    grads[0] = grads[0].copy()
    grads[0].flat[-1] = np.inf
    return grads


_noise = np.random.default_rng()


class NoBackward:
    def __init__(self, **anything):
        pass

    def forward(self, x):
        return x


class NoBackwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation):
        return F.conv2d(x, w, b, stride, padding, dilation)


class TwoArgumentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        return x

    @staticmethod
    def backward(ctx, dy):
        return dy, None


def _in_place_torch(x, w, b, stride, padding, dilation):
    y = F.conv2d(x, w, b, stride, padding, dilation)
    if not x.requires_grad:
        x.mul_(2.0)  # in the forward-only call (no autograd), writes into the caller's tensor
    return y


def _through_numpy(x, w, b, stride, padding, dilation):
    return torch.from_numpy(fx.conv_forward(x.detach().numpy(), w.detach().numpy(), b.detach().numpy(),
                                            stride, padding, dilation))


@dataclass(frozen=True)
class Bad:
    name: str
    plugin: object
    phrases: tuple


BAD = [
    Bad("wrong output shape", _forward_then(lambda y, x: np.concatenate([y, y], axis=1)),
        ("wrong output shape", "the forward output y has shape (1, 2, 1, 1); (1, 1, 1, 1) was expected")),
    Bad("wrong gradient shape", _backward_then(lambda g, dy: [g[0], g[1].transpose(1, 0, 2, 3)[:, :, :, :1].repeat(
        2, axis=0), g[2]]), ("wrong gradient shape", "the gradient dw has shape (2, 1, 1, 1)", "(the shape of w)")),
    Bad("integer output", _forward_then(lambda y, x: np.round(y).astype(np.int64)),
        ("wrong output dtype", "the forward output y has dtype int64")),
    Bad("complex output", _forward_then(lambda y, x: y + 0j), ("wrong output dtype", "complex128")),
    Bad("NaN in the forward", _forward_then(_with_nan), ("NaN in the output", "the forward output y has 1 "
                                                         "non-finite element(s) of 1, the first at [0, 0, 0, 0]")),
    Bad("inf in dx", _backward_then(_inf_in_dx), ("inf in the output", "the gradient dx")),
    Bad("exception inside", _forward_then(_raises),
        ("exception inside the implementation", "forward raised ValueError: unsupported padding mode",
         "raised at tests/test_bad_plugins.py:", "in _raises")),
    Bad("sys.exit inside", _forward_then(_exits),
        ("SystemExit inside the implementation", "forward raised SystemExit (exit status 3) (raised at "
         "tests/test_bad_plugins.py:", "in _exits: sys.exit(3); a layer must not end the process")),
    Bad("GeneratorExit inside", _backward_then(_generator_exit),
        ("GeneratorExit inside the implementation", "backward raised GeneratorExit: closed")),
    Bad("input mutated", _forward_then(_mutates_x),
        ("input mutated in place", "forward changed 1 element(s) of its argument x")),
    Bad("upstream gradient mutated", _backward_then(_mutates_dy),
        ("input mutated in place", "backward changed 1 element(s) of its argument dy (the upstream gradient)")),
    Bad("torch input mutated", P.torch_function(_in_place_torch),
        ("input mutated in place", "forward changed 1 element(s) of its argument x")),
    Bad("nondeterministic", _forward_then(lambda y, x: y + 1e-9 * _noise.standard_normal(y.shape)),
        ("nondeterministic results", "two identical calls gave different forward")),
    Bad("too few gradients", _backward_then(lambda g, dy: g[:2]),
        ("wrong gradient count", "backward returned 2 gradient(s); 3 were expected, in this order: dx, dw, db")),
    Bad("forward signature", P.plugin(lambda x, w: x, fx.conv_backward, name="two-argument forward"),
        ("signature does not fit", "forward is <lambda>(x, w)", "forward((1, 1, 1, 1) float64, (1, 1, 1, 1) "
         "float64, (1,) float64, stride=(1, 1), padding=(0, 0), dilation=(1, 1))", "too many positional")),
    Bad("function pair without cache", P.function_pair(lambda x, w, b, **h: x, lambda dout, cache: cache),
        ("wrong output type", "must return (out, cache)")),
    Bad("object without backward", P.layer_object(NoBackward, params={"w": "w", "b": "b"},
                                                  grads={"w": "dw", "b": "db"}),
        ("missing method", "NoBackward has no method backward()")),
    Bad("module with neither", object(), ("missing method", "has no forward and no backward",
                                          "configuration: any (the plug-in cannot be called at all)")),
    Bad("autograd.Function without backward", P.autograd_function(NoBackwardFunction),
        ("missing method", "NoBackwardFunction does not define backward()")),
    Bad("autograd.Function signature", P.autograd_function(TwoArgumentFunction),
        ("signature does not fit", "TwoArgumentFunction.forward(ctx, x, w) cannot take")),
    Bad("torch forward through numpy", P.torch_function(_through_numpy),
        ("no gradient path", "the output does not depend on the inputs through autograd")),
    Bad("module parameter names", P.torch_module(fx.conv_module, params={"w": "kernel", "b": "bias"}),
        ("missing parameter", "Conv2d has no parameter kernel (it has: weight, bias)")),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_plugin_gets_a_clear_message(bad):
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", bad.plugin, settings=QUICK)
    message = str(failure.value)
    assert message.startswith("conv2d: ") and "configuration: " in message
    for phrase in bad.phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    assert "Traceback" not in message and "site-packages" not in message


def test_float32_results_get_a_precision_note_with_the_tolerance():
    def forward32(x, w, b, stride, padding, dilation):
        return fx.conv_forward(x, w, b, stride, padding, dilation).astype(np.float32)

    def backward32(dy, x, w, b, stride, padding, dilation):
        return [g.astype(np.float32) for g in fx.conv_backward(dy, x, w, b, stride, padding, dilation)]

    with pytest.warns(P.PrecisionNote) as notes:
        report = check_plugin("conv2d", P.plugin(forward32, backward32, name="float32 conv"), settings=QUICK)
    note = str(notes[0].message)
    assert note == report.precision_note
    assert note.startswith("precision note: float32 conv returns float32 results; they are compared with the "
                           "float64 oracles under float32 rounding: tolerance = 8 * eps(float32) 1.19e-07 * K 2 = "
                           "1.91e-06 relative to the largest term (float64 would allow 3.6e-15")


@pytest.mark.parametrize("forward_dtype, backward_dtype", [(np.float32, np.float64), (np.float64, np.float32)],
                         ids=["float32 forward, float64 backward", "float64 forward, float32 backward"])
def test_forward_and_backward_in_different_precisions_are_accepted_and_said_in_the_summary(forward_dtype,
                                                                                          backward_dtype):
    def forward(x, w, b, stride, padding, dilation):
        return fx.conv_forward(x, w, b, stride, padding, dilation).astype(forward_dtype)

    def backward(dy, x, w, b, stride, padding, dilation):
        return [g.astype(backward_dtype) for g in fx.conv_backward(dy, x, w, b, stride, padding, dilation)]

    with pytest.warns(P.PrecisionNote):
        report = check_plugin("conv2d", P.plugin(forward, backward, name="mixed conv"), settings=QUICK)
    forward_name, backward_name = np.dtype(forward_dtype).name, np.dtype(backward_dtype).name
    assert report.precision == "float32"
    assert report.precision_note.startswith(
        f"precision note: mixed conv returns its forward in {forward_name} and its backward in {backward_name} "
        f"(mixed precisions, accepted: all results are compared under the coarsest, float32); they are compared "
        f"with the float64 oracles under float32 rounding")
    assert report.precision_note in report.summary()


# --------------------------------------------------------------------------------------- bad plug-in options

def _conv(**options):
    return P.plugin(fx.conv_forward, fx.conv_backward, name="conv", **options)


def _check(op="conv2d", plugin=None, **options):
    return lambda: check_plugin(op, plugin or _conv(), settings=QUICK, **options)


def _maxpool(**options):
    return check_plugin("maxpool2d", P.as_plugin(get_spec("maxpool2d").reference), settings=QUICK, **options)


@dataclass(frozen=True)
class BadOption:
    name: str
    run: Callable  # raises the PluginOptionError, before any plug-in code runs
    phrases: tuple


BAD_OPTIONS = [
    BadOption("misspelt limit", _check(limits={"strides": 1}),
              ("conv2d: bad plug-in option limits {'strides': 1}", "conv2d has no configuration field 'strides'",
               "its fields are N, C_in, C_out, H, W", "the aliases stride, padding, dilation")),
    BadOption("another op's field", lambda: _maxpool(limits={"C_in": 1}),
              ("maxpool2d: bad plug-in option limits {'C_in': 1}", "maxpool2d has no configuration field 'C_in'",
               "its fields are N, C, H, W")),
    BadOption("stride 0", _check(limits={"stride": 0}),
              ("conv2d: bad plug-in option limits {'stride': 0}", "do not describe a valid configuration of conv2d",
               "InvalidArgument")),
    BadOption("empty batch", _check(limits={"N": 0}),
              ("conv2d: bad plug-in option limits {'N': 0}", "do not describe a valid configuration of conv2d",
               "empty arrays: x has shape (0, 1, 1, 1)")),
    BadOption("misspelt layout", _check(layouts=["stridd"]),
              ("conv2d: bad plug-in option layouts=['stridd']: unknown layout 'stridd'",
               "the layouts are contiguous, strided, transposed, channels_last")),
    BadOption("unknown library", lambda: _conv(kind="mxnet"),
              ("bad plug-in option kind='mxnet': the array libraries are 'numpy', 'torch', 'jax'",)),
    BadOption("unknown dtype", lambda: _conv(dtype="float33"),
              ("bad plug-in option dtype='float33': a numpy plug-in can be given float64, float32, float16",)),
    BadOption("bfloat16 numpy", lambda: _conv(dtype="bfloat16"), ("dtype='bfloat16': a numpy plug-in",)),
    BadOption("unknown op", _check(op="conv9d"), ("unknown op 'conv9d'; known ops: ", "conv2d, conv2d_matrix")),
    BadOption("axes too short", _check(plugin=_conv(axes={"x": (0, 2, 3)})),
              ("conv2d: bad plug-in option axes['x']=(0, 2, 3): not a permutation of the 4 axes of x",)),
    BadOption("axes repeated", lambda: _conv(axes={"w": (2, 3, 1, 1)}).bind(get_spec("conv2d")),
              ("conv2d: bad plug-in option axes['w']=(2, 3, 1, 1): not a permutation of the 4 axes of w",)),
    BadOption("axes not numbers", _check(plugin=_conv(axes={"x": "NHWC"})),
              ("axes['x']='NHWC': not a permutation of the 4 axes of x",)),
    BadOption("axes for no argument", _check(plugin=_conv(axes={"img": (0, 2, 3, 1)})),
              ("conv2d has no argument 'img'; axes are given for x, w, b, y",)),
    BadOption("accumulate", lambda: P.layer_object(fx.ConvLayer, params={}, grads={}, accumulate="sum"),
              ("bad plug-in option accumulate='sum': it is 'reset', 'diff' or 'none'",)),
]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=[b.name for b in BAD_OPTIONS])
def test_bad_option_is_named_before_the_plugin_runs(bad):
    with pytest.raises(PluginOptionError) as error:
        bad.run()
    message = str(error.value)
    for phrase in bad.phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    assert "exception inside the implementation" not in message


# ----------------------------------------------------------------------- where an exception was raised

def _raising_function_in(folder: str):
    """A forward whose code claims to live in ``folder``/layer.py (compiled with that file name)."""
    source = "def forward(x, w, b, stride, padding, dilation):\n    raise RuntimeError('kernel launch failed')\n"
    namespace: dict = {}
    exec(compile(source, os.path.join(folder, "layer.py"), "exec"), namespace)
    return namespace["forward"]


@pytest.mark.parametrize("folder", [
    os.path.join(os.sep + "opt", "venv", "lib", "site-packages", "userlayers"),  # a pip-installed plug-in
    calls._HARNESS_DIR + "_mine",  # a sibling of the harness folder sharing its name as a prefix
], ids=["installed in site-packages", "beside the harness folder"])
def test_the_raising_line_of_user_code_is_named_wherever_it_is_installed(folder):
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", P.plugin(_raising_function_in(folder), fx.conv_backward), settings=QUICK)
    message = str(failure.value)
    assert "forward raised RuntimeError: kernel launch failed" in message
    assert "layer.py:2 in forward)" in message and "raised at " in message


def test_frames_of_the_harness_and_of_numpy_are_not_blamed():
    """An exception raised inside numpy, called from user code, is placed at the user's line, not numpy's."""
    def forward(x, w, b, stride, padding, dilation):
        return np.reshape(x, (7, 7, 7))  # numpy raises ValueError inside its own code
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=QUICK)
    message = str(failure.value)
    assert "raised at tests/test_bad_plugins.py:" in message and "in forward)" in message


def test_keyboard_interrupt_inside_a_plugin_still_stops_the_run():
    def forward(x, w, b, stride, padding, dilation):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=QUICK)
