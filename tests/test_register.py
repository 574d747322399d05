"""Op specs from outside the repository: a user declares OpSpecs for BatchNorm2d, LayerNorm and a grouped convolution
(no declared term sizes), registers them, and check_plugin runs the whole suite on them; a gradient off by 1e-6
fails. A spec with a mistake is refused at registration with a message saying what to fix; installed packages add
ops through the ``cnn_gradcheck.ops`` entry-point group."""
import dataclasses
import re
import sys
import textwrap

import pytest
import torch.nn.functional as F
from hypothesis import Phase, settings, strategies as st

from cnn_gradcheck import plugins as P, registry
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin
from cnn_gradcheck.registry import all_specs, get_spec, register, unregister
from cnn_gradcheck.spec import Implementation, OpSpec, SpecError, validate
from cnn_gradcheck.strategies import pick

import test_generic as user  # the user's numpy layers (tests/ is on sys.path)

FEW = settings(max_examples=8, deadline=None, derandomize=True, database=None,
               phases=[Phase.explicit, Phase.generate])
#: without the PyTorch oracle: the normalization layers' correct gradients meet today's rounding false alarm there
NO_PYTORCH = ("reference", "alternatives", "finite differences", "adjoint")


# ------------------------------------------------------------------------------- the user's specs (no magnitudes)

def _norm_configs(**fixed):
    return st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)), "C": pick(fixed, "C", st.integers(1, 3)),
                                  "H": pick(fixed, "H", st.integers(1, 3)), "W": pick(fixed, "W", st.integers(2, 3))})


BATCHNORM = OpSpec(
    name="user_batchnorm2d", arg_names=("x", "gamma", "beta"), configs=_norm_configs,
    make_arrays=lambda c, rng: {"x": rng.standard_normal((c["N"], c["C"], c["H"], c["W"])),
                                "gamma": rng.standard_normal(c["C"]), "beta": rng.standard_normal(c["C"])},
    output_shape=lambda c: (c["N"], c["C"], c["H"], c["W"]), hyper=lambda c: {"eps": 1e-5},
    torch_forward=lambda x, g, b, eps: F.batch_norm(x, None, None, g, b, training=True, eps=eps),
    reference=Implementation("user batchnorm", user.batchnorm_forward, user.batchnorm_backward),
    reduction_length=lambda c: c["N"] * c["H"] * c["W"], description="BatchNorm2d, training mode")

LAYERNORM = OpSpec(
    name="user_layernorm", arg_names=("x", "gamma", "beta"),
    configs=lambda **fixed: st.fixed_dictionaries({"N": pick(fixed, "N", st.integers(1, 3)),
                                                   "D": pick(fixed, "D", st.integers(1, 5))}),
    make_arrays=lambda c, rng: {"x": rng.standard_normal((c["N"], c["D"])), "gamma": rng.standard_normal(c["D"]),
                                "beta": rng.standard_normal(c["D"])},
    output_shape=lambda c: (c["N"], c["D"]), hyper=lambda c: {},
    torch_forward=lambda x, g, b: F.layer_norm(x, x.shape[-1:], g, b, 1e-5),
    reference=Implementation("user layernorm", user.layernorm_forward, user.layernorm_backward),
    reduction_length=lambda c: max(c["N"], c["D"]), description="LayerNorm over the last axis")


def _gconv_configs(**fixed):
    return st.fixed_dictionaries({k: pick(fixed, k, s) for k, s in (
        ("N", st.integers(1, 2)), ("groups", st.integers(1, 3)), ("cg", st.integers(1, 2)),
        ("og", st.integers(1, 2)), ("kh", st.integers(1, 3)), ("kw", st.integers(1, 3)),
        ("stride", st.integers(1, 2)), ("Hout", st.integers(1, 3)), ("Wout", st.integers(1, 3)))})


def _gconv_arrays(c, rng):
    h, w = (c["Hout"] - 1) * c["stride"] + c["kh"], (c["Wout"] - 1) * c["stride"] + c["kw"]
    return {"x": rng.standard_normal((c["N"], c["groups"] * c["cg"], h, w)),
            "w": rng.standard_normal((c["groups"] * c["og"], c["cg"], c["kh"], c["kw"])),
            "b": rng.standard_normal(c["groups"] * c["og"])}


GROUPED_CONV = OpSpec(
    name="user_grouped_conv", arg_names=("x", "w", "b"), configs=_gconv_configs, make_arrays=_gconv_arrays,
    output_shape=lambda c: (c["N"], c["groups"] * c["og"], c["Hout"], c["Wout"]),
    hyper=lambda c: {"groups": c["groups"], "stride": c["stride"]}, torch_forward=user.torch_gconv,
    reference=Implementation("user grouped conv", user.gconv_forward, user.gconv_backward),
    reduction_length=lambda c: max(c["cg"] * c["kh"] * c["kw"] + 1, c["N"] * c["Hout"] * c["Wout"]),
    linear_args=("x", "w", "b"), description="grouped convolution")

SPECS = {"batchnorm2d": BATCHNORM, "layernorm": LAYERNORM, "grouped_conv": GROUPED_CONV}


@pytest.fixture
def registered():
    """The three user specs registered for one test, and removed afterwards (other tests iterate all_specs)."""
    for spec in SPECS.values():
        register(spec)
    yield SPECS
    for spec in SPECS.values():
        unregister(spec.name)


def _plugin(layer, wrong=None):
    forward, backward = user.LAYERS[layer][:2]
    if wrong is not None:
        backward = user.off_by(backward, user.ARGS[layer], wrong, 1e-6)
    return P.plugin(forward, backward, name=f"{layer} plug-in" + (f" (d{wrong} off by 1e-6)" if wrong else ""))


# --------------------------------------------------------------------------------------- registered user ops

def test_registered_ops_are_seen_by_the_registry(registered):
    names = {spec.name for spec in registered.values()}
    assert names <= set(all_specs())
    assert get_spec("user_layernorm") is LAYERNORM
    unregister("user_layernorm")
    assert "user_layernorm" not in all_specs()
    register(LAYERNORM)  # the fixture removes it again


@pytest.mark.parametrize("layer", ["batchnorm2d", "layernorm", "grouped_conv"])
def test_a_registered_correct_layer_passes_the_whole_suite(registered, layer):
    report = check_plugin(registered[layer].name, _plugin(layer), settings=settings(FEW, max_examples=40))
    assert {"pytorch", "reference", "finite differences"} <= report.oracles_seen


@pytest.mark.parametrize("layer", SPECS)
def test_a_registered_correct_layer_passes_reference_finite_differences_and_adjoint(registered, layer):
    report = check_plugin(registered[layer].name, _plugin(layer), settings=FEW, oracles=NO_PYTORCH)
    assert {"reference", "finite differences"} <= report.oracles_seen
    assert ("adjoint" in report.oracles_seen) == (layer == "grouped_conv")


@pytest.mark.parametrize("layer", SPECS)
def test_a_registered_layer_with_a_gradient_off_by_one_millionth_fails(registered, layer):
    oracles = None if layer == "grouped_conv" else NO_PYTORCH
    for wrong in user.ARGS[layer]:
        with pytest.raises(PluginCheckFailure) as failure:
            check_plugin(registered[layer].name, _plugin(layer, wrong), settings=FEW, oracles=oracles)
        assert str(failure.value).startswith(f"{registered[layer].name}: d{wrong} wrong"), str(failure.value)


def test_a_name_is_taken_once(registered):
    with pytest.raises(SpecError, match="already exists .*register.*unregister"):
        register(LAYERNORM)
    with pytest.raises(SpecError, match="'conv2d' already exists .*the harness"):
        register(dataclasses.replace(LAYERNORM, name="conv2d"))
    with pytest.raises(KeyError, match="was not added with register"):
        unregister("conv2d")


# ------------------------------------------------------------------------------------------- validation

def test_every_builtin_spec_validates():
    for spec in all_specs().values():
        validate(spec)


def _draws_tuples(**fixed):
    return st.tuples(st.integers(1, 2))


BROKEN = {
    "arg_names a string": (dict(arg_names="x"), "arg_names='x' is a string; write a tuple of names: arg_names=('x',)"),
    "arg name twice": (dict(arg_names=("x", "x", "beta")), "names an argument twice"),
    "grad_args unknown": (dict(grad_args=("x", "y")), "grad_args names 'y', which is not among arg_names"),
    "linear not differentiable": (dict(grad_args=("x",), linear_args=("beta",)),
                                  "linear_args names 'beta', which is not among the differentiable arguments"),
    "piecewise without kink_distance": (dict(piecewise_linear_args=("x",)), "need kink_distance"),
    "configs not callable": (dict(configs=None), "configs is None, not a callable"),
    "configs draws tuples": (dict(configs=_draws_tuples), "configs() draws tuple values"),
    "configs not a strategy": (dict(configs=lambda **fixed: {"N": 1}), "not a Hypothesis strategy"),
    "output_shape a list": (dict(output_shape=lambda c: [c["N"], c["D"]]), "must return a tuple"),
    "hyper returns None": (dict(hyper=lambda c: None), "hyper(config) returned None; it must return a dict"),
    "hyper raises": (dict(hyper=lambda c: c["eps"]), "hyper(config) raised KeyError"),
    "reduction_length 0": (dict(reduction_length=lambda c: 0), "it must return an int >= 1"),
    "make_arrays misses one": (dict(make_arrays=lambda c, rng: {"x": rng.standard_normal((c["N"], c["D"]))}),
                               "one array per name in arg_names"),
    "reference not an implementation": (dict(reference=user.layernorm_forward), "must be an Implementation"),
    "torch_forward wrong shape": (dict(torch_forward=lambda x, g, b: x.sum()),
                                  "torch_forward returned Tensor of shape ()"),
    "no name": (dict(name=""), "needs a non-empty name"),
}


@pytest.mark.parametrize("mistake", BROKEN)
def test_a_broken_spec_is_refused_with_what_to_fix(mistake):
    changes, said = BROKEN[mistake]
    with pytest.raises(SpecError) as error:
        register(dataclasses.replace(LAYERNORM, **changes))
    assert said in str(error.value)
    assert "user_layernorm" not in all_specs()


def test_register_takes_an_opspec():
    with pytest.raises(SpecError, match="expected a cnn_gradcheck.OpSpec, got dict"):
        register({"name": "mine"})


# ------------------------------------------------------------------------------------------ entry points

def _install(tmp_path, monkeypatch, module_source: str, entry: str) -> None:
    """A package 'user_ops' and its dist-info declaring ``entry`` under cnn_gradcheck.ops, importable from tmp_path."""
    (tmp_path / "user_ops.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / "user_ops-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-ops\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[cnn_gradcheck.ops]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_ops", raising=False)
    registry.refresh()


@pytest.fixture
def entry_points_restored():
    yield
    registry.refresh()  # after monkeypatch removed the path: the installed package is gone again


SOURCE = """
    import dataclasses
    import test_register
    SPECS = [dataclasses.replace(test_register.LAYERNORM, name="installed_layernorm")]
    ALSO = [dataclasses.replace(test_register.GROUPED_CONV, name="installed_grouped_conv")]
"""


@pytest.mark.parametrize("entry, op", [("layers = user_ops", "installed_layernorm"),
                                       ("more = user_ops:ALSO", "installed_grouped_conv")])
def test_an_installed_package_adds_ops_through_the_entry_point_group(tmp_path, monkeypatch, entry_points_restored,
                                                                     entry, op):
    _install(tmp_path, monkeypatch, SOURCE, entry)
    assert op in all_specs()
    layer = "layernorm" if "layernorm" in op else "grouped_conv"
    report = check_plugin(op, _plugin(layer), settings=FEW, oracles=NO_PYTORCH)
    assert "finite differences" in report.oracles_seen


def test_a_broken_entry_point_is_named(tmp_path, monkeypatch, entry_points_restored):
    _install(tmp_path, monkeypatch, "SPECS = [1]\n", "broken = user_ops")
    with pytest.raises(SpecError, match="entry point broken = 'user_ops' .*package user-ops.*holds int"):
        all_specs()


# -------------------------------------------------------------------------------------------------- the soak

def test_the_soak_counts_examples_and_reports_false_alarms(capsys):
    """``make soak`` soaks registered ops too: a correct one runs its examples without alarm; one whose
    reference is wrong (a dw off by 1e-6) is reported as an alarm, and the exit status says so."""
    from cnn_gradcheck import soak

    wrong = Implementation("dw off by 1e-6", user.gconv_forward,
                           user.off_by(user.gconv_backward, user.ARGS["grouped_conv"], "w", 1e-6))
    register(dataclasses.replace(GROUPED_CONV, name="soaked_conv"))
    register(dataclasses.replace(GROUPED_CONV, name="soaked_wrong_conv", reference=wrong))
    try:
        assert soak.main(["--only", "soaked_conv", "--examples", "4", "--seeds", "2"]) == 0
        out = capsys.readouterr().out  # 2 seeds x 2 generated examples, and the explicit typical cases of each run
        assert re.search(r"soak: ([4-9]|\d\d+) examples run, 0 false alarm\(s\)", out), out
        assert soak.main(["--only", "soaked_wrong", "--examples", "2", "--seeds", "1"]) == 1
        out = capsys.readouterr().out
        assert "FALSE ALARM seed 0: soaked_wrong_conv: dw wrong" in out and "1 false alarm(s)" in out
    finally:
        unregister("soaked_conv")
        unregister("soaked_wrong_conv")
