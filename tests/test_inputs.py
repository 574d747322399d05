"""What cases are fed to a plug-in, on purpose and in every run: targets without the normalisation a backward may
assume, every input layout the backend supports, special values (exact zeros, repeated values, tiny, huge and
saturated magnitudes) and the user's own explicit examples, checked first."""
import numpy as np
import pytest
from hypothesis import settings

from cnn_gradcheck import profiles
from cnn_gradcheck.layouts import PluginOptionError
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin
from cnn_gradcheck.reference import activations as act
from cnn_gradcheck.reference import losses
from cnn_gradcheck.reference import pooling as ref
from cnn_gradcheck.registry import all_specs, get_spec

#: any run: random, one generated example (what is fed on purpose comes on top, as explicit examples)
ANY_RUN = settings(max_examples=1, deadline=None, database=None)
RUNS = pytest.mark.parametrize("settings_", [ANY_RUN, profiles.get("ci"), profiles.get("default")],
                               ids=["any run", "ci", "default"])


# ------------------------------------------------------------------------------------------- targets (part 2)

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _softmax_ce_assumes_normalised_targets(dE, z, t):
    """dE/dz = p - t: right only when every row of t sums to 1."""
    return (dE * (_softmax(z) - t),)


@RUNS
def test_softmax_cross_entropy_backward_assuming_targets_sum_to_one_is_caught(settings_):
    with pytest.raises(PluginCheckFailure, match="unnormalised targets"):
        check_plugin("softmax_cross_entropy", plugin(losses.softmax_cross_entropy_forward,
                                                     _softmax_ce_assumes_normalised_targets), settings=settings_)


def test_the_losses_defined_for_any_nonnegative_targets_get_unnormalised_ones():
    for op in ("softmax_cross_entropy", "cross_entropy"):
        spec = get_spec(op)
        case = spec.make_case({"N": 3, "K": 3, "scale": 1.0, "offset": 0.0, "targets": "soft",
                               "values": "unnormalised targets"}, seed=0)
        sums = case.arrays["t"].sum(axis=1)
        assert np.all(case.arrays["t"] >= 0) and not np.allclose(sums, 1.0)
    report = check_plugin("softmax_cross_entropy", plugin(losses.softmax_cross_entropy_forward,
                                                          losses.softmax_cross_entropy_backward), settings=ANY_RUN)
    assert report.explicit >= 2  # unnormalised targets among them


# ------------------------------------------------------------------------------------------- layouts (part 3)

def _maxpool_writes_into_reshaped_mask(dy, x, kernel, stride, padding):
    """Writes the routing into mask.reshape(N*C, H, W): a view for C-ordered arrays, a copy (writes lost, zero
    gradient) when x arrives in another memory order, since zeros_like keeps x's order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    mask = np.zeros_like(x)
    flat, xs = mask.reshape(N * C, H, W), x.reshape(N * C, H, W)
    xp = np.pad(xs, ((0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    for m in range(N * C):
        for i in range(dy.shape[2]):
            for j in range(dy.shape[3]):
                window = xp[m, i * sh:i * sh + kh, j * sw:j * sw + kw]
                u, v = np.unravel_index(np.argmax(window), window.shape)
                flat[m, i * sh + u - ph, j * sw + v - pw] += dy[m // C, m % C, i, j]
    return (mask,)


def test_the_reshaped_mask_bug_is_right_on_c_ordered_inputs():
    report = check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, _maxpool_writes_into_reshaped_mask),
                          layouts=["contiguous", "strided"], settings=profiles.get("ci"))
    assert report.cases > 0


@RUNS
def test_a_maxpool_writing_into_a_reshaped_copy_is_caught_in_every_run(settings_):
    with pytest.raises(PluginCheckFailure, match="transposed"):
        check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, _maxpool_writes_into_reshaped_mask),
                     settings=settings_)


@pytest.mark.parametrize("op", sorted(all_specs()))
def test_every_layout_and_every_kind_of_special_values_is_fed_in_every_run(op):
    spec = get_spec(op)
    seen = []

    def forward(*arrays, **hyper):
        seen.append(("layout", "transposed" if arrays[0].ndim > 1 and not arrays[0].flags.c_contiguous
                     and arrays[0].flags.f_contiguous else "other"))
        return spec.reference.forward(*arrays, **hyper)

    from cnn_gradcheck.explicit import explicit_cases
    pairs = explicit_cases(spec, {}, ("contiguous", "strided", "transposed"))
    assert {layout for _, layout in pairs} == {"contiguous", "strided", "transposed"}
    assert {case.values for case, _ in pairs} == {"generic", *spec.special_values}
    if op in ("relu_cnn", "toolbox_cnn"):  # whole networks: slow; the explicit cases above are what runs
        return
    report = check_plugin(op, plugin(forward, spec.reference.backward), settings=ANY_RUN)
    assert set(report.layouts_seen) == {"contiguous", "strided", "transposed"}
    assert ("layout", "transposed") in seen


# ------------------------------------------------------------------------------------ special values (part 4)

def _sigmoid_backward_zero_at_zero(dy, x):
    """The derivative computed as 0 where x == 0 exactly (a where(x != 0, ...) slip); right everywhere else."""
    (dx,) = act.sigmoid_backward(dy, x)
    return (np.where(x == 0, 0.0, dx),)


@RUNS
def test_a_sigmoid_whose_backward_is_zero_at_exact_zeros_is_caught_in_every_run(settings_):
    with pytest.raises(PluginCheckFailure, match="values=zeros"):
        check_plugin("sigmoid", plugin(act.sigmoid_forward, _sigmoid_backward_zero_at_zero), settings=settings_)


def test_special_values_are_what_they_say():
    sig = get_spec("sigmoid")
    base = {"N": 3, "K": 4, "offset": 0.0}
    assert np.any(sig.make_case({**base, "values": "zeros"}, 0).arrays["x"] == 0)
    assert np.all(np.abs(sig.make_case({**base, "values": "saturated"}, 0).arrays["x"]) >= 30)
    assert np.ptp(sig.make_case({**base, "values": "repeated"}, 0).arrays["x"]) == 0
    assert np.max(np.abs(sig.make_case({**base, "values": "tiny"}, 0).arrays["x"])) < 1e-2
    conv = get_spec("conv2d")
    config = {"N": 1, "C_in": 2, "C_out": 2, "H": 4, "W": 4, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
              "dilh": 1, "dilw": 1}
    generic = conv.make_case(config, 5)
    huge = conv.make_case({**config, "values": "huge"}, 5)
    assert np.allclose(huge.arrays["x"], 1e3 * generic.arrays["x"])
    assert np.array_equal(huge.arrays["w"], generic.arrays["w"]) and np.array_equal(huge.dy, generic.dy)


def test_generic_cases_are_unchanged_and_special_values_are_a_share_of_the_drawn_ones():
    from cnn_gradcheck.options import _sample
    spec = get_spec("sigmoid")
    cases = _sample(spec.cases(), 100)
    kinds = [c.values for c in cases]
    assert 0.15 < sum(k != "generic" for k in kinds) / len(kinds) < 0.6
    generic = next(c for c in cases if c.values == "generic")
    assert "values" not in generic.config


# --------------------------------------------------------------------------------- explicit examples (part 5)

TIE = {"config": {"N": 1, "C": 1, "H": 2, "W": 2, "kh": 2, "kw": 2, "sh": 2, "sw": 2, "ph": 0, "pw": 0},
       "x": np.array([[[[1.0, 1.0], [0.0, -1.0]]]]), "dy": np.array([[[[2.5]]]])}


def _every_maximal_cell(dy, x, kernel, stride, padding):
    """Routes dy to every cell equal to the window's maximum (checked here on one 2 x 2 window)."""
    m = x.max(axis=(2, 3), keepdims=True)
    return (np.where(x == m, dy, 0.0),)


def test_an_explicit_example_at_a_tie_gets_the_subgradient_verdict():
    no_generation = settings(max_examples=1, deadline=None, database=None, phases=["explicit"])
    report = check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, ref.maxpool2d_backward), examples=[TIE],
                          settings=no_generation)
    assert "subgradient" in report.oracles_seen
    with pytest.raises(PluginCheckFailure, match=r"(?s)example=1.*dx vs subgradient.*explicit example 1"):
        check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, _every_maximal_cell),
                     limits={"kernel": 2, "stride": 2, "padding": 0, "Hout": 1, "Wout": 1, "remainder": 0},
                     examples=[TIE], settings=no_generation)


def test_explicit_examples_run_first_and_in_every_layout():
    calls = []

    def backward(dy, x, kernel, stride, padding):
        calls.append(np.array(x).tolist())
        return ref.maxpool2d_backward(dy, x, kernel, stride, padding)

    check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, backward), examples=[TIE], settings=ANY_RUN)
    # after the probe of the calling convention (one case, two calls): the example, twice (repeatability) in each
    # of the three layouts, before anything else
    assert calls[2:8] == [TIE["x"].tolist()] * 6


@pytest.mark.parametrize("example, problem", [
    ({"x": TIE["x"]}, "'config'"),
    ({"config": TIE["config"]}, "no array for x"),
    ({**TIE, "w": 1}, "'w' is not an argument"),
    ({**TIE, "x": np.zeros((1, 1, 3, 3))}, r"x has shape \(1, 1, 3, 3\)"),
    ({**TIE, "config": {"N": 1}}, "not a complete configuration"),
])
def test_a_malformed_example_is_an_option_error_naming_it(example, problem):
    with pytest.raises(PluginOptionError, match=f"maxpool2d: explicit example 1: .*{problem}"):
        check_plugin("maxpool2d", plugin(ref.maxpool2d_forward, ref.maxpool2d_backward), examples=[example],
                     settings=ANY_RUN)


@pytest.mark.parametrize("op", sorted(all_specs()))
def test_declared_inputs_are_consistent(op):
    """Kinks fed on purpose are special values of the op, and the op says how to judge them."""
    spec = get_spec(op)
    assert set(spec.kink_values) <= set(spec.special_values)
    assert not spec.kink_values or spec.subgradient is not None
    assert len({name for name, _ in spec.corners}) == len(spec.corners)


def test_a_case_with_unknown_special_values_says_which_kinds_exist():
    with pytest.raises(ValueError, match="relu has no special values 'ties'; its kinds are 'generic', 'zeros'"):
        get_spec("relu").make_case({"N": 1, "K": 2, "offset": 0.0, "values": "ties"}, 0)


def test_replay_reproduces_a_case_with_special_values():
    from cnn_gradcheck.plugins import replay
    config = {"N": 1, "C": 1, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1, "ph": 0, "pw": 0, "values": "ties"}
    result = replay("maxpool2d", plugin(ref.maxpool2d_forward, ref.maxpool2d_backward), config, seed=4)
    assert result.passed and {c.oracle for c in result.comparisons} == {"pytorch", "subgradient"}
    assert get_spec("maxpool2d").kink_distance(result.case.config, result.case.arrays) == 0.0
