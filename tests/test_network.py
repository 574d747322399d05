"""Whole networks: cnnnumgradcheck over every element, training side by side with PyTorch, and that both checks
reject a wrong backward. (The property suite and the mutant catalogue cover the networks' specs generically.)"""
from dataclasses import replace
from functools import partial

import numpy as np
import pytest

from cnn_gradcheck import network, tolerance
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Implementation
from cnn_gradcheck.reference import network as ref

from mutants import wrong_backward

#: small training configurations: 8x8 and 6x6 images, batches of 4
TOOLBOX_SMALL = {"N": 4, "C0": 1, "C1": 2, "C2": 2, "k1": 3, "k2": 2, "s1": 2, "s2": 2, "Oh": 1, "Ow": 1,
                 "classes": 3, "H": 8, "W": 8}
RELU_SMALL = {"N": 4, "C0": 1, "C1": 2, "k": 3, "pool": 2, "Oh": 2, "Ow": 2, "classes": 3, "H": 6, "W": 6}
TRAINING = [("toolbox_cnn", TOOLBOX_SMALL, 1.0), ("relu_cnn", RELU_SMALL, 0.05)]


@pytest.mark.parametrize("op", sorted(network.MAIN_GRADCHECK))
def test_numgradcheck_every_element_agrees(op):
    spec = get_spec(op)
    comparisons = network.numgradcheck(spec, spec.reference, spec.make_case(network.MAIN_GRADCHECK[op], seed=1))
    assert {c.quantity for c in comparisons} == {f"d{n}" for n in spec.differentiable}
    assert {c.oracle for c in comparisons} == {"pytorch", "finite differences (element-wise)"}
    assert all(c.passed for c in comparisons), [c for c in comparisons if not c.passed]


def test_numgradcheck_rejects_cnnbp_without_rot180():
    spec = get_spec("toolbox_cnn")
    wrong = Implementation("no rot180", ref.toolbox_cnn_forward,
                           partial(ref.toolbox_cnn_backward, rules=replace(ref.CNNBP, rotate=lambda k: k.copy())))
    tiny = {"N": 1, "C0": 1, "C1": 1, "C2": 1, "k1": 2, "k2": 2, "s1": 1, "s2": 1, "Oh": 1, "Ow": 1, "classes": 1,
            "H": 3, "W": 3}
    comparisons = network.numgradcheck(spec, wrong, spec.make_case(tiny, seed=1))
    failed = {(c.oracle, c.quantity) for c in comparisons if not c.passed}
    assert ("finite differences (element-wise)", "dx") in failed and ("pytorch", "dx") in failed
    assert ("finite differences (element-wise)", "dW") not in failed   # the layers above the mistake still agree
    dx = next(c for c in comparisons if c.quantity == "dx" and c.oracle.startswith("finite"))
    assert len(dx.worst_index) == 4 and "elements outside tolerance" in dx.note


@pytest.mark.parametrize("op, config, lr", TRAINING, ids=[t[0] for t in TRAINING])
def test_training_matches_pytorch_step_for_step(op, config, lr):
    run = network.training_run(get_spec(op), config, lr, steps=20)
    assert run.steps == len(run.reference.losses) == len(run.torch.losses) == 20
    assert run.passed, run.describe()
    assert run.worst_param_relative <= tolerance.TRAINING_RTOL
    assert run.reference.losses[0] != run.reference.losses[-1]          # the parameters did move


def test_training_rejects_a_gradient_off_by_one_in_a_million():
    spec = get_spec("toolbox_cnn")

    def scale_dW(grads, dy, *arrays, **hyper):
        grads[5] = grads[5] * (1 + 1e-6)
        return grads

    run = network.training_run(spec, TOOLBOX_SMALL, 1.0, steps=3,
                               impl=wrong_backward(spec.reference, "dW * (1 + 1e-6)", scale_dW))
    assert not run.passed and run.worst_param == "W"
    assert "DISAGREE" in run.describe() and "first disagreement at step 1" in run.describe()


def test_training_reports_nan_from_the_implementation_as_a_failure():
    """A NaN is never agreement: the implementation's calls go through cnn_gradcheck.calls, whose guard names it."""
    spec = get_spec("toolbox_cnn")

    def nan_dW(grads, dy, *arrays, **hyper):
        grads[5] = np.full_like(grads[5], np.nan)
        return grads

    run = network.training_run(spec, TOOLBOX_SMALL, 1.0, steps=3,
                               impl=wrong_backward(spec.reference, "dW = NaN", nan_dW))
    text = run.describe()
    assert not run.passed and "DISAGREE" in text
    assert "training stopped at SGD step 1 of 3" in text and "NaN in the output" in text and "the gradient dW" in text


def test_a_nan_difference_never_counts_as_agreement():
    """Python's max(0.0, nan) is 0.0: the verdict must not depend on it."""
    empty = network.TrainingRun()
    run = network.TrainingComparison("toolbox_cnn", "x", 3, 1.0, empty, empty, [1e-16, np.nan, np.nan],
                                     [1e-16, 1e-16, 1e-16], "W")
    assert not run.passed and np.isnan(run.worst_loss_relative)
    assert "first disagreement at step 2" in run.describe()


def test_shapes_dataset_is_reproducible_with_three_balanced_classes():
    x, y = network.shapes_dataset(30, 8, seed=3)
    again, _ = network.shapes_dataset(30, 8, seed=3)
    assert x.shape == (30, 1, 8, 8) and np.array_equal(x, again)
    assert np.array_equal(y.sum(axis=1), np.ones(30)) and np.array_equal(y.sum(axis=0), [10, 10, 10])
    bright = x[:, 0] > 0.5
    rows, cols = bright.any(axis=2).sum(axis=1), bright.any(axis=1).sum(axis=1)
    labels = y.argmax(axis=1)
    assert np.all(rows[labels == 0] == 1) and np.all(cols[labels == 1] == 1)   # one row / one column lit
    assert np.all((rows[labels == 2] >= 3) & (cols[labels == 2] >= 3))        # a square outline


def test_toolbox_network_names_an_indivisible_map():
    x = np.zeros((1, 1, 7, 7))
    with pytest.raises(ValueError, match="conv layer 1 gives 5x5 maps, which subsampling scale 2"):
        ref.toolbox_cnn_forward(x, np.zeros((1, 1)), np.zeros((1, 1, 3, 3)), np.zeros(1), np.zeros((1, 1, 1, 1)),
                                np.zeros(1), np.zeros((1, 1)), np.zeros(1), scales=(2, 2))


def test_loss_curves_are_plotted(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot is optional (pip install .[plots])")
    run = network.training_run(get_spec("relu_cnn"), RELU_SMALL, 0.05, steps=3)
    path = tmp_path / "curves.png"
    assert "plotted" in network.plot_losses([run], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
