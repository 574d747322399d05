"""The sparse-matrix view of convolution (seed 001) and the adjoint (dot-product) oracle."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from cnn_gradcheck import tolerance
from cnn_gradcheck.adjoint import check_pair, dot_product_test, step_for
from cnn_gradcheck.compare import KINK, PASS, compare_arrays
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import check_case
from cnn_gradcheck.spec import Implementation, OpSpec
from cnn_gradcheck.strategies import away_from_zero
from cnn_gradcheck.reference import activations, conv2d, conv_matrix as cm

CONV = get_spec("conv2d")
MATRIX = get_spec("conv2d_matrix")
FEW = settings(max_examples=8, deadline=None, database=None, derandomize=True)


def assert_close(expected, got, case, spec=MATRIX):
    comparison = compare_arrays("test", "value", expected, got, spec.reduction_length(case.config))
    assert comparison.passed, f"{case.describe()}: {comparison}"


# ---- the sparse-matrix view ---------------------------------------------------------------------------------------

def test_seed_example_is_a_4x9_matrix_with_4_shared_weights():
    """001: a 3x3 image and a 2x2 kernel give a 4x9 matrix; 36 connections of a dense layer become 4 weights."""
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # w11 w12 / w21 w22
    M = cm.conv_matrix(w, (1, 3, 3))
    assert M.shape == (4, 9)
    expected = np.array([[1, 2, 0, 3, 4, 0, 0, 0, 0],
                         [0, 1, 2, 0, 3, 4, 0, 0, 0],
                         [0, 0, 0, 1, 2, 0, 3, 4, 0],
                         [0, 0, 0, 0, 1, 2, 0, 3, 4]], dtype=float)
    np.testing.assert_array_equal(M, expected)
    values, uses = np.unique(M[M != 0], return_counts=True)
    assert list(values) == [1, 2, 3, 4] and list(uses) == [4, 4, 4, 4]


@FEW
@given(MATRIX.cases())
def test_matrix_and_im2col_forward_equal_the_loop_forward(case):
    x, w, b = (case.arrays[n] for n in ("x", "w", "b"))
    hyper = MATRIX.hyper(case.config)
    loop = conv2d.correlate2d_forward(x, w, b, **hyper)
    assert_close(loop, cm.conv_matrix_forward(x, w, b, **hyper), case)
    assert_close(loop, cm.im2col_forward(x, w, b, **hyper), case)


@FEW
@given(MATRIX.cases())
def test_dx_is_the_transposed_matrix_and_dw_goes_through_im2col(case):
    x, w, b = (case.arrays[n] for n in ("x", "w", "b"))
    hyper = MATRIX.hyper(case.config)
    dx_loop, dw_loop, db_loop = conv2d.correlate2d_backward(case.dy, x, w, b, **hyper)
    M = cm.conv_matrix(w, x.shape[1:], **hyper)
    dx_transposed = np.stack([(M.T @ case.dy[n].reshape(-1)).reshape(x.shape[1:]) for n in range(x.shape[0])])
    assert_close(dx_loop, dx_transposed, case)
    dx_matrix, dw_matrix, db_matrix = cm.conv_matrix_backward(case.dy, x, w, b, **hyper)
    dx_col2im, dw_im2col, db_im2col = cm.im2col_backward(case.dy, x, w, b, **hyper)
    for loop, *others in ((dx_loop, dx_matrix, dx_col2im), (dw_loop, dw_matrix, dw_im2col),
                          (db_loop, db_matrix, db_im2col)):
        for other in others:
            assert_close(loop, other, case)
    # dW_mat = sum_n dy[n] cols(x)[n]^T, written out
    cols = cm.im2col(x, w.shape[2:], **hyper)
    dy_mat = case.dy.reshape(x.shape[0], w.shape[0], -1)
    assert_close(dw_loop, sum(dy_mat[n] @ cols[n].T for n in range(x.shape[0])).reshape(w.shape), case)


@FEW
@given(MATRIX.cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    x, w = case.arrays["x"], case.arrays["w"]
    hyper = MATRIX.hyper(case.config)
    rng = np.random.default_rng(case.seed)
    cols = cm.im2col(x, w.shape[2:], **hyper)
    v = rng.standard_normal(cols.shape)
    assert check_pair("dx", cols, v, x, cm.col2im(v, x.shape, w.shape[2:], **hyper)).passed


# ---- the adjoint oracle ---------------------------------------------------------------------------------------------

def test_dot_product_test_is_exact_for_a_matrix_and_its_transpose():
    rng = np.random.default_rng(0)
    A, u, v = rng.standard_normal((30, 20)), rng.standard_normal(20), rng.standard_normal(30)
    lhs, rhs, err, scale = dot_product_test(A @ u, v, u, A.T @ v)
    assert err <= tolerance.adjoint_tolerance(scale) and not check_pair("dx", A @ u, v, u, 1.001 * A.T @ v).passed


@pytest.mark.parametrize("arg", ["x", "w", "b"])
def test_backward_off_by_1e_10_passes_finite_differences_but_fails_adjoint(arg):
    """The gain: finite differences resolve 1e-8 relative; the adjoint identity is exact up to rounding."""
    index = "xwb".index(arg)

    def backward(dy, *arrays, **hyper):
        grads = list(CONV.reference.backward(dy, *arrays, **hyper))
        grads[index] = grads[index] * (1 + 1e-10)
        return tuple(grads)

    off = Implementation(f"d{arg} * (1 + 1e-10)", CONV.reference.forward, backward)
    quantity = f"d{arg}"
    for seed in range(3):
        case = CONV.make_case({"N": 1, "C_in": 2, "C_out": 2, "H": 4, "W": 5, "kh": 2, "kw": 3, "sh": 1, "sw": 2,
                               "ph": 0, "pw": 1, "dilh": 1, "dilw": 1}, seed)
        result = check_case(CONV, off, case, oracles=("finite differences", "adjoint"))
        verdicts = {c.oracle: c for c in result.comparisons if c.quantity == quantity}
        assert verdicts["finite differences"].passed, verdicts["finite differences"]
        assert not verdicts["adjoint"].passed
        assert verdicts["adjoint"].relative > 10 * tolerance.ADJOINT_RTOL
        reference = check_case(CONV, CONV.reference, case, oracles=("adjoint",))
        assert all(c.passed and c.relative < tolerance.ADJOINT_RTOL / 100 for c in reference.comparisons)


def test_adjoint_runs_for_a_plugged_in_implementation_through_its_own_backward():
    """A plug-in (returning a dict) is judged by calling its backward with dy = v, not the case's dy."""
    upstreams = []

    def backward(dy, x, w, b, **hyper):
        upstreams.append(dy)
        dx, dw, db = cm.im2col_backward(dy, x, w, b, **hyper)
        return {"x": dx, "w": dw, "b": db}

    plugin = Implementation("plug-in im2col", cm.im2col_forward, backward)
    case = CONV.make_case({"N": 2, "C_in": 1, "C_out": 2, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1,
                           "ph": 0, "pw": 0, "dilh": 1, "dilw": 1}, 7)
    result = check_case(CONV, plugin, case)
    adjoint = [c for c in result.comparisons if c.oracle == "adjoint"]
    assert result.passed and {c.quantity for c in adjoint} == {"dx", "dw", "db"}
    # one backward for the case's dy, then one for all linear arguments together (the joint test, with its own v;
    # an argument it cannot resolve would get one more call of its own): here the joint test resolves all three
    assert all("joint direction" in c.note for c in adjoint), adjoint
    assert len(upstreams) == 2 and not np.array_equal(upstreams[1], case.dy)


def test_the_adjoint_tests_own_backward_call_is_guarded():
    """A backward that misbehaves only for the adjoint test's dy = v (here: dw of the wrong shape, then NaN) is
    reported as an implementation error naming the problem, the op and the configuration, not as a traceback."""
    from cnn_gradcheck.calls import ImplementationError

    def misbehaving(change):
        calls = []

        def backward(dy, x, w, b, **hyper):
            calls.append(dy)
            dx, dw, db = CONV.reference.backward(dy, x, w, b, **hyper)
            return (dx, change(dw), db) if len(calls) > 1 else (dx, dw, db)
        return Implementation("misbehaves for dy = v", CONV.reference.forward, backward)

    case = CONV.make_case({"N": 1, "C_in": 1, "C_out": 1, "H": 3, "W": 3, "kh": 2, "kw": 2, "sh": 1, "sw": 1,
                           "ph": 0, "pw": 1, "dilh": 1, "dilw": 1}, 0)
    for change, problem in ((lambda dw: dw[:, :, :1], "wrong gradient shape"), (lambda dw: dw * np.nan, "NaN")):
        with pytest.raises(ImplementationError) as raised:
            check_case(CONV, misbehaving(change), case, oracles=("adjoint",))
        message = str(raised.value)
        assert problem in message and "conv2d" in message and case.describe() in message and "dy = v" in message


# ---- piecewise-linear arguments: the pieces held fixed ------------------------------------------------------------

def _relu_spec(make_x):
    """A minimal piecewise-linear op for these tests (ReLU on a vector), with the kink distance declared."""
    return OpSpec(
        name="relu (adjoint test)", arg_names=("x",), configs=lambda **fixed: st.fixed_dictionaries({"n": st.just(6)}),
        make_arrays=lambda c, rng: {"x": make_x(c, rng)}, output_shape=lambda c: (c["n"],), hyper=lambda c: {},
        torch_forward=torch.relu, reference=Implementation.from_module(activations, "relu"),
        reduction_length=lambda c: 1, piecewise_linear_args=("x",),
        kink_distance=lambda c, arrays: float(np.min(np.abs(arrays["x"]))), nondifferentiable="ReLU at x = 0")


def test_piecewise_linear_argument_passes_with_a_step_inside_the_margin_and_catches_1e_10():
    spec = _relu_spec(lambda c, rng: away_from_zero(rng, (c["n"],)))
    off = Implementation("relu dx * (1 + 1e-10)", spec.reference.forward,
                         lambda dy, x: (activations.relu_backward(dy, x)[0] * (1 + 1e-10),))
    for seed in range(5):
        case = spec.make_case({"n": 6}, seed)
        t = step_for(spec, "x", case, np.ones(6))
        assert 0 < t <= tolerance.MARGIN / 8
        assert check_case(spec, spec.reference, case, oracles=("adjoint",)).passed
        assert check_case(spec, off, case, oracles=("adjoint",)).failures[0].quantity == "dx"


def test_a_kink_within_reach_is_reported_as_a_kink_not_a_failure():
    """Without a declared kink distance the oracle perturbs by MARGIN / 8; a crossing shows in the second
    difference and gives a kink verdict; with the distance declared, an input exactly at 0 is a kink too."""
    near = lambda c, rng: np.array([1.0, -1.0, 1e-4, 2.0, -2.0, 0.5])  # noqa: E731
    spec = _relu_spec(near)
    blind = OpSpec(**{**spec.__dict__, "kink_distance": None})
    case = blind.make_case({"n": 6}, 3)
    comparisons = check_case(blind, blind.reference, case, oracles=("adjoint",)).comparisons
    assert [c.verdict for c in comparisons] == [KINK]
    measured = check_case(spec, spec.reference, case, oracles=("adjoint",)).comparisons
    assert [c.verdict for c in measured] == [PASS]  # the step shrank below the distance 1e-4
    on = _relu_spec(lambda c, rng: np.array([1.0, 0.0, -1.0, 2.0, -2.0, 0.5]))
    assert [c.verdict for c in check_case(on, on.reference, on.make_case({"n": 6}, 0),
                                          oracles=("adjoint",)).comparisons] == [KINK]


def test_calling_user_code_does_not_import_the_oracles():
    """Stage 3 (calls) builds the Evaluation record without importing stage 4 (oracles, the adjoint test): the one
    import cycle adjoint -> calls -> oracles -> adjoint is gone (the record lives in cnn_gradcheck.evaluation)."""
    import subprocess
    import sys
    code = ("import sys, cnn_gradcheck.calls as c, cnn_gradcheck.evaluation as e; "
            "assert c.Evaluation is e.Evaluation; "
            "print(sorted(m for m in sys.modules if m in ('cnn_gradcheck.oracles', 'cnn_gradcheck.adjoint')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
