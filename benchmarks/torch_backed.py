"""The function under test for the benchmark: an op computed by torch.nn.functional in float64, exposed as numpy
in the harness's canonical convention, with call counters and an optional planted gradient error; and the same
function as a torch.autograd.Function, so that torch.autograd.gradcheck sees exactly what the harness sees."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from cnn_gradcheck.spec import Case, Implementation, OpSpec, as_grad_dict, ordered_arrays


@dataclass
class Counter:
    """Calls made to an implementation's forward and backward, and the time spent inside them."""

    forward: int = 0
    backward: int = 0
    forward_s: float = 0.0
    backward_s: float = 0.0

    def reset(self) -> None:
        self.forward = self.backward = 0
        self.forward_s = self.backward_s = 0.0


def _tensor(a, requires_grad=False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=requires_grad)


def torch_backed(spec: OpSpec, error: float = 0.0) -> tuple[Implementation, Counter]:
    """``spec.torch_forward`` as a numpy implementation; backward = autograd gradient * (1 + error).
    error = 0 is the correct implementation; error = 1e-6 plants a relative gradient error of 1e-6."""
    counter = Counter()
    differentiable = spec.differentiable

    def forward(*arrays, **hyper):
        start = time.perf_counter()
        with torch.no_grad():
            y = spec.torch_forward(*[_tensor(a) for a in arrays], **hyper).numpy()
        counter.forward += 1
        counter.forward_s += time.perf_counter() - start
        return y

    def backward(dy, *arrays, **hyper):
        start = time.perf_counter()
        with torch.enable_grad():  # also when called from inside an autograd.Function's backward
            tensors = [_tensor(a, name in differentiable) for name, a in zip(spec.arg_names, arrays)]
            y = spec.torch_forward(*tensors, **hyper)
            inputs = [t for name, t in zip(spec.arg_names, tensors) if name in differentiable]
            grads = torch.autograd.grad(y, inputs, grad_outputs=_tensor(dy), allow_unused=True)
        out = tuple((1.0 + error) * (g.numpy() if g is not None else np.zeros(t.shape))
                    for g, t in zip(grads, inputs))
        counter.backward += 1
        counter.backward_s += time.perf_counter() - start
        return out

    return Implementation(f"torch-backed {spec.name} (error {error:g})", forward, backward), counter


def as_autograd_function(spec: OpSpec, impl: Implementation, case: Case):
    """(function, inputs) for torch.autograd.gradcheck: the function calls impl.forward/backward on numpy arrays
    (the same black box the harness checks); inputs are the case's differentiable arrays, the others are constants."""
    hyper = spec.hyper(case.config)
    differentiable = spec.differentiable

    def arrays_with(tensors) -> dict:
        arrays = dict(case.arrays)
        arrays.update({n: t.detach().numpy().copy() for n, t in zip(differentiable, tensors)})
        return arrays

    class Bridge(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.arrays = arrays_with(tensors)
            y = impl.forward(*ordered_arrays(spec, ctx.arrays), **hyper)
            return torch.from_numpy(np.array(y, dtype=np.float64))

        @staticmethod
        def backward(ctx, dy):
            dy = dy.detach().contiguous().numpy()
            grads = as_grad_dict(spec, impl.backward(dy, *ordered_arrays(spec, ctx.arrays), **hyper))
            return tuple(torch.from_numpy(np.array(grads[n], dtype=np.float64)) for n in differentiable)

    inputs = tuple(_tensor(case.arrays[n], requires_grad=True) for n in differentiable)
    return Bridge.apply, inputs
