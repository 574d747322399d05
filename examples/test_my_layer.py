"""A user's own test file: check a layer with the harness in a few lines (run: pytest examples/test_my_layer.py)."""
from cnn_gradcheck.plugins import check_plugin
from cnn_gradcheck.examples.nhwc_conv import PLUGIN


def test_my_conv_layer():
    report = check_plugin("conv2d", PLUGIN)  # raises a failure report if anything is wrong
    print(report.summary())
    # every kind of witness gave a verdict: none was skipped for this layer
    assert {"pytorch", "reference", "finite differences", "adjoint", "sparse matrix"} <= report.oracles_seen
