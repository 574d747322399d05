"""Whole-network checks: a gradient check in the manner of DeepLearnToolbox's cnnnumgradcheck, and training the
reference network and the same network in PyTorch side by side.

A network is an OpSpec (cnn_gradcheck.specs.network) whose arguments are the input x, the targets y and the parameters,
and whose output is the loss; its implementations follow the harness's calling convention.

- ``numgradcheck``: every element of every parameter and of the input, one at a time (cnnnumgradcheck perturbs each
  element by +-1e-4 and compares (L+ - L-) / 2e-4 with the analytic gradient). Here each element's derivative is
  ``cnn_gradcheck.finite_diff.fd_gradient`` (the directional check along the element's unit direction: Richardson,
  truncation and rounding estimates, kinks) judged by tolerance policy 2, and the whole gradient is also compared
  with PyTorch autograd of the same network (policy 1).
- ``train``: the same initial parameters, the same mini-batches, plain SGD (p <- p - lr dL/dp, the toolbox's
  cnnapplygrads; torch.optim.SGD without momentum), losses and parameters recorded at every step and compared with
  TRAINING_RTOL (policy 5). The implementation is called through ``cnn_gradcheck.calls.evaluate`` at every step (NaN,
  inf, exceptions, wrong shapes stop the run with the standard message), and a NaN difference never agrees.
- ``shapes_dataset``: the data. No small image dataset ships inside the installed packages (numpy, torch,
  matplotlib, hypothesis; scikit-learn's digits would, but it is not a dependency), so the images are generated:
  seeded, small, three classes of simple shapes (horizontal bar, vertical bar, square outline) at random places,
  with Gaussian noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from . import finite_diff, tolerance
from .calls import ImplementationError, evaluate
from .compare import FAIL, KINK, PASS, Comparison, compare_arrays
from .oracles import kink_reason
from .probes import magnitudes, torch_outputs
from .spec import Case, Implementation, OpSpec, quantity_label

DATA_ARGS = ("x", "y")


# ----------------------------------------------------------------------------------------------------------------
# cnnnumgradcheck
# ----------------------------------------------------------------------------------------------------------------

def numgradcheck(spec: OpSpec, impl: Implementation, case: Case) -> list[Comparison]:
    """One comparison per differentiable argument with finite differences element by element
    (``finite_diff.fd_gradient``, each element judged by policy 2; the worst element is reported), and one per
    argument with PyTorch autograd (policy 1, the magnitudes of ``probes.magnitudes``). The loss's upstream
    gradient is 1."""
    case = Case(case.op, case.config, case.arrays, np.asarray(1.0), case.seed)
    evaluation = evaluate(spec, impl, case)
    k = spec.reduction_length(case.config)
    _, torch_grads = torch_outputs(spec, case)
    magnitude = magnitudes(spec, case)
    reason = kink_reason(spec, case)
    out = []
    for name in spec.differentiable:
        label, grad = quantity_label(name), evaluation.grads[name]
        elementwise = finite_diff.fd_gradient(evaluation.forward, case.arrays, name, case.dy, grad,
                                              y0=evaluation.y, reduction_length=k, kink_reason=reason,
                                              dtype=evaluation.dtype)
        out.append(_worst_element(elementwise.elements, label))
        out.append(compare_arrays("pytorch", label, torch_grads[name], grad, k, evaluation.dtype,
                                  magnitude.get(label)))
    return out


def _worst_element(elements: Mapping[tuple, Comparison], label: str) -> Comparison:
    """cnnnumgradcheck's summary for one argument: the worst element (a failing one first), and how many failed."""
    failed = sum(c.verdict == FAIL for c in elements.values())
    kinks = sum(c.verdict == KINK for c in elements.values())
    index, worst = max(elements.items(),
                       key=lambda item: (item[1].verdict == FAIL, item[1].verdict == KINK, item[1].ratio))
    worst.oracle, worst.quantity, worst.worst_index = "finite differences (element-wise)", label, index
    worst.note = (f"{failed} of {len(elements)} elements outside tolerance"
                  + (f", {kinks} at a kink" if kinks else "") + f"; worst element shown: {worst.note}")
    return worst


# ----------------------------------------------------------------------------------------------------------------
# Data and initial weights
# ----------------------------------------------------------------------------------------------------------------

SHAPES = ("horizontal bar", "vertical bar", "square outline")


def shapes_dataset(count: int, size: int, seed: int = 0, noise: float = 0.1):
    """count images (count, 1, size, size) in [0, 1] plus noise, and one-hot labels (count, 3), classes in turn."""
    rng = np.random.default_rng(seed)
    x = noise * rng.standard_normal((count, 1, size, size))
    y = np.zeros((count, len(SHAPES)))
    for n in range(count):
        label = n % len(SHAPES)
        y[n, label] = 1.0
        length = int(rng.integers(size // 2, size - 1))
        if label < 2:                                                # a bar of `length` pixels, 1 wide
            i, j = int(rng.integers(0, size)), int(rng.integers(0, size - length + 1))
            rows, cols = (i, slice(j, j + length)) if label == 0 else (slice(j, j + length), i)
            x[n, 0, rows, cols] += 1.0
        else:                                                        # the outline of a side-`length` square
            side = max(length // 2 + 1, 3)
            i, j = (int(v) for v in rng.integers(0, size - side + 1, 2))
            box = np.zeros((side, side))
            box[[0, -1], :] = box[:, [0, -1]] = 1.0
            x[n, 0, i:i + side, j:j + side] += box
    return x, y


def glorot_parameters(spec: OpSpec, config, rng) -> dict[str, np.ndarray]:
    """The toolbox's cnnsetup: kernels and ffW uniform in +-sqrt(6 / (fan_in + fan_out)), biases 0 (shapes from the
    spec's own array generator, so they follow the configuration)."""
    from .specs.network import SHAPES
    shapes = SHAPES[spec.name](config)
    params = {}
    for name in spec.differentiable:
        if name in DATA_ARGS:
            continue
        shape = shapes[name]
        if len(shape) == 1:
            params[name] = np.zeros(shape)
            continue
        if len(shape) == 4:                                          # (C_out, C_in, kh, kw)
            fan_in, fan_out = shape[1] * shape[2] * shape[3], shape[0] * shape[2] * shape[3]
        else:                                                        # (fvnum, onum)
            fan_in, fan_out = shape
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params[name] = rng.uniform(-bound, bound, shape)
    return params


# ----------------------------------------------------------------------------------------------------------------
# Training side by side
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class TrainingRun:
    """Losses before each step and the parameters after each step, of one implementation."""

    losses: list[float] = field(default_factory=list)
    params: list[dict[str, np.ndarray]] = field(default_factory=list)


@dataclass
class TrainingComparison:
    op: str
    impl: str
    steps: int
    lr: float
    reference: TrainingRun
    torch: TrainingRun
    loss_relative: list[float]                 # per step |L_impl - L_torch| / |L_torch|
    param_relative: list[float]                # per step, max over parameters of max|p - p_torch| / max|p_torch|
    worst_param: str
    error: str = ""                            # the implementation misbehaved (cnn_gradcheck.calls): training stopped

    @staticmethod
    def _worst(values: list[float]) -> float:
        """The largest value; NaN if any is NaN (Python's max would drop it) or if there are none."""
        return float(np.max(values)) if values else float("nan")

    @property
    def worst_loss_relative(self) -> float:
        return self._worst(self.loss_relative)

    @property
    def worst_param_relative(self) -> float:
        return self._worst(self.param_relative)

    @property
    def passed(self) -> bool:
        """Every step compared, every difference finite and within TRAINING_RTOL: NaN or inf never agree."""
        differences = np.asarray(self.loss_relative + self.param_relative, dtype=np.float64)
        return (not self.error and len(self.loss_relative) == len(self.param_relative) == self.steps
                and bool(np.all(np.isfinite(differences))) and bool(np.all(differences <= tolerance.TRAINING_RTOL)))

    def describe(self) -> str:
        verdict = "agree" if self.passed else "DISAGREE"
        first = next((s for s, (l, p) in enumerate(zip(self.loss_relative, self.param_relative))
                      if not (l <= tolerance.TRAINING_RTOL and p <= tolerance.TRAINING_RTOL)), None)  # NaN too
        where = "" if first is None else f"; first disagreement at step {first + 1}"
        text = (f"{self.op} ({self.impl}) vs PyTorch, {self.steps} SGD steps, lr {self.lr:g}: {verdict} "
                f"(worst relative difference: loss {self.worst_loss_relative:.1e}, parameters "
                f"{self.worst_param_relative:.1e} in {self.worst_param or '-'}; tolerance "
                f"{tolerance.TRAINING_RTOL:.0e}){where}")
        if self.error:
            text += "\n    training stopped " + self.error.replace("\n", "\n    ")
        return text


def minibatches(x, y, batch: int, steps: int, seed: int = 0):
    """The toolbox's cnntrain: a fresh random permutation per epoch, cut into batches (same for both runs)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < steps:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch + 1, batch):
            out.append((x[order[start:start + batch]], y[order[start:start + batch]]))
    return out[:steps]


def _train_impl(spec, impl, config, params, batches, lr) -> tuple[TrainingRun, str]:
    """SGD with the implementation's loss and gradients, each step called through cnn_gradcheck.calls.evaluate (its
    guards: exceptions, wrong shapes, NaN/inf, mutated inputs). Returns the run so far and, if the
    implementation misbehaved, the error's message (the run stops there)."""
    run = TrainingRun()
    params = {n: p.copy() for n, p in params.items()}
    for step, (xb, yb) in enumerate(batches):
        case = Case(spec.name, config, {n: dict(x=xb, y=yb, **params)[n] for n in spec.arg_names},
                    np.asarray(1.0), seed=0)
        try:
            evaluation = evaluate(spec, impl, case)
        except ImplementationError as error:
            return run, f"at SGD step {step + 1} of {len(batches)}: {error}"
        run.losses.append(float(evaluation.y))
        params = {n: p - lr * evaluation.grads[n] for n, p in params.items()}
        run.params.append(params)
    return run, ""


def _train_torch(spec, params, batches, lr, hyper) -> TrainingRun:
    run = TrainingRun()
    tensors = {n: torch.tensor(p, dtype=torch.float64, requires_grad=True) for n, p in params.items()}
    optimizer = torch.optim.SGD(list(tensors.values()), lr=lr, momentum=0.0)
    for xb, yb in batches:
        data = {"x": torch.tensor(xb, dtype=torch.float64), "y": torch.tensor(yb, dtype=torch.float64)}
        optimizer.zero_grad()
        loss = spec.torch_forward(*[{**data, **tensors}[n] for n in spec.arg_names], **hyper)
        loss.backward()
        optimizer.step()
        run.losses.append(loss.item())
        run.params.append({n: t.detach().numpy().copy() for n, t in tensors.items()})
    return run


def train(spec: OpSpec, config, params: Mapping[str, np.ndarray], batches, lr: float,
          impl: Implementation | None = None) -> TrainingComparison:
    """Train ``impl`` (default: the spec's reference) and the PyTorch network from the same ``params`` on the same
    batches; compare the losses and the parameters at every step."""
    impl = impl or spec.reference
    ours, error = _train_impl(spec, impl, config, params, batches, lr)
    theirs = _train_torch(spec, params, batches, lr, spec.hyper(config))
    loss_rel = [abs(a - b) / max(abs(b), tolerance.TINY) for a, b in zip(ours.losses, theirs.losses)]
    param_rel, worst_name, worst = [], "", -1.0
    for mine, ref in zip(ours.params, theirs.params):
        # np.max, not max(): a NaN must propagate into the step's difference (max(0.0, nan) is 0.0)
        rel = {name: float(np.max(np.abs(mine[name] - ref[name])) / max(np.max(np.abs(ref[name])), tolerance.TINY))
               for name in mine}
        param_rel.append(float(np.max(list(rel.values()))))
        for name, value in rel.items():
            if not np.isnan(worst) and (np.isnan(value) or value > worst):  # the first NaN is the worst
                worst, worst_name = value, name
    return TrainingComparison(spec.name, impl.name, len(batches), lr, ours, theirs, loss_rel, param_rel, worst_name,
                              error)


# ----------------------------------------------------------------------------------------------------------------
# The main job's section
# ----------------------------------------------------------------------------------------------------------------

#: the configurations the main job trains on: 12x12 images, three classes
TOOLBOX_MAIN = {"N": 10, "C0": 1, "C1": 4, "C2": 6, "k1": 3, "k2": 2, "s1": 2, "s2": 2, "Oh": 2, "Ow": 2,
                "classes": 3, "H": 12, "W": 12}
RELU_MAIN = {"N": 10, "C0": 1, "C1": 4, "k": 3, "pool": 2, "Oh": 5, "Ow": 5, "classes": 3, "H": 12, "W": 12}
MAIN_TRAINING = {"toolbox_cnn": (TOOLBOX_MAIN, 1.0), "relu_cnn": (RELU_MAIN, 0.05)}
#: small configurations for the element-wise gradient check (every element costs 6 forwards)
TOOLBOX_GRADCHECK = {"N": 2, "C0": 1, "C1": 2, "C2": 2, "k1": 3, "k2": 2, "s1": 2, "s2": 2, "Oh": 1, "Ow": 1,
                     "classes": 2, "H": 8, "W": 8}
RELU_GRADCHECK = {"N": 2, "C0": 1, "C1": 2, "k": 3, "pool": 2, "Oh": 2, "Ow": 2, "classes": 3, "H": 6, "W": 6}
MAIN_GRADCHECK = {"toolbox_cnn": TOOLBOX_GRADCHECK, "relu_cnn": RELU_GRADCHECK}


def training_run(spec: OpSpec, config, lr: float, steps: int, seed: int = 0,
                 impl: Implementation | None = None) -> TrainingComparison:
    """Train on the generated shapes (count: five batches) from the toolbox's initial weights."""
    x, y = shapes_dataset(5 * config["N"], config["H"], seed)
    params = glorot_parameters(spec, config, np.random.default_rng(seed))
    return train(spec, config, params, minibatches(x, y, config["N"], steps, seed), lr, impl)


def plot_losses(runs: list[TrainingComparison], path: str) -> str:
    """A PNG of the loss curves (reference and PyTorch) where matplotlib is installed; returns a sentence."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib is not installed: no plot; pip install .[plots])"
    import os
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for ax, run in zip(axes[0], runs):
        steps = range(1, run.steps + 1)
        ax.plot(steps, run.reference.losses, "o-", label="reference (loops)", markersize=4)
        ax.plot(steps, run.torch.losses, "x--", label="PyTorch", markersize=6)
        ax.set(title=f"{run.op}, SGD lr {run.lr:g}", xlabel="step", ylabel="mini-batch loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"loss curves plotted to {path}"


def network_section(rows, args, steps: int = 30,
                    plot_path: str = "reports/network_loss_curves.png") -> tuple[str, bool]:
    """Main-job section: cnnnumgradcheck of both networks, then training side by side with the loss curves."""
    from .registry import get_spec

    only = getattr(args, "only", None)
    if only and not any(only in text for text in ("whole network", *MAIN_GRADCHECK)):
        return "", True
    lines = ["Whole networks (cnn_gradcheck.network)", "", "cnnnumgradcheck: every element of the input and every parameter, "
             "finite differences one element at a time and PyTorch autograd:"]
    ok = True
    for op, config in MAIN_GRADCHECK.items():
        spec = get_spec(op)
        comparisons = numgradcheck(spec, spec.reference, spec.make_case(config, seed=0))
        passed = all(c.verdict == PASS for c in comparisons)
        ok &= passed
        worst = {oracle: float(np.max([c.relative for c in comparisons if c.oracle == oracle]))
                 for oracle in {c.oracle for c in comparisons}}
        elements = sum(np.size(spec.make_case(config, 0).arrays[n]) for n in spec.differentiable)
        lines.append(f"  {op}: {elements} elements, {'all agree' if passed else 'FAILED'}; worst relative error "
                     + ", ".join(f"{v:.1e} ({k})" for k, v in sorted(worst.items())))
        lines += [f"    {c.quantity} vs {c.oracle}: {c.relative:.1e} > tolerance" for c in comparisons
                  if c.verdict == FAIL]
    lines += ["", f"Training side by side (generated shapes: {', '.join(SHAPES)}):"]
    runs = []
    for op, (config, lr) in MAIN_TRAINING.items():
        run = training_run(get_spec(op), config, lr, steps)
        runs.append(run)
        ok &= run.passed
        lines.append("  " + run.describe())
    for run in runs:
        lines.append(f"  {run.op} loss by step (reference | PyTorch):")
        for s in sorted({0, 4, 9, 14, 19, run.steps - 1} & set(range(run.steps))):
            lines.append(f"    {s + 1:3d}  {run.reference.losses[s]:.12f} | {run.torch.losses[s]:.12f}")
    lines.append("  " + plot_losses(runs, plot_path))
    if not ok:
        lines.append("WHOLE-NETWORK CHECKS FAILED")
    return "\n".join(lines), ok
