"""Corner configurations on purpose: each spec lists its corners (OpSpec.corners), valid by the op's rules; a
share of the drawn cases and one explicit case per corner in every plug-in check get them, so a bug that only a
corner shows is caught in every run, and the corners script counts them."""
import numpy as np
import pytest

from cnn_gradcheck import profiles
from cnn_gradcheck.corners import draw_counts, main
from cnn_gradcheck.options import _sample
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin, plugin
from cnn_gradcheck.reference import conv2d as ref
from cnn_gradcheck.registry import all_specs, get_spec
from cnn_gradcheck.strategies import out_size, usable_corners

CONV = get_spec("conv2d")


def _stale_one_where_no_tap_reaches(dy, x, w, b, stride, padding, dilation):
    """dx right where some tap of some window reads x, and a stale 1.0 (a buffer never cleared) where none does."""
    dx, dw, db = ref.correlate2d_backward(dy, x, w, b, stride, padding, dilation)
    reach, _, _ = ref.correlate2d_backward(np.ones_like(dy), x, np.ones_like(w), b, stride, padding, dilation)
    return np.where(reach == 0, 1.0, dx), dw, db


def test_a_conv_with_stale_gradient_where_no_tap_reaches_is_caught_at_the_ci_profile():
    settings = profiles.get("ci")
    assert settings.max_examples == 25
    with pytest.raises(PluginCheckFailure, match="dx"):
        check_plugin("conv2d", plugin(ref.correlate2d_forward, _stale_one_where_no_tap_reaches), settings=settings)


@pytest.mark.parametrize("op", sorted(name for name, spec in all_specs().items() if spec.corners))
def test_every_corner_is_valid_and_is_what_it_says(op):
    spec = get_spec(op)
    for name, fields in spec.corners:
        for config in _sample(spec.configs(**fields), 5):
            case = spec.make_case(config, 0)  # valid: arrays and output of the declared shapes, nothing empty
            assert all(np.size(a) > 0 for a in case.arrays.values()) and np.size(case.dy) > 0
            if op.startswith("conv"):
                H, k, s, p, d = config["H"], config["kh"], config["sh"], config["ph"], config["dilh"]
                Ho, extent = out_size(H, k, s, p, d), d * (k - 1) + 1
                expected = {"every tap of a window in padding": k == 1 and p >= 1 and Ho >= 3,
                            "dilated kernel extent larger than the input": extent > H,
                            "output of size 1": Ho == 1,
                            "stride larger than the kernel extent": s > extent and Ho >= 2,
                            "kernel as large as the padded input": extent == H + 2 * p,
                            "largest padding of the rule p <= d (k - 1) // 2": p == d * (k - 1) // 2,
                            "every window of an axis in padding, dilated past the input": _every_window_in_padding(
                                config["W"], config["kw"], config["sw"], config["pw"], config["dilw"])}
                assert expected[name], (name, config)


def _every_window_in_padding(n, k, s, p, d) -> bool:
    """Along one axis, no tap of any window reads a real cell (0 <= index < n)."""
    return all(not 0 <= j * s - p + t * d < n for j in range(out_size(n, k, s, p, d)) for t in range(k))


def test_corners_that_fight_the_limits_are_left_out():
    names = [name for name, _ in usable_corners(CONV, {"stride": 1, "padding": 0})]
    assert "stride larger than the kernel extent" not in names and "largest padding" not in " ".join(names)
    assert "output of size 1" in names
    assert usable_corners(get_spec("maxpool2d"), {"stride_vs_kernel": "equal"}) == ()


def test_the_corners_script_counts_examples_per_corner(capsys):
    total, corners, kinds = draw_counts(CONV, profiles.get("ci"))
    assert total == 25 and sum(corners.values()) == 25 and sum(kinds.values()) == 25
    assert main(["--profile", "ci", "--only", "maxpool2d"]) == 0
    out = capsys.readouterr().out
    assert "maxpool2d: 25 examples" in out and "window as large as the padded input" in out


def _bias_forgotten_where_every_tap_is_padding(x, w, b, stride, padding, dilation):
    """The bias added only where a window reads some real row: rows of y whose window lies wholly in the padding
    (only reachable with padding beyond the generic rule, i.e. in that corner) get 0 instead of b."""
    y = ref.correlate2d_forward(x, w, b, stride, padding, dilation)
    H, kh = x.shape[2], w.shape[2]
    for i in range(y.shape[2]):
        rows = [i * stride[0] + t * dilation[0] - padding[0] for t in range(kh)]
        if all(r < 0 or r >= H for r in rows):
            y[:, :, i, :] -= b[None, :, None]
    return y


def test_shrinking_keeps_a_corner_the_bug_needs():
    from cnn_gradcheck.property import minimal_failure
    from cnn_gradcheck.spec import Implementation
    impl = Implementation("bias forgotten in padding", _bias_forgotten_where_every_tap_is_padding,
                          ref.correlate2d_backward)
    result = minimal_failure(CONV, impl, max_examples=300)
    assert result is not None and "forward" in {c.quantity for c in result.failures}
    assert result.case.corner == "every tap of a window in padding", result.case.describe()
