"""A plug-in cannot take the harness down: a native crash in a call is reported as a failure with the (shrunk)
configuration and the check goes on; a call that hangs is stopped at the time limit, in a worker or in-process."""
import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, settings

from cnn_gradcheck import isolation, plugins as P
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin

import plugin_fixtures as fx

pytest_plugins = ["pytester"]  # the command-line tests, run in-process

QUICK = settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True,
                 database=None)
SHRINKING = settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink],
                     derandomize=True, database=None)

needs_fork = pytest.mark.skipif(not isolation.can_fork(), reason="the worker process needs fork (Linux)")


def _crashes_from_width(width, how):
    def forward(x, w, b, stride, padding, dilation):
        if x.shape[3] >= width:
            how()
        return fx.conv_forward(x, w, b, stride, padding, dilation)
    return P.plugin(forward, fx.conv_backward, name="crashing conv", isolate=True)  # declares native code


@needs_fork
def test_a_segfault_is_reported_with_the_smallest_crashing_configuration_and_the_run_goes_on():
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", _crashes_from_width(3, lambda: os.kill(os.getpid(), signal.SIGSEGV)),
                     settings=SHRINKING)
    message = str(failure.value)
    assert message.startswith("conv2d: the implementation crashed the process (SIGSEGV) in crashing conv")
    assert "configuration: conv2d(" in message and " W=3," in message  # shrunk to the smallest crashing width
    assert "forward ended the worker process that runs the plug-in's calls with signal 11 (SIGSEGV: a " \
           "segmentation fault" in message
    assert "the check went on in a new worker" in message
    assert "where (innermost first, from the worker's faulthandler):" in message and "in forward" in message
    assert "cnn_gradcheck.replay('conv2d', <your plug-in>, {" in message and "'W': 3" in message
    # the reproduction line re-runs the case in a worker too: the same report, and this process lives on
    config = {"N": 1, "C_in": 1, "C_out": 1, "H": 1, "W": 3, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "ph": 0, "pw": 0,
              "dilh": 1, "dilw": 1}
    with pytest.raises(PluginCheckFailure, match=r"crashed the process \(SIGSEGV\)"):
        P.replay("conv2d", _crashes_from_width(3, lambda: os.kill(os.getpid(), signal.SIGSEGV)), config, seed=0)
    # the harness is still here, and the next check of a good plug-in in the same process passes
    assert check_plugin("conv2d", P.plugin(fx.conv_forward, fx.conv_backward), settings=QUICK).cases == 3


@needs_fork
@pytest.mark.parametrize("how, phrase", [
    (os.abort, "crashed the process (SIGABRT)"),
    (lambda: __import__("ctypes").string_at(0), "crashed the process (SIGSEGV)"),
    (lambda: os._exit(3), "the implementation ended the process (exit status 3)"),
], ids=["abort", "null pointer", "os._exit"])
def test_other_ways_of_ending_the_process_are_reported(how, phrase):
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", _crashes_from_width(1, how), settings=QUICK)
    message = str(failure.value)
    assert phrase in message and "configuration: conv2d(" in message


def _sleeps(x, w, b, stride, padding, dilation):
    time.sleep(100)
    return fx.conv_forward(x, w, b, stride, padding, dilation)


@pytest.mark.parametrize("isolate", [
    pytest.param(True, marks=needs_fork, id="in a worker (killed)"),
    pytest.param(False, id="in-process (SIGALRM)")])
def test_a_sleeping_plugin_is_stopped_at_the_time_limit(isolate):
    start = time.monotonic()
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("conv2d", P.plugin(_sleeps, fx.conv_backward, name="sleepy conv"), settings=QUICK,
                     time_limit=2, isolate=isolate)
    elapsed = time.monotonic() - start
    message = str(failure.value)
    assert message.startswith("conv2d: the implementation did not return within 2 s in sleepy conv")
    assert "configuration: conv2d(" in message and "forward was stopped after 2 s" in message
    assert elapsed < 30, f"a 100 s sleep was not stopped at the 2 s limit (took {elapsed:.0f} s)"


@needs_fork
def test_torch_plugins_in_a_forked_worker_after_the_harness_used_torch_threads():
    """The harness process has run torch's intra-op thread pool before the fork; the worker must not hang on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = torch.randn(256, 256, dtype=torch.float64)
        assert torch.isfinite(a @ a).all()  # a parallel matmul: the pool is started in the parent
        report = check_plugin("conv2d", P.torch_function(F.conv2d), settings=QUICK, time_limit=60, isolate=True)
    finally:
        torch.set_num_threads(threads)
    assert report.cases == 3


@needs_fork
def test_a_plugin_keeps_its_state_between_calls_in_the_worker_as_in_process():
    """One reused layer object that adds into its gradients: caught as nondeterministic in both modes."""
    for isolate in (True, False):
        layer = fx.ConvLayer()
        with pytest.raises(PluginCheckFailure, match="nondeterministic results"):
            check_plugin("conv2d", P.layer_object(layer, params={"w": "W", "b": "b"}, grads={"w": "dW", "b": "db"},
                                                  accumulate="none"), settings=QUICK, isolate=isolate)


def test_isolation_is_on_by_default_for_torch_plugins_and_when_declared():
    numpy_plugin = P.plugin(fx.conv_forward, fx.conv_backward)
    assert not numpy_plugin.isolated
    assert P.plugin(fx.conv_forward, fx.conv_backward, isolate=True).isolated == isolation.can_fork()
    assert numpy_plugin.with_guards(isolate=True).isolated == isolation.can_fork()
    torch_plugin = P.torch_function(F.conv2d)
    assert torch_plugin.isolated == isolation.can_fork()
    assert not torch_plugin.with_guards(isolate=False).isolated
    assert not P.torch_function(F.conv2d, device="cuda").isolated  # CUDA: in-process unless asked
    plug = numpy_plugin
    assert plug.with_guards(time_limit=5).time_limit == 5 and plug.time_limit == isolation.DEFAULT_TIME_LIMIT
    assert np.isfinite(isolation.DEFAULT_TIME_LIMIT) and plug.with_guards(time_limit=float("inf")).time_limit is None
    with pytest.raises(P.PluginOptionError, match="bad plug-in option time_limit=0: a positive number of seconds"):
        check_plugin("conv2d", plug, time_limit=0)


# plug-ins loaded by name in the command-line test below ("test_isolation:SEGFAULTING", run from tests/)
SEGFAULTING = _crashes_from_width(2, lambda: os.kill(os.getpid(), signal.SIGSEGV))
SLEEPY = P.plugin(_sleeps, fx.conv_backward, name="sleepy conv")  # in-process: stopped by SIGALRM


@needs_fork
def test_command_line_crash_and_hang_are_failures_and_the_run_goes_on(pytester, ci_profile):
    """pytest --plugin ... --plugin-time-limit 2: a segfaulting and a hanging plug-in each fail with their report;
    the good plug-in after them is still checked and passes. In-process (pytester), under the ci profile as
    `CNN_GRADCHECK_PROFILE=ci pytest --plugin ...` runs: the crash ends the forked worker, never this process, and
    the hang is stopped by SIGALRM here as in a fresh pytest process."""
    run = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:faulthandler",
        "--plugin", "conv2d=test_isolation:SEGFAULTING", "--plugin", "conv2d=test_isolation:SLEEPY",
        "--plugin", "conv2d=cnn_gradcheck.examples.nhwc_conv:PLUGIN", "--plugin-max-examples", "4",
        "--plugin-time-limit", "2")
    out = run.stdout.str()
    assert run.ret == 1, out + run.stderr.str()
    assert "2 failed, 1 passed" in out
    assert "conv2d: the implementation crashed the process (SIGSEGV) in crashing conv" in out
    assert "conv2d: the implementation did not return within 2 s in sleepy conv" in out
    assert "cnn-gradcheck replay conv2d test_isolation:SEGFAULTING --config '{" in out and '"W": 2' in out
    assert "Traceback" not in out
