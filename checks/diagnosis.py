"""Diagnosis of a failed check: which common backprop mistake turns the true result into the wrong one.

The catalogue is data. Each ``Mistake`` yields candidate arrays: what the result would be if the implementation had
made that mistake (the true gradient rotated, shifted, scaled; or the reference recomputed with a wrong upstream
gradient, a wrong stride, a masked batch...). A mistake *fits* when the got array equals a candidate within the
rounding tolerance of the policy (cnn_gradcheck.tolerance, policy 1): the same bound that two exact computations of one
quantity must meet. The diagnosis names the first fitting entry (exact fits before fits that need a constant), or
says that none fits.

Extending it: a spec module in checks/specs/ may define ``MISTAKES`` (a list of Mistake, with ``ops`` set to its op
names); ``register`` adds one at run time. Candidates that raise (a recomputation the configuration does not allow)
or whose shape differs are skipped.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from . import tolerance
from .spec import Case, OpSpec, as_grad_dict, ordered_arrays, quantity_label


# ----------------------------------------------------------------------------------------------------------------
# What a mistake sees
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Context:
    """One wrong quantity of one case: the true array, the got array, and how to recompute the op's reference
    under a changed upstream gradient, changed inputs or changed hyperparameters."""

    spec: OpSpec
    case: Case
    quantity: str                 # "forward", "dx", "dw", ...
    expected: np.ndarray
    got: np.ndarray
    magnitude: np.ndarray | None = None
    dtype: str = "float64"  # the implementation's precision: the tolerance of a fit
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def arg(self) -> str | None:
        """The argument whose gradient this is ("x" for "dx"), None for the forward."""
        return None if self.quantity == "forward" else self.quantity[1:]

    @property
    def hyper(self) -> dict:
        return self.spec.hyper(self.case.config)

    def recompute(self, dy=None, arrays: Mapping[str, np.ndarray] | None = None,
                  hyper: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """This quantity of the true op (torch, vectorised: never the loop reference) with some ingredients
        replaced; None if that raises. A dy smaller than the changed op's output (stride 1 instead of 2) is
        placed at its start, as a loop over dy's own indices would; a larger one cannot be placed."""
        return self.recompute_many([dy], arrays, hyper)[0]

    def recompute_many(self, dys, arrays: Mapping[str, np.ndarray] | None = None,
                       hyper: Mapping[str, Any] | None = None) -> list[np.ndarray | None]:
        """recompute for several upstream gradients (None: the case's), one forward graph shared by all."""
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                tensors, y = self._graph(arrays, hyper)
                if self.quantity == "forward":
                    return [y.detach().numpy().astype(np.float64) for _ in dys]
                target = tensors[self.arg]
                if len(dys) > 8:  # many upstream gradients (one per dy element): one batched backward (vmap)
                    placed = [_place(self.case.dy if dy is None else np.asarray(dy, dtype=np.float64),
                                     tuple(y.shape)) for dy in dys]
                    if all(p is not None for p in placed):
                        try:
                            (g,) = torch.autograd.grad(y, target, grad_outputs=torch.from_numpy(np.stack(placed)),
                                                       retain_graph=True, is_grads_batched=True)
                            return list(g.numpy().astype(np.float64))
                        except Exception:  # noqa: BLE001 -- an op vmap cannot batch: one backward each below
                            pass
                out = []
                for dy in dys:
                    placed = _place(self.case.dy if dy is None else np.asarray(dy, dtype=np.float64), tuple(y.shape))
                    if placed is None:
                        out.append(None)
                        continue
                    (g,) = torch.autograd.grad(y, target, grad_outputs=torch.from_numpy(placed), retain_graph=True,
                                               allow_unused=True)
                    out.append(np.zeros(target.shape) if g is None else g.numpy().astype(np.float64))
                return out
        except Exception:  # noqa: BLE001 -- a configuration this variant cannot run is simply not a candidate
            return [None for _ in dys]

    def _graph(self, arrays, hyper):
        """(tensors, y) of the torch op at the case's arrays with some replaced; the unchanged graph is kept."""
        key = None if arrays or hyper else "case"
        if key is not None and self._cache.get(key) is not None:
            return self._cache[key]
        changed = dict(self.case.arrays)
        changed.update(arrays or {})
        h = self.hyper
        h.update(hyper or {})
        tensors = {n: torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64,
                                   requires_grad=n == self.arg) for n, a in changed.items()}
        y = self.spec.torch_forward(*[tensors[n] for n in self.spec.arg_names], **h)
        if key is not None:
            self._cache[key] = (tensors, y)
        return tensors, y

    def forward_value(self) -> np.ndarray:
        """y of the true op at the case (for derivatives written in terms of the output)."""
        return self._graph(None, None)[1].detach().numpy().astype(np.float64)


def _place(dy: np.ndarray, shape: tuple) -> np.ndarray | None:
    """dy at the start of a zero array of ``shape`` (None if it does not fit)."""
    if dy.shape == shape:
        return dy
    if dy.ndim != len(shape) or any(a > b for a, b in zip(dy.shape, shape)):
        return None
    out = np.zeros(shape)
    out[tuple(slice(0, n) for n in dy.shape)] = dy
    return out


Candidate = tuple[str, np.ndarray]  # (what exactly was wrong, the array the mistake would produce)


@dataclass(frozen=True)
class Mistake:
    """A common backprop mistake as a transformation of the true result.

    candidates: Context -> iterable of (detail, array). fit_scale: also fit got = c * candidate by least squares
    (and report c). ops / quantities: where the entry applies (empty: everywhere; "grad" stands for every gradient).
    """

    name: str
    explanation: str
    candidates: Callable[[Context], Iterable[Candidate]]
    ops: tuple[str, ...] = ()
    quantities: tuple[str, ...] = ()
    fit_scale: bool = False

    def applies(self, ctx: Context) -> bool:
        if self.ops and ctx.spec.name not in self.ops:
            return False
        if not self.quantities:
            return True
        return ctx.quantity in self.quantities or ("grad" in self.quantities and ctx.quantity != "forward")


# ----------------------------------------------------------------------------------------------------------------
# Transformations
# ----------------------------------------------------------------------------------------------------------------

def _spatial_axes(a: np.ndarray) -> list[int]:
    """The last two axes of an image or kernel, the last axis of a matrix or vector."""
    return [a.ndim - 2, a.ndim - 1] if a.ndim >= 3 else ([a.ndim - 1] if a.ndim >= 1 else [])


def _axis_name(a: np.ndarray, axis: int) -> str:
    names = {4: "NCHW", 2: "rc"}.get(a.ndim)
    return f"axis {names[axis]}" if names else f"axis {axis}"


def shift(a: np.ndarray, axis: int, by: int) -> np.ndarray:
    """a moved by ``by`` cells along ``axis``; cells moved in from outside are 0 (out[i] = a[i - by])."""
    out = np.zeros_like(a)
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    n = a.shape[axis]
    if by >= 0:
        src[axis], dst[axis] = slice(0, n - by), slice(by, n)
    else:
        src[axis], dst[axis] = slice(-by, n), slice(0, n + by)
    out[tuple(dst)] = a[tuple(src)]
    return out


def _replace_hyper(value, new: int):
    """A hyperparameter (int or per-axis tuple) with every axis set to ``new``, and each axis alone."""
    if np.isscalar(value):
        return [("", new)] if value != new else []
    out = []
    if any(v != new for v in value):
        out.append(("", tuple(new for _ in value)))
    if len(value) > 1:
        for i, v in enumerate(value):
            if v != new and sum(u != new for u in value) > 1:
                out.append((f" along axis {'HW'[i] if len(value) == 2 else i}",
                            tuple(new if j == i else u for j, u in enumerate(value))))
    return out


def _scaled(ctx: Context) -> Iterable[Candidate]:
    yield "", ctx.expected


def _upstream_dropped(ctx: Context) -> Iterable[Candidate]:
    if ctx.case.dy.size:
        yield "computed with dE/dy = 1 everywhere", ctx.recompute(dy=np.ones_like(ctx.case.dy))


def _kernel_flip(ctx: Context) -> Iterable[Candidate]:
    for name in ctx.spec.arg_names:
        a = ctx.case.arrays[name]
        if name.startswith("w") and a.ndim >= 3:
            flipped = a[..., ::-1, ::-1].copy()
            if name == ctx.arg:
                yield f"d{name} is rot180 of the true d{name}", ctx.expected[..., ::-1, ::-1]
            else:
                yield f"computed with rot180({name}) in place of {name}", ctx.recompute(arrays={name: flipped})


def _transposed(ctx: Context) -> Iterable[Candidate]:
    e = ctx.expected
    if e.ndim >= 2 and e.shape[-1] == e.shape[-2] and e.shape[-1] > 1:
        yield "last two axes swapped", np.swapaxes(e, -1, -2)
    if e.ndim == 4 and e.shape[0] == e.shape[1] and e.shape[0] > 1:
        yield "first two axes swapped (channel layout)", np.swapaxes(e, 0, 1)


def _hyper_misapplied(key: str, neutral: int) -> Callable[[Context], Iterable[Candidate]]:
    def candidates(ctx: Context) -> Iterable[Candidate]:
        value = ctx.hyper.get(key)
        if value is None:
            return
        for where, new in _replace_hyper(value, neutral):
            yield f"computed with {key} {new}{where} instead of {value}", ctx.recompute(hyper={key: new})
    return candidates


def _padding_cropped_wrong(ctx: Context) -> Iterable[Candidate]:
    """dE/dx cut out of the padded input's gradient at the wrong offset (0 or 2P instead of P)."""
    padding, x = ctx.hyper.get("padding"), ctx.case.arrays.get("x")
    if ctx.arg != "x" or padding is None or x is None or x.ndim != 4:
        return
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    if ph == 0 and pw == 0:
        return
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = ctx.recompute(arrays={"x": xp}, hyper={"padding": (0, 0) if not np.isscalar(padding) else 0})
    if dxp is None:
        return
    H, W = x.shape[2:]
    for oh, ow in {(0, 0), (2 * ph, 2 * pw), (0, pw), (ph, 0)} - {(ph, pw)}:
        yield f"cropped the padded gradient at offset ({oh}, {ow}) instead of ({ph}, {pw})", \
            dxp[:, :, oh:oh + H, ow:ow + W]


def _padding(ctx: Context) -> Iterable[Candidate]:
    yield from _hyper_misapplied("padding", 0)(ctx)
    yield from _padding_cropped_wrong(ctx)


#: above this many samples/channels only the usual subsets are tried (one, the first k, all but one: ends and middle)
MASK_LIMIT = 16


def _masked_dy(ctx: Context, axis: int, what: str) -> Iterable[Candidate]:
    dy = ctx.case.dy
    if dy.ndim <= axis or dy.shape[axis] < 2:
        return
    n = dy.shape[axis]
    ends = range(n) if n <= MASK_LIMIT else (0, n - 1)
    subsets = [((i,), f"{what} {i} only") for i in ends]
    subsets += [(tuple(range(k)), f"{what}s 0..{k - 1} only")
                for k in (range(2, n) if n <= MASK_LIMIT else (2, n // 2, n - 1))]
    subsets += [(tuple(i for i in range(n) if i != skip), f"all {what}s but {skip}") for skip in ends if n > 2]
    masks = []
    for keep, _ in subsets:
        mask_shape = [1] * dy.ndim
        mask_shape[axis] = n
        masks.append(dy * np.isin(np.arange(n), keep).reshape(mask_shape))
    for (keep, detail), candidate in zip(subsets, ctx.recompute_many(masks)):
        # a quantity that does not sum over this axis (an element-wise op, dx over the batch) only loses slices:
        # that is not "part of the sum", and the op has no such sum to cut short
        if (candidate is not None and candidate.shape == ctx.expected.shape
                and np.all((candidate == ctx.expected) | (candidate == 0))):
            return
        yield detail, candidate


def _part_of_batch(ctx: Context) -> Iterable[Candidate]:
    yield from _masked_dy(ctx, 0, "sample")


def _part_of_channels(ctx: Context) -> Iterable[Candidate]:
    yield from _masked_dy(ctx, 1, "output channel")


def _one_cell_shift(ctx: Context) -> Iterable[Candidate]:
    e = ctx.expected
    for axis in _spatial_axes(e):
        if e.shape[axis] < 2:
            continue
        for by in (1, -1):
            yield f"shifted by {by:+d} along {_axis_name(e, axis)} (zero-filled)", shift(e, axis, by)
            yield f"rolled by {by:+d} along {_axis_name(e, axis)} (wrapped around)", np.roll(e, by, axis)


#: above this many upstream elements the per-element decomposition is too slow for a diagnosis
OVERWRITE_LIMIT = 512


def _overwritten(ctx: Context) -> Iterable[Candidate]:
    """The backward is linear in dy: split it into one contribution per dy element; with '=' instead of '+=' the
    contribution written last (dy's elements in C order, the usual loop order n, k, i, j) is all that remains."""
    dy = ctx.case.dy
    if dy.ndim == 0 or dy.size > OVERWRITE_LIMIT:
        return
    ones = []
    for index in np.ndindex(dy.shape):
        one = np.zeros_like(dy)
        one[index] = dy[index]
        ones.append(one)
    out = np.zeros_like(ctx.expected)
    for part in ctx.recompute_many(ones):  # one batched backward
        if part is None or part.shape != out.shape:
            return
        out = np.where(part != 0, part, out)
    yield "each element holds only the last contribution written (loops over dy in order n, k, i, j)", out


def _left_zero(ctx: Context) -> Iterable[Candidate]:
    yield "all zeros", np.zeros_like(ctx.expected)


def _local_derivative_dropped(ctx: Context) -> Iterable[Candidate]:
    if ctx.case.dy.shape == ctx.expected.shape:
        yield "the result equals dE/dy", ctx.case.dy


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_jacobian_mistakes(ctx: Context) -> Iterable[Candidate]:
    """dE/dx_i = sum_k dE/dy_k J_ki with J_ii = y_i (1 - y_i), J_ki = -y_k y_i: the off-diagonal sign flipped,
    or the off-diagonal terms left out (the Jacobian taken as diagonal, as for an element-wise activation)."""
    y, dy = _softmax_rows(ctx.case.arrays["x"]), ctx.case.dy
    diagonal = dy * y * (1 - y)
    off = -y * (np.sum(dy * y, axis=-1, keepdims=True) - dy * y)  # sum_{k != i} dy_k (-y_k y_i)
    yield "off-diagonal terms dy_k/dx_i = +y_k y_i (sign flipped)", diagonal - off
    yield "off-diagonal terms left out (diagonal Jacobian y_i (1 - y_i) only)", diagonal


# ---- element-wise activations: the local derivative f' and the usual ways to get it wrong ----------------------

#: op -> (f' in terms of (x, y), {what went wrong: wrong f'(x, y, dy)}); dE/dx = dE/dy * f'. The wrong forms are
#: f' taken from the wrong quantity (the input, the output or the upstream gradient in place of the right one) and
#: a wrong term or sign in f'.
ACTIVATION_DERIVATIVES: dict[str, tuple[Callable, dict[str, Callable]]] = {
    "relu": (lambda x, y: (x > 0) * 1.0, {
        "multiplied by the input x where x > 0, instead of by 1": lambda x, y, dy: x * (x > 0),
        "mask taken from the upstream gradient (dE/dy > 0) instead of the input (x > 0)": lambda x, y, dy: dy > 0,
        "mask inverted (x < 0 instead of x > 0)": lambda x, y, dy: (x < 0) * 1.0}),
    "sigmoid": (lambda x, y: y * (1 - y), {
        "f' = x (1 - x) from the input instead of y (1 - y) from the output": lambda x, y, dy: x * (1 - x),
        "f' = dy (1 - dy) from the upstream gradient instead of y (1 - y)": lambda x, y, dy: dy * (1 - dy),
        "f' = y, the (1 - y) term dropped": lambda x, y, dy: y,
        "f' = 1 - y, the y term dropped": lambda x, y, dy: 1 - y,
        "f' = y (1 + y), sign of the y^2 term flipped": lambda x, y, dy: y * (1 + y)}),
    "tanh": (lambda x, y: 1 - y * y, {
        "f' = 1 - x^2 from the input instead of 1 - y^2 from the output": lambda x, y, dy: 1 - x * x,
        "f' = 1 - dy^2 from the upstream gradient instead of 1 - y^2": lambda x, y, dy: 1 - dy * dy,
        "f' = 1 - y, the square dropped": lambda x, y, dy: 1 - y,
        "f' = 1 + y^2, sign flipped": lambda x, y, dy: 1 + y * y,
        "f' = y^2, the 1 dropped or the sign of the whole flipped": lambda x, y, dy: y * y}),
}


def _activation_derivative(ctx: Context) -> Iterable[Candidate]:
    if ctx.spec.name not in ACTIVATION_DERIVATIVES or ctx.arg != "x":
        return
    x, dy = ctx.case.arrays["x"], ctx.case.dy
    y = ctx.forward_value()
    for detail, wrong in ACTIVATION_DERIVATIVES[ctx.spec.name][1].items():
        yield detail, dy * np.asarray(wrong(x, y, dy), dtype=np.float64)


def _leaky_slope(ctx: Context) -> Iterable[Candidate]:
    """ReLU's backward with a leak: dE/dx = dE/dy (x > 0) + a dE/dy (x <= 0); a by least squares, named."""
    if ctx.spec.name != "relu" or ctx.arg != "x":
        return
    x, dy = ctx.case.arrays["x"], ctx.case.dy
    leak = dy * (x <= 0)
    denominator = float(np.sum(leak * leak))
    if denominator == 0.0:
        return
    a = float(np.sum((ctx.got - ctx.expected) * leak)) / denominator
    if a != 0.0:
        yield f"a leaky slope {a:.6g} where x <= 0 (ReLU's derivative there is 0)", ctx.expected + a * leak


# ---- windows: pooling argmax, kernel extent, bias axis ------------------------------------------------------------

def _windows(xp: np.ndarray, kernel, stride) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) view of the windows of a padded NCHW array (vectorised, no copy)."""
    (kh, kw), (sh, sw) = kernel, stride
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, ::sh, ::sw]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _argmax_unravelled_swapped(ctx: Context) -> Iterable[Candidate]:
    """Max-pool backward routing dy to the window's argmax, the flat index k unravelled with swapped axes
    ((k % kh, k // kh) or (k % kw, k // kw) where (k // kw, k % kw) is right)."""
    if ctx.spec.name != "maxpool2d" or ctx.arg != "x":
        return
    h = ctx.hyper
    (kh, kw), (sh, sw), (ph, pw) = _pair(h["kernel"]), _pair(h["stride"]), _pair(h.get("padding", 0))
    x, dy = ctx.case.arrays["x"], ctx.case.dy
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = _windows(xp, (kh, kw), (sh, sw))[:, :, :dy.shape[2], :dy.shape[3]]
    k = np.argmax(win.reshape(win.shape[:4] + (-1,)), axis=-1)
    n, c, i, j = np.indices(k.shape)
    for detail, (a, b) in (("(k % kh, k // kh)", (k % kh, k // kh)), ("(k % kw, k // kw)", (k % kw, k // kw))):
        if np.any(a >= kh) or np.any(b >= kw):
            continue
        dxp = np.zeros_like(xp)
        np.add.at(dxp, (n, c, i * sh + a, j * sw + b), dy)
        yield f"argmax index k unravelled as {detail} instead of (k // kw, k % kw)", \
            dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]


def _square_kernel_assumed(ctx: Context) -> Iterable[Candidate]:
    """A kernel loop that uses kh for both axes (or kw): the taps beyond the shorter side are never visited."""
    w = ctx.case.arrays.get("w")
    if w is None or w.ndim != 4 or w.shape[2] == w.shape[3]:
        return
    kh, kw = w.shape[2:]
    keep = np.zeros_like(w)
    keep[:, :, :min(kh, kw), :min(kh, kw)] = 1.0
    side = "kh" if kh < kw else "kw"
    detail = f"the kernel taken as {min(kh, kw)}x{min(kh, kw)} ({side} used for both axes)"
    if ctx.arg == "w":
        yield detail, ctx.expected * keep
    else:
        yield detail, ctx.recompute(arrays={"w": w * keep})


def _window_off_by_one(ctx: Context) -> Iterable[Candidate]:
    """A loop bound off by one: the last kernel row/column (range(kh - 1)) or the last output row/column
    (range(Ho - 1)) never visited."""
    w, dy = ctx.case.arrays.get("w"), ctx.case.dy
    if w is not None and w.ndim == 4:
        for axis, name in ((2, "row s = kh - 1"), (3, "column t = kw - 1")):
            keep = np.ones_like(w)
            index = [slice(None)] * 4
            index[axis] = -1
            keep[tuple(index)] = 0.0
            detail = f"the last kernel {name} skipped (range(k - 1))"
            yield detail, (ctx.expected * keep if ctx.arg == "w" else ctx.recompute(arrays={"w": w * keep}))
    if dy.ndim == 4:
        for axis, name in ((2, "row"), (3, "column")):
            index = [slice(None)] * 4
            index[axis] = -1
            if ctx.quantity == "forward":
                candidate = ctx.expected.copy()
                candidate[tuple(index)] = 0.0
            else:
                cut = dy.copy()
                cut[tuple(index)] = 0.0
                candidate = ctx.recompute(dy=cut)
            yield f"the last output {name} skipped (range(H_out - 1))", candidate


def _bias_axis(y: np.ndarray) -> int:
    return 1 if y.ndim >= 2 else 0


def _bias_wrong_axis(ctx: Context) -> Iterable[Candidate]:
    """The bias added along the wrong axis of y (forward), or its gradient summed over the wrong axes (db)."""
    b = ctx.case.arrays.get("b")
    dy = ctx.case.dy
    if b is None or b.ndim != 1 or dy.ndim < 2:
        return
    right = _bias_axis(dy)
    for axis in range(dy.ndim):
        if axis == right or dy.shape[axis] != b.size:
            continue
        if ctx.arg == "b":
            yield (f"summed over every axis but {axis} instead of but {right}",
                   dy.sum(axis=tuple(a for a in range(dy.ndim) if a != axis)))
        elif ctx.quantity == "forward":
            shape = [1] * dy.ndim
            moved = list(shape)
            shape[right], moved[axis] = b.size, b.size
            yield f"b broadcast along axis {axis} instead of {right}", \
                ctx.expected - b.reshape(shape) + b.reshape(moved)


# ----------------------------------------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------------------------------------

CATALOGUE: list[Mistake] = [
    Mistake("gradient never written", "the result is all zeros", _left_zero),
    Mistake("upstream gradient dropped", "the local derivative was returned without multiplying by dE/dy",
            _upstream_dropped, quantities=("grad",)),
    Mistake("kernel rotated by 180 degrees, or not rotated where it must be",
            "cross-correlation flips the kernel going back, true convolution flips it going forward; the result "
            "matches the other convention", _kernel_flip),
    Mistake("transposed layout", "rows and columns (or channel axes) exchanged", _transposed),
    Mistake("stride misapplied", "the windows were placed as if the stride were 1",
            _hyper_misapplied("stride", 1)),
    Mistake("padding misapplied", "the zero padding was ignored, or removed at the wrong offset", _padding),
    Mistake("dilation misapplied", "the kernel taps were placed as if the dilation were 1",
            _hyper_misapplied("dilation", 1)),
    Mistake("only part of the batch summed", "a sum over the batch stopped early or used one sample",
            _part_of_batch, quantities=("grad",)),
    Mistake("only part of the channels summed", "a sum over the output channels stopped early or used one channel",
            _part_of_channels, quantities=("grad",)),
    Mistake("one-cell shift", "an off-by-one index (i+1, i-1) moved the whole result by one cell", _one_cell_shift),
    Mistake("overwritten instead of accumulated", "'=' where '+=' was needed: overlapping contributions were lost",
            _overwritten, quantities=("grad",)),
    Mistake("local derivative dropped", "dE/dy passed through unchanged: the layer's own derivative (the ReLU "
            "mask, f') was never applied", _local_derivative_dropped, quantities=("dx",)),
    Mistake("softmax Jacobian wrong", "the softmax backward must apply the full Jacobian, J_ii = y_i (1 - y_i), "
            "J_ki = -y_k y_i", _softmax_jacobian_mistakes, ops=("softmax",), quantities=("dx",)),
    Mistake("local derivative wrong", "dE/dx = dE/dy f'; f' was taken from the wrong quantity (input, output, "
            "upstream gradient) or has a wrong term or sign", _activation_derivative,
            ops=tuple(ACTIVATION_DERIVATIVES), quantities=("dx",)),
    Mistake("leaky slope in the backward", "ReLU's derivative is 0 where x <= 0; the backward let a fraction of "
            "dE/dy through there", _leaky_slope, ops=("relu",), quantities=("dx",)),
    Mistake("argmax unravelled with swapped axes", "the window's flat argmax index k is (k // kw, k % kw)",
            _argmax_unravelled_swapped, ops=("maxpool2d",), quantities=("dx",)),
    Mistake("square kernel assumed", "a loop over the kernel used one side for both axes", _square_kernel_assumed),
    Mistake("window off by one", "a loop bound one short: the last kernel tap or output cell never visited",
            _window_off_by_one),
    Mistake("bias broadcast across the wrong axis", "the bias belongs to the channel axis (axis 1)",
            _bias_wrong_axis),
    Mistake("scaled by a constant", "the right shape, times a constant (a stray 1/N, 2, window area, sign...)",
            _scaled, fit_scale=True),
]


def register(mistake: Mistake) -> Mistake:
    """Add an entry (before the catch-all constant scale, so that specific entries are tried first)."""
    CATALOGUE.insert(len(CATALOGUE) - 1, mistake)
    return mistake


def catalogue_for(spec: OpSpec) -> list[Mistake]:
    """The generic entries plus those the spec modules declare in MISTAKES (op-specific first)."""
    from .registry import _modules

    extra = [m for module in _modules() for m in getattr(module, "MISTAKES", ()) if not m.ops or spec.name in m.ops]
    return extra + CATALOGUE


# ----------------------------------------------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------------------------------------------

def named_constants(config: Mapping[str, Any]) -> dict[str, float]:
    """Constants a stray factor is usually made of, named from the configuration (1/N, 2, window area...)."""
    ints = {k: v for k, v in config.items() if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 1}
    base = {}
    if {"kh", "kw"} <= config.keys():
        base["window area kh*kw"] = float(config["kh"] * config["kw"])
    if "scale" in ints:
        base["scale^2"] = float(ints["scale"] ** 2)
    base.update({k: float(v) for k, v in ints.items()})
    base.update({"2": 2.0, "-1 (sign flipped)": -1.0})
    named = dict(base)
    for name, value in base.items():
        if value not in (-1.0,):
            named[f"1/{name}"] = 1.0 / value
            named[f"-{name}"] = -value
    return named


def name_constant(c: float, config: Mapping[str, Any]) -> str:
    """Every name of the constant c (configuration-derived names first), joined by ' = '; "" if unnamed."""
    return " = ".join(name for name, value in named_constants(config).items() if abs(c - value) <= 1e-9 * abs(value))


@dataclass
class Fit:
    mistake: Mistake
    detail: str
    scale: float
    residual: float
    tolerance: float
    constant_name: str = ""

    @property
    def exact(self) -> bool:
        return not self.mistake.fit_scale

    def describe(self) -> str:
        what = self.mistake.name
        if self.mistake.fit_scale:
            named = f" = {self.constant_name}" if self.constant_name else ""
            what = f"scaled by a constant: got = {self.scale:.10g}{named} x expected (least squares)"
        elif self.detail:
            what = f"{what} ({self.detail})"
        return f"{what}; residual {self.residual:.1e} <= tolerance {self.tolerance:.1e}"


@dataclass
class Diagnosis:
    quantity: str
    fits: list[Fit] = field(default_factory=list)
    note: str = ""

    @property
    def mistake(self) -> str:
        """The name of the entry that fits best, or "" when none does."""
        return self.fits[0].mistake.name if self.fits else ""

    def describe(self) -> str:
        if not self.fits and self.note.startswith("nothing to diagnose"):
            return f"diagnosis {self.quantity}: {self.note}"
        if not self.fits:
            return f"diagnosis {self.quantity}: no catalogued mistake fits{'; ' + self.note if self.note else ''}"
        best = self.fits[0]
        line = f"diagnosis {self.quantity}: {best.describe()} -- {best.mistake.explanation}"
        others = sorted({f.mistake.name for f in self.fits[1:]} - {best.mistake.name})
        if others:
            line += f"; also consistent with: {', '.join(others)}"
        if self.note:
            line += f"; {self.note}"
        return line


def _fit(mistake: Mistake, detail: str, candidate: np.ndarray, ctx: Context, k: int) -> Fit | None:
    got, expected = ctx.got, ctx.expected
    if candidate is None or candidate.shape != got.shape or not np.all(np.isfinite(candidate)):
        return None
    scale = 1.0
    if mistake.fit_scale:
        denominator = float(np.sum(candidate * candidate))
        if denominator == 0.0 or not np.any(got):  # c = 0 is "never written", not a scale
            return None
        scale = float(np.sum(candidate * got)) / denominator
    model = scale * candidate
    magnitude = None if ctx.magnitude is None else abs(scale) * np.asarray(ctx.magnitude)
    tol = tolerance.rounding_tolerance(model, k, ctx.dtype, magnitude)
    # a candidate that equals the true result cannot explain a failure
    if not mistake.fit_scale and np.max(np.abs(candidate - expected), initial=0.0) <= tol:
        return None
    residual = float(np.max(np.abs(got - model), initial=0.0))
    if residual > tol:
        return None
    return Fit(mistake, detail, scale, residual, tol,
               name_constant(scale, ctx.case.config) if mistake.fit_scale else "")


def diagnose(ctx: Context, catalogue: list[Mistake] | None = None) -> Diagnosis:
    """Every catalogue entry that fits ``ctx.got``; exact fits (in catalogue order) before constant-scale ones."""
    diagnosis = Diagnosis(ctx.quantity)
    if ctx.expected.shape != ctx.got.shape:
        diagnosis.note = f"shape {ctx.got.shape} where {ctx.expected.shape} was expected"
        return diagnosis
    if not np.all(np.isfinite(ctx.got)):
        diagnosis.note = "the result holds inf or nan"
        return diagnosis
    k = ctx.spec.reduction_length(ctx.case.config)
    for mistake in catalogue if catalogue is not None else catalogue_for(ctx.spec):
        if not mistake.applies(ctx):
            continue
        for detail, candidate in mistake.candidates(ctx):
            found = _fit(mistake, detail, candidate, ctx, k)
            if found is not None:
                diagnosis.fits.append(found)
                break
    diagnosis.fits.sort(key=lambda f: not f.exact)
    if ctx.got.size == 1 and diagnosis.fits:
        diagnosis.note = "a single element: any constant fits, so a scale fit says little"
    return diagnosis


# ----------------------------------------------------------------------------------------------------------------
# From a case result
# ----------------------------------------------------------------------------------------------------------------

def _arrays_for(result, quantity: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Expected and got arrays of one quantity: from the comparisons that kept them (the PyTorch oracle first)."""
    keeping = [c for c in result.comparisons if c.quantity == quantity and c.arrays]
    keeping.sort(key=lambda c: c.oracle != "pytorch")
    if keeping:
        return keeping[0].arrays["expected"], keeping[0].arrays["got"]
    return None


def _recomputed(result) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Expected (PyTorch) and got (the implementation) for every quantity, when no comparison kept arrays (a failure
    seen only by finite differences)."""
    from .calls import evaluate
    from .oracles import torch_outputs

    y, grads = torch_outputs(result.spec, result.case)
    evaluation = evaluate(result.spec, result.impl, result.case)
    out = {"forward": (y, evaluation.y)}
    out.update({quantity_label(n): (grads[n], evaluation.grads[n]) for n in result.spec.differentiable})
    return out


def diagnose_result(result) -> list[Diagnosis]:
    """A diagnosis for every failing quantity of a CaseResult."""
    from .oracles import magnitudes
    from .report import true_op_agrees

    wrong = []
    for c in result.failures:
        if c.quantity not in wrong:
            wrong.append(c.quantity)
    if not wrong:
        return []
    try:
        mags = magnitudes(result.spec, result.case)
    except Exception:  # noqa: BLE001 -- without magnitudes the tolerance falls back to the arrays' own scale
        mags = {}
    recomputed = None
    out = []
    forward_wrong = "forward" in wrong
    for quantity in wrong:
        if forward_wrong and true_op_agrees(result, quantity):
            out.append(Diagnosis(quantity, note="nothing to diagnose: it equals the true op's gradient "
                                                "(pytorch/reference agree); only oracles that differentiate the "
                                                "implementation's own forward disagree"))
            continue
        pair = _arrays_for(result, quantity)
        if pair is None:
            if recomputed is None:
                try:
                    recomputed = _recomputed(result)
                except Exception as error:  # noqa: BLE001 -- the implementation raised: nothing to diagnose
                    out.append(Diagnosis(quantity, note=f"could not re-evaluate the implementation: {error}"))
                    continue
            pair = recomputed.get(quantity)
        if pair is None:
            out.append(Diagnosis(quantity, note="no arrays to compare"))
            continue
        expected, got = (np.asarray(a, dtype=np.float64) for a in pair)
        found = diagnose(Context(result.spec, result.case, quantity, expected, got, mags.get(quantity),
                                 getattr(result, "dtype", "float64")))
        out.append(_on_a_wider_case(result, found) if _too_small_to_tell(found, got, result.case) else found)
    return out


# ----------------------------------------------------------------------------------------------------------------
# A second, wider configuration: mistakes that coincide on a tiny case, and compound constants
# ----------------------------------------------------------------------------------------------------------------

#: only cases up to this many input elements are re-run wider (a large case tells the mistakes apart already)
WIDER_LIMIT = 10_000
#: how a configuration is widened: sizes grown by different amounts, so that products of them separate
GROW = {"N": 1, "C": 1, "C_in": 1, "C_out": 2, "K": 3, "m": 1, "n": 2, "H": 2, "W": 3}
KERNEL_AT_LEAST = {"kh": 2, "kw": 3}


def _too_small_to_tell(d: Diagnosis, got: np.ndarray, case: Case) -> bool:
    """A diagnosis worth repeating on a wider case: one or two elements (any constant, any mask fits), several
    entries fitting, all zeros, or a constant (whose name may be one of several products of sizes)."""
    if sum(int(np.size(a)) for a in case.arrays.values()) > WIDER_LIMIT:
        return False
    if got.size <= 2 and (d.fits or not d.note):
        return True
    names = {f.mistake.name for f in d.fits}
    if len(names) > 1 or d.mistake == "gradient never written":
        return True
    return bool(d.fits) and d.fits[0].mistake.fit_scale and _simple_ratio(d.fits[0].scale)


def _simple_ratio(c: float, most: int = 1000) -> bool:
    """c = p/q with q <= most: a constant that a product of sizes can make (1 + 1e-6 cannot)."""
    multiples = abs(c) * np.arange(1, most + 1)
    return bool(np.any(np.abs(multiples - np.round(multiples)) <= 1e-9 * multiples) and c != 0)


#: limit names that hold several configuration fields
LIMIT_FIELDS = {"kernel": ("kh", "kw"), "stride": ("sh", "sw"), "padding": ("ph", "pw"), "dilation": ("dilh", "dilw")}


def wider_config(spec: OpSpec, config: Mapping[str, Any], limits: Mapping[str, Any] = ()) -> dict | None:
    """The configuration with sizes grown (GROW) and 1-tap kernels widened, if the op accepts it; else with the
    sizes grown alone; None if neither is valid. Fields that a plug-in's ``limits`` name are kept."""
    kept = {f for name in limits for f in LIMIT_FIELDS.get(name, (name,))}
    grown = {k: v + GROW[k] if k in GROW and k not in kept and isinstance(v, int) else v for k, v in config.items()}
    widened = {k: max(v, KERNEL_AT_LEAST[k]) if k in KERNEL_AT_LEAST and k not in kept and isinstance(v, int)
               else v for k, v in grown.items()}
    for candidate in (widened, grown):
        try:
            if all(n >= 1 for n in spec.output_shape(candidate)):
                spec.make_case(candidate, 0)
                return candidate
        except Exception:  # noqa: BLE001 -- a configuration the op does not accept
            continue
    return None


def _sizes(spec: OpSpec, config: Mapping[str, Any]) -> dict[str, float]:
    """Named sizes of a configuration for naming a compound constant: its integers and the output's spatial sizes."""
    out = {k: float(v) for k, v in config.items() if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}
    shape = spec.output_shape(config)
    if len(shape) == 4:
        out.update({"H_out": float(shape[2]), "W_out": float(shape[3])})
    return out


def compound_names(scale1: float, sizes1: Mapping[str, float], scale2: float, sizes2: Mapping[str, float],
                   most: int = 3) -> list[str]:
    """Products of up to ``most`` sizes, each to the power +-1, times +-1 or 2, equal to scale1 on the first
    configuration and scale2 on the second: the factor the mistake is made of."""
    from itertools import combinations, product
    names = [k for k in sizes1 if k in sizes2 and sizes1[k] > 0 and sizes2[k] > 0
             and (sizes1[k] != 1 or sizes2[k] != 1)]
    found = []
    leads = [lead for lead in (1.0, -1.0, 2.0, -2.0, 0.5, -0.5) if lead * scale1 > 0]
    for count in range(0, most + 1):
        for chosen in combinations(names, count):
            for powers in product((1, -1), repeat=count):
                p1 = math.prod(sizes1[n] ** p for n, p in zip(chosen, powers))
                p2 = math.prod(sizes2[n] ** p for n, p in zip(chosen, powers))
                for lead in leads:
                    v1, v2 = lead * p1, lead * p2
                    if abs(v1 - scale1) <= 1e-9 * abs(v1) and abs(v2 - scale2) <= 1e-9 * abs(v2):
                        found.append(_product_name(lead, [n for n, p in zip(chosen, powers) if p > 0],
                                                   [n for n, p in zip(chosen, powers) if p < 0]))
        if found:
            return found
    return found


def _product_name(lead: float, up: list[str], down: list[str]) -> str:
    """'-2*kh/(N*W)' from the lead constant and the sizes above and below the line."""
    up = (["2"] if abs(lead) == 2 else []) + up
    down = (["2"] if abs(lead) == 0.5 else []) + down
    text = "*".join(up) or "1"
    if down:
        text += "/" + (f"({'*'.join(down)})" if len(down) > 1 else down[0])
    return ("-" if lead < 0 else "") + text


def _on_a_wider_case(result, small: Diagnosis) -> Diagnosis:
    """The diagnosis repeated on a wider configuration of the same seed (the implementation called again):
    taken when the quantity is wrong there too and the diagnosis there is unambiguous; a constant fitted on both
    is named as the product of sizes that gives both values."""
    from .calls import evaluate
    from .oracles import magnitudes, torch_outputs

    spec, quantity = result.spec, small.quantity
    config = wider_config(spec, result.case.config, getattr(result, "limits", {}))
    if config is None:
        return small
    try:
        case = spec.make_case(config, result.case.seed)
        y, grads = torch_outputs(spec, case)
        evaluation = evaluate(spec, result.impl, case)
        expected = y if quantity == "forward" else grads[quantity[1:]]
        got = evaluation.y if quantity == "forward" else evaluation.grads[quantity[1:]]
        wide = diagnose(Context(spec, case, quantity, np.asarray(expected), np.asarray(got),
                                magnitudes(spec, case).get(quantity), evaluation.dtype))
    except Exception:  # noqa: BLE001 -- the implementation or the op refuses the wider case: keep the small one
        return small
    if not wide.fits or len({f.mistake.name for f in wide.fits}) > 1 and len(small.fits) <= len(wide.fits):
        return small
    best = wide.fits[0]
    if best.mistake.fit_scale and small.fits and small.fits[0].mistake.fit_scale:
        here = name_constant(small.fits[0].scale, result.case.config).split(" = ")
        common = [n for n in name_constant(best.scale, config).split(" = ") if n and n in here]
        names = common or compound_names(small.fits[0].scale, _sizes(spec, result.case.config), best.scale,
                                         _sizes(spec, config))
        best.constant_name = " = ".join(names)
    wide.note = "; ".join(filter(None, [wide.note, f"diagnosed on a wider case {case.describe()}, where the "
                                        f"mistakes that fit the failing case can be told apart"]))
    return wide


# ----------------------------------------------------------------------------------------------------------------
# Misbehaviours (an ImplementationError, no values to compare) that a common mistake explains
# ----------------------------------------------------------------------------------------------------------------

#: the largest x whose exp is finite in float64
EXP_LIMIT = float(np.log(np.finfo(np.float64).max))


def diagnose_misbehaviour(spec: OpSpec, case: Case | None, error: BaseException) -> list[str]:
    """Sentences naming a common mistake behind a misbehaviour: an empty gradient from a [p:-p] crop at padding
    0; NaN or inf from exp of inputs beyond its range (a softmax or cross-entropy without max subtraction)."""
    if case is None:
        return []
    problem, detail = getattr(error, "problem", ""), getattr(error, "detail", "")
    out = []
    padding = [case.config.get(k) for k in ("ph", "pw") if k in case.config]
    if "shape" in problem and "; (" in detail and any(p == 0 for p in padding):
        shapes = [part.split(" has shape ")[1].split(";")[0] for part in detail.splitlines() if " has shape " in part]
        if any(", 0" in s or "(0" in s for s in shapes):
            out.append("diagnosis: an empty axis at padding 0: a crop written [p:-p] is empty when p = 0 "
                       "(-0 is 0); crop with [p:p + H] instead")
    x = case.arrays.get("x")
    if ("NaN" in problem or "inf" in problem) and x is not None and np.max(np.abs(x), initial=0) > EXP_LIMIT:
        out.append(f"diagnosis: the inputs reach |x| = {np.max(np.abs(x)):.4g}, beyond exp's range ({EXP_LIMIT:.1f}):"
                   f" exp(x) overflows to inf (or all terms underflow to 0, 0/0 = NaN) unless the row maximum is "
                   f"subtracted first (softmax, cross-entropy: exp(x - max x) / sum exp(x - max x))")
    return out


__all__ = ["CATALOGUE", "Candidate", "Context", "Diagnosis", "Fit", "Mistake", "catalogue_for", "diagnose",
           "diagnose_result", "diagnose_misbehaviour", "named_constants", "register", "shift"]
