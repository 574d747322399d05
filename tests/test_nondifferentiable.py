"""Non-differentiable points: max pooling at exact ties, and the harness's verdict on a case that sits on a kink.

At a tie inside a pooling window the max is not differentiable; a correct backward still routes each upstream
value to exactly ONE cell of its window (any such choice is a subgradient), never to several and never to none.
When a case sits on ReLU's 0 or a pooling tie, the harness must say so (a KINK verdict, NotDifferentiableHere)
instead of reporting a gradient mismatch.
"""
import dataclasses

import numpy as np
import pytest

from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.runner import GradientCheckFailure, NotDifferentiableHere, check_case
from cnn_gradcheck.spec import Case, Implementation
from cnn_gradcheck.reference import pooling as ref

MAXPOOL = get_spec("maxpool2d")
RELU = get_spec("relu")


def routing_problems(backward, x, kernel, stride, padding) -> list[str]:
    """Every way in which ``backward`` fails to send each window's upstream value to exactly one of its cells.

    The backward is linear in dy, so feeding dy = 1 at one window isolates where that window's value goes."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = ref.out_size(H, kh, sh, ph), ref.out_size(W, kw, sw, pw)
    problems = []
    for n, c, i, j in np.ndindex(N, C, Ho, Wo):
        dy = np.zeros((N, C, Ho, Wo))
        dy[n, c, i, j] = 1.0
        (dx,) = backward(dy, x, kernel, stride, padding)
        cells = [tuple(int(a) for a in index) for index in np.argwhere(dx != 0)]
        rows, cols = range(i * sh - ph, i * sh - ph + kh), range(j * sw - pw, j * sw - pw + kw)
        inside = all(m == n and k == c and u in rows and v in cols for m, k, u, v in cells)
        if len(cells) != 1 or not inside or dx[cells[0]] != 1.0:
            problems.append(f"window {(n, c, i, j)} sent its value to {cells} "
                            f"({[float(dx[cell]) for cell in cells]})")
    return problems


def _route_to_every_tied_cell(dy, x, kernel, stride, padding):
    """The tempting wrong backward: dE/dx = dE/dy wherever x equals the window's max (000's condition y = x)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = ref.pad_with(x, ph, pw, -np.inf)
    dxp = np.zeros_like(xp)
    for n, c, i, j in np.ndindex(dy.shape):
        window = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
        dxp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.where(window == window.max(), dy[n, c, i, j], 0.0)
    return (dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]],)


def tied_input(shape, seed):
    """Few distinct values (0, 1, 2), so most windows hold ties, including ties for the maximum."""
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float64)


TIE_CONFIGS = [  # (input shape, kernel, stride, padding): stride equal, smaller, larger than the window; padding
    ((1, 1, 4, 4), (2, 2), (2, 2), (0, 0)),
    ((2, 2, 5, 4), (3, 2), (1, 1), (1, 1)),
    ((1, 1, 5, 5), (2, 2), (3, 3), (1, 0)),
]


@pytest.mark.parametrize("shape, kernel, stride, padding", TIE_CONFIGS)
def test_maxpool_routes_each_upstream_value_to_exactly_one_cell_at_ties(shape, kernel, stride, padding):
    for x in (np.zeros(shape), tied_input(shape, 0), tied_input(shape, 1)):
        assert routing_problems(ref.maxpool2d_backward, x, kernel, stride, padding) == []


@pytest.mark.parametrize("shape, kernel, stride, padding", TIE_CONFIGS)
def test_routing_check_rejects_a_backward_that_feeds_every_tied_cell(shape, kernel, stride, padding):
    problems = routing_problems(_route_to_every_tied_cell, np.zeros(shape), kernel, stride, padding)
    assert problems and "sent its value to" in problems[0]


def _case(spec, config, arrays, seed=0):
    dy = np.random.default_rng(seed).standard_normal(spec.output_shape(config))
    return Case(spec.name, config, arrays, dy, seed)


def _assert_kink_not_mismatch(spec, case, mentions):
    result = check_case(spec, spec.reference, case)
    assert result.kinks, "a case on a kink got no KINK verdict"
    assert not result.failures, f"a kink was reported as a mismatch: {[c.quantity for c in result.failures]}"
    with pytest.raises(NotDifferentiableHere) as raised:
        result.raise_for_failures()
    message = str(raised.value)
    assert not isinstance(raised.value, GradientCheckFailure)
    assert "not differentiable" in message and mentions in message and case.describe() in message


def test_relu_at_zero_is_reported_as_a_kink():
    config = {"N": 1, "K": 3, "offset": 0.0}
    case = _case(RELU, config, {"x": np.array([[0.7, 1e-4, -0.4]])})
    _assert_kink_not_mismatch(RELU, case, RELU.nondifferentiable)


def test_maxpool_tie_is_reported_as_a_kink():
    config = {"N": 1, "C": 1, "kh": 2, "sh": 2, "ph": 0, "H": 2, "kw": 2, "sw": 2, "pw": 0, "W": 2}
    case = _case(MAXPOOL, config, {"x": np.array([[[[0.5, 0.5], [-1.0, 0.2]]]])})
    _assert_kink_not_mismatch(MAXPOOL, case, MAXPOOL.nondifferentiable)


def test_kink_is_found_from_the_data_when_the_spec_does_not_say_where_kinks_are():
    """Without kink_distance, the one-sided differences themselves reveal the kink at ReLU's 0."""
    blind = dataclasses.replace(RELU, kink_distance=None)
    case = _case(blind, {"N": 1, "K": 2, "offset": 0.0}, {"x": np.array([[0.0, 0.3]])})
    _assert_kink_not_mismatch(blind, case, "not smooth")


def test_a_wrong_gradient_away_from_kinks_is_still_a_mismatch():
    """The kink verdict must not swallow real errors: the same ReLU spec, inputs away from 0, a wrong backward."""
    wrong = Implementation("relu passes everything", RELU.reference.forward, lambda dy, x: (dy.copy(),))
    case = _case(RELU, {"N": 1, "K": 2, "offset": 0.0}, {"x": np.array([[0.7, -0.4]])})
    result = check_case(RELU, wrong, case)
    assert result.failures and not result.kinks
    with pytest.raises(GradientCheckFailure):
        result.raise_for_failures()
