"""Framework kernels as real clients: PyTorch 2.13's own float32 conv2d crashes the process at corner
configurations in channels_last memory (out-of-bounds writes in its oneDNN path: a segfault where every window of
an axis reads only padding with a dilation past the input, heap corruption with dilated 1x1 kernels). Checked
through ``torch_function`` at the ci profile, the crash is a failure with its configuration, not the end of the run.
"""
import numpy as np
import torch.nn.functional as F

from cnn_gradcheck import PluginCheckFailure, check_plugin, plugin, profiles, torch_function


def test_pytorch_float32_conv2d_crash_is_reported_and_the_run_goes_on():
    try:
        report = check_plugin("conv2d", torch_function(F.conv2d, dtype="float32"), settings=profiles.get("ci"))
    except PluginCheckFailure as failure:  # torch 2.13: the corner configurations crash its kernel
        text = str(failure)
        assert "the implementation crashed the process (SIG" in text, text
        assert "configuration: conv2d(N=" in text and "cnn_gradcheck.replay('conv2d'" in text
        assert "channels_last" in text  # the memory format the crash needs is named
    else:  # a torch without the bug: the same check passes, corners included
        assert report.cases + report.explicit > 25
    # the run goes on: the next check in this process works
    relu = plugin(lambda x: np.maximum(x, 0.0), lambda dy, x: dy * (x > 0), name="relu after the crash")
    assert check_plugin("relu", relu, settings=profiles.get("ci")).cases == 25
