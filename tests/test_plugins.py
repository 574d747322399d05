"""Plug-ins: each adapter brings a correct layer through the whole suite; limits keep the generator inside and are
reported; inputs arrive in every memory layout (channels_last for torch); lower precision gets a note, not a
rejection; the command-line option and a user's own test file work."""
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings, strategies as st

from cnn_gradcheck import plugins as P, profiles
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin
from cnn_gradcheck.registry import all_specs

import plugin_fixtures as fx  # tests/ is on sys.path (pytest rootdir-relative import)

pytest_plugins = ["pytester"]  # the command-line option, run in-process

#: the same few cases under every Hypothesis profile (an explicit settings object inherits the profile's randomness)
FEW = settings(max_examples=5, deadline=None, derandomize=True, database=None)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ADAPTERS = {
    "canonical numpy functions": P.plugin(fx.conv_forward, fx.conv_backward),
    "function pair with cache (cs231n)": P.function_pair(
        fx.pair_forward, fx.pair_backward,
        call=lambda x, w, b, **hyper: (x, w, b, hyper)),
    "object, gradients in attributes, one instance reused (accumulating, diff)": P.layer_object(
        fx.ConvLayer(), params={"w": "W", "b": "b"}, grads={"w": "dW", "b": "db"}, accumulate="diff",
        limits={"stride": 1, "padding": 0, "dilation": 1}),
    "object, gradients in dicts, channels-last (examples/nhwc_conv.py)": __import__(
        "cnn_gradcheck.examples.nhwc_conv", fromlist=["PLUGIN"]).PLUGIN,
    "torch function": P.torch_function(F.conv2d),
    "torch.autograd.Function": P.autograd_function(fx.ConvFunction),
    "torch.nn.Module": P.torch_module(fx.conv_module, params={"w": "weight", "b": "bias"}),
}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_correct_layer_passes_through_every_adapter(adapter):
    report = check_plugin("conv2d", ADAPTERS[adapter], settings=FEW)
    assert report.cases >= 5
    assert {"pytorch", "reference", "finite differences", "adjoint"} <= report.oracles_seen


def _reused_conv_layer(accumulate):
    """One ConvLayer instance for every call; it adds into dW and db (dW += ...) across backward calls."""
    return P.layer_object(fx.ConvLayer(), params={"w": "W", "b": "b"}, grads={"w": "dW", "b": "db"},
                          accumulate=accumulate, limits={"stride": 1, "padding": 0, "dilation": 1})


def test_reused_layer_object_without_reset_is_caught_as_nondeterministic():
    """The same accumulating object with its accumulation not undone (accumulate="none"): the second identical call
    gives doubled gradients. With "reset" (zeroed before each backward) the same object passes."""
    check_plugin("conv2d", _reused_conv_layer("reset"), settings=FEW)
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", _reused_conv_layer("none"), settings=FEW)
    message = str(failure.value)
    assert message.startswith("conv2d: nondeterministic results in ")
    assert "two identical calls gave different dw, db" in message
    assert "gradients accumulated across calls" in message and "configuration: conv2d(" in message


def test_limits_keep_the_generator_inside_and_the_report_names_what_was_left_out():
    def forward(x, w, b, stride, padding, dilation):
        assert stride == (1, 1) and padding == (0, 0), "only stride 1 without padding"
        return fx.conv_forward(x, w, b, stride, padding, dilation)

    limited = P.plugin(forward, fx.conv_backward, limits={"stride": 1, "padding": 0}, name="no-stride conv")
    report = check_plugin("conv2d", limited, settings=FEW)
    assert all(c["sh"] == c["sw"] == 1 and c["ph"] == c["pw"] == 0 for c in report.configs)
    summary = report.summary()
    assert "excluded by the limits (stride=1, padding=0)" in summary
    assert "sh in {2, 3}" in summary and "ph in {1" in summary
    assert "; sh {1}; sw {1}; ph {0}; pw {0};" in summary  # the values drawn, per field
    assert "formula" not in summary  # derivation rows mean nothing to a plug-in's author
    with pytest.raises(PluginCheckFailure, match="only stride 1 without padding"):  # undeclared: reported
        check_plugin("conv2d", P.plugin(forward, fx.conv_backward), settings=FEW)


# ------------------------------------------------------- limits: values, sets, strategies, tied axes, raised sizes

def _scalar_conv(x, w, b, stride, padding, dilation):
    """A conv taking one int stride and padding, as many hand-written layers do."""
    assert isinstance(stride, int) and isinstance(padding, int), f"ints expected, got {stride!r}, {padding!r}"
    return F.conv2d(x, w, b, stride, padding, dilation)


def test_scalar_hyperparameters_are_declared_in_one_word():
    report = check_plugin("conv2d", P.torch_function(_scalar_conv, scalar=("stride", "padding")), settings=FEW)
    assert all(c["sh"] == c["sw"] and c["ph"] == c["pw"] for c in report.configs)
    assert any(c["sh"] > 1 for c in report.configs) and any(c["ph"] > 0 for c in report.configs)
    assert ("tied axes (equal in every case): stride (sh = sw; passed as one int), padding (ph = pw; passed as "
            "one int)") in report.summary()
    with pytest.raises(PluginCheckFailure, match="ints expected"):  # undeclared: the layer is handed pairs
        check_plugin("conv2d", P.torch_function(_scalar_conv), settings=FEW)
    # one axis limited by its field (numpy ints too): the other follows it
    limited = P.torch_function(_scalar_conv, scalar=("stride", "padding"), limits={"sh": {np.int64(1), 3}})
    assert {(c["sh"], c["sw"]) for c in check_plugin("conv2d", limited, settings=FEW).configs} <= {(1, 1), (3, 3)}


def test_square_kernels_and_inputs():
    report = check_plugin("conv2d", P.torch_function(F.conv2d, square=True), settings=FEW)
    assert all(c["kh"] == c["kw"] and c["H"] == c["W"] for c in report.configs)
    assert "tied axes (equal in every case): kernel (kh = kw), size (H = W)" in report.summary()


def _first_stride_only(x, w, b, stride, padding, dilation):
    """A conv that reads one stride for both axes: right whenever the axes are drawn equal."""
    return F.conv2d(x, w, b, stride[0], padding, dilation)


@pytest.mark.parametrize("stride", [st.integers(1, 3), {1, 2, 3}, 2])
def test_an_alias_limit_draws_one_value_for_both_axes(stride):
    """``stride=st.integers(1, 3)`` (or a set, or a value) ties sh and sw: a one-stride conv passes."""
    report = check_plugin("conv2d", P.torch_function(_first_stride_only), limits={"stride": stride}, settings=FEW)
    assert all(c["sh"] == c["sw"] for c in report.configs)


def test_a_pair_limit_gives_one_value_per_axis():
    report = check_plugin("conv2d", P.torch_function(F.conv2d), limits={"stride": (1, 2)}, settings=FEW)
    assert {(c["sh"], c["sw"]) for c in report.configs} == {(1, 2)}


@pytest.mark.parametrize("padding", [st.integers(0, 2), {1, 2}, 1])
def test_a_padding_limit_keeps_the_padding_rule(padding):
    """torch's max pooling refuses a padding over half the window: every drawn window is wide enough."""
    def pool(x, kernel, stride, padding):
        return F.max_pool2d(x, kernel, stride, padding)
    report = check_plugin("maxpool2d", P.torch_function(pool), limits={"padding": padding}, settings=FEW)
    assert all(c["ph"] <= c["kh"] // 2 and c["pw"] <= c["kw"] // 2 for c in report.configs)
    conv = check_plugin("conv2d", P.torch_function(F.conv2d), limits={"padding": padding}, settings=FEW)
    assert all(c["ph"] <= c["dilh"] * (c["kh"] - 1) // 2 for c in conv.configs)


def test_input_sizes_can_be_raised_to_what_users_run():
    report = check_plugin("conv2d", P.torch_function(F.conv2d), limits={"size": 32, "N": 8, "C_in": 1, "C_out": 1},
                          settings=settings(FEW, max_examples=3))
    assert all(c["H"] == c["W"] == 32 and c["N"] == 8 for c in report.configs)
    assert "raised beyond the default sizes: N up to 8" in report.summary()
    pooled = check_plugin("maxpool2d", P.as_plugin(all_specs()["maxpool2d"].reference), limits={"H": 16, "W": 9},
                          settings=FEW)
    assert {(c["H"], c["W"]) for c in pooled.configs} == {(16, 9)}


def test_with_limits_replaces_the_plugins_own_limit_on_the_same_fields():
    padded = P.torch_function(F.conv2d, limits={"ph": 1, "pw": 1})
    report = check_plugin("conv2d", padded.with_limits(padding=0), settings=FEW)
    assert all(c["ph"] == c["pw"] == 0 for c in report.configs)


@pytest.mark.parametrize("op, limits, phrases", [
    ("conv2d", {"Hin": 3}, ("conv2d has no configuration field 'Hin'", "its fields are N, C_in, C_out, H, W, kh",
                            "the aliases stride, padding, dilation, kernel, remainder, size, out",
                            "also accepted: Hout, Wout, rh, rw")),
    ("relu_cnn", {"H": 5}, ("relu_cnn has no configuration field 'H' that can be limited",
                            "(H, W: computed from the others, not limited directly)")),
    # a kernel fixed to one int is taken as asked (kernel=1, padding=1 is a drawn corner); a set keeps the rule
    ("conv2d", {"kernel": {1, 2}, "dilation": 1, "padding": 1},
     ("no configuration keeps both these limits and the op's validity rules",)),
    ("conv2d", {"H": 32, "Hout": 3}, ("the input size H determines Hout and rh",)),
    ("conv2d", {"N": (1, 2)}, ("N=(1, 2): a tuple gives one value per axis, for the aliases", "a set {1, 2}")),
])
def test_a_limit_that_cannot_be_honoured_is_refused_with_the_names_accepted(op, limits, phrases):
    with pytest.raises(P.PluginOptionError) as error:
        check_plugin(op, P.as_plugin(all_specs()[op].reference), limits=limits, settings=FEW)
    for phrase in phrases:
        assert phrase in str(error.value), str(error.value)


def test_a_tied_name_the_op_lacks_is_refused():
    with pytest.raises(P.PluginOptionError, match="dense has no pair of axes 'stride'; its hyperparameters are not "
                                                  "per axis"):
        check_plugin("dense", P.plugin(fx.conv_forward, fx.conv_backward, scalar=("stride",)), settings=FEW)


def _contiguous_strides(a):
    return tuple(int(np.prod(a.shape[i + 1:])) * a.itemsize for i in range(a.ndim))


def _im2col_forward(x, w, b, stride, padding, dilation):
    """Windows by as_strided with strides computed from the shape: right only for C-contiguous x."""
    N, C, H, W = x.shape
    K, _, kh, kw = w.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    sN, sC, sH, sW = _contiguous_strides(x)  # the bug: x.strides is what as_strided needs
    cols = np.lib.stride_tricks.as_strided(x, (N, Ho, Wo, C, kh, kw), (sN, sH, sW, sC, sH, sW))
    return np.einsum("nijcst,kcst->nkij", cols, w) + b[None, :, None, None]


def test_code_assuming_contiguous_numpy_inputs_is_caught():
    buggy = P.plugin(_im2col_forward, fx.conv_backward, limits={"stride": 1, "padding": 0, "dilation": 1},
                     name="as_strided im2col")
    check_plugin("conv2d", buggy, layouts=["contiguous"], settings=FEW)  # right on contiguous inputs
    for layout, problem in [("transposed", "forward wrong"), ("strided", "NaN in the output")]:
        with pytest.raises(PluginCheckFailure) as failure:
            check_plugin("conv2d", buggy, layouts=[layout], settings=FEW)
        message = str(failure.value)
        assert problem in message and f"(inputs as {layout} views)" in message
        assert "assumes a contiguous layout" in message


def _flat_view_conv(x, w, b, stride, padding, dilation):
    """Reads x through its storage as if it were contiguous (what raw data_ptr code does)."""
    flat = torch.as_strided(x, (x.numel(),), (1,))
    return F.conv2d(flat.reshape(x.shape), w, b, stride, padding, dilation)


@pytest.mark.parametrize("layout, problem", [("channels_last", "forward"), ("strided", "NaN")])
def test_torch_code_assuming_contiguous_memory_is_caught(layout, problem):
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", P.torch_function(_flat_view_conv), layouts=[layout], settings=FEW)
    message = str(failure.value)
    assert problem in message and f"inputs as {layout} views" in message


def test_torch_plugins_receive_channels_last_and_strided_tensors():
    seen = set()

    def spy(x, w, b, stride, padding, dilation):
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            seen.add("channels_last")
        if not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last):
            seen.add("non-contiguous")
        return F.conv2d(x, w, b, stride, padding, dilation)

    check_plugin("conv2d", P.torch_function(spy), layouts=["channels_last", "strided"],
                 settings=settings(FEW, max_examples=8), limits={"C_in": 2, "N": 2},
                 isolate=False)  # the spy records into `seen` in this process, not in a worker's copy
    assert seen == {"channels_last", "non-contiguous"}


def test_float32_plugins_are_checked_with_float32_tolerances_and_a_note():
    def forward32(x, w, b, stride, padding, dilation):
        return fx.conv_forward(*(a.astype(np.float32) for a in (x, w, b)), stride, padding, dilation)

    def backward32(dy, x, w, b, stride, padding, dilation):
        return fx.conv_backward(*(a.astype(np.float32) for a in (dy, x, w, b)), stride, padding, dilation)

    with pytest.warns(P.PrecisionNote, match=r"returns float32 results.*tolerance = 8 \* eps\(float32\)"):
        report = check_plugin("conv2d", P.plugin(forward32, backward32), settings=FEW)
    assert report.precision == "float32"
    # channels_last left out: PyTorch 2.13's own float32 channels_last conv2d crashes at corner configurations
    # (tests/test_framework_kernels.py checks that crash is reported); here the float32 tolerance is the subject
    torch32 = P.torch_function(F.conv2d, dtype="float32", layouts=("contiguous", "strided", "transposed"))
    with pytest.warns(P.PrecisionNote):
        check_plugin("conv2d", torch32, settings=FEW)

    def off_by_1e2(x, w, b, stride, padding, dilation):  # far above float32 rounding: still rejected
        return forward32(x, w, b, stride, padding, dilation) * (1 + 1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", P.PrecisionNote)
        with pytest.raises(PluginCheckFailure, match=r"(?s)conv2d: forward.* wrong in .*precision note"):
            check_plugin("conv2d", P.plugin(off_by_1e2, backward32), settings=FEW)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine: the CUDA plug-in check "
                                                          "needs one (it runs the same suite on device='cuda')")
def test_torch_plugin_on_cuda_is_checked_the_same_way():
    report = check_plugin("conv2d", P.torch_function(F.conv2d, device="cuda"), settings=FEW)
    assert report.cases >= 5 and report.precision == "float64"


def test_a_users_test_file(monkeypatch):
    """examples/test_my_layer.py, as a user would run it (with few examples here, to keep the suite fast)."""
    settings.register_profile("plugin-test", settings(profiles.get(),
                                                      max_examples=4))
    try:
        settings.load_profile("plugin-test")
        from cnn_gradcheck.examples.test_my_layer import test_my_conv_layer
        test_my_conv_layer()
    finally:
        profiles.load()


def test_command_line_option(pytester, ci_profile):
    """`pytest --plugin OP=MODULE:ATTR` needs no test file; the buggy example's report is shrunk and traceback-free.
    Run in-process (pytester), under the ci profile as `CNN_GRADCHECK_PROFILE=ci pytest --plugin ...` runs; a real
    subprocess and the installed entry point are tests/test_packaging.py's."""
    run = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--plugin", "conv2d=cnn_gradcheck.examples.buggy_conv:PLUGIN",
        "--plugin", "conv2d=cnn_gradcheck.examples.nhwc_conv:PLUGIN", "--plugin-max-examples", "8")
    out = run.stdout.str()
    assert run.ret == 1, out + run.stderr.str()
    assert "1 passed" in out and "1 failed" in out
    assert "conv2d: dw wrong in buggy conv (examples/buggy_conv.py)" in out
    assert "configuration: conv2d(N=1, C_in=1, C_out=1, H=1, W=3, kh=1" in out
    assert "Traceback" not in out and "plugins.py" not in out
    # the README and docs show this report, every line. The documented run has the ci profile's 25 examples: the
    # derandomized failure is found within the first 8 and shrinks the same way, so the report is the same.
    lines = out.splitlines()
    start = lines.index("conv2d: dw wrong in buggy conv (examples/buggy_conv.py)")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("  (checked within the plug-in's limits"))
    report = lines[start:end + 1]
    for document, heading in [("README.md", "### What a failure report says"), ("docs/plugins.md", "## 4. ")]:
        shown = _fenced_block_after(os.path.join(ROOT, document), heading)
        assert shown == report, f"{document} shows another failure report; the real one:\n" + "\n".join(report)
    assert "ConvNHWC (examples/nhwc_conv.py) passed 8 generated cases" in out
    assert "not covered: excluded by the limits (dilation=1): dilh in {2}; dilw in {2}" in out


def _fenced_block_after(path: str, heading: str) -> list[str]:
    """The lines of the first ``` block after the line starting with ``heading``."""
    with open(path) as f:
        lines = f.read().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(heading))
    opening = next(i for i in range(at, len(lines)) if lines[i].startswith("```"))
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    return lines[opening + 1:closing]


@pytest.mark.parametrize("option, value, message", [
    ("--plugin-max-examples", "-1", "--plugin-max-examples must be a positive number of generated cases, not -1"),
    ("--plugin-time-limit", "0", "--plugin-time-limit must be a positive number of seconds, not 0.0"),
])
def test_command_line_option_errors_are_usage_errors(pytester, option, value, message):
    """A bad --plugin-max-examples or --plugin-time-limit stops pytest with a message naming the option (no
    traceback)."""
    run = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--plugin",
                                       "conv2d=cnn_gradcheck.examples.nhwc_conv:PLUGIN", option, value)
    out, err = run.stdout.str(), run.stderr.str()
    assert run.ret == 4, out + err  # pytest's usage-error exit code
    assert message in err
    assert "Traceback" not in out + err


def test_not_applicable_oracles_are_listed_with_their_note_not_counted_as_seen():
    """An oracle that does not apply (verdict n/a, e.g. finite differences at float16) is not "seen": the summary
    lists it with its note."""
    from cnn_gradcheck import compare
    from cnn_gradcheck.options import _sample
    from cnn_gradcheck.runner import CaseResult
    na = getattr(compare, "NA", "n/a")
    spec = all_specs()["relu"]
    report = P.PluginReport(spec, P.as_plugin(spec.reference), {}, ("contiguous",))
    case = spec.make_case(_sample(spec.configs(), 1)[0], 0)
    comparisons = [compare.Comparison("pytorch", "dx", compare.PASS, 0.0, 0.0, 1.0),
                   compare.Comparison("reference", "dx", compare.FAIL, 1.0, 1.0, 0.0),
                   compare.Comparison("finite differences", "dx", na, 0.0, 0.0, 0.0,
                                      note="float16 rounding exceeds the truncation error of any step")]
    report.record(case, "contiguous", CaseResult(spec, spec.reference, case, comparisons))
    assert report.oracles_seen == {"pytorch", "reference"}
    assert ("  not applicable: finite differences: float16 rounding exceeds the truncation error of any step"
            in report.summary().splitlines())


@pytest.mark.parametrize("op", sorted(all_specs()))
def test_every_op_is_pluggable_the_same_way(op):
    """Each op's reference, handed over as a plug-in, passes with non-contiguous inputs (0-d dy of losses too)."""
    spec = all_specs()[op]
    report = check_plugin(op, P.as_plugin(spec.reference), layouts=["transposed", "strided"],
                          settings=settings(FEW, max_examples=2))
    assert report.cases >= 2 and set(report.layouts_seen) <= {"transposed", "strided"}
