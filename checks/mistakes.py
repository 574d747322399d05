"""The diagnosis catalogue: common backprop mistakes as data, each a function yielding candidate arrays -- what the
result would be had the implementation made that mistake (the true result rotated, shifted, scaled; or the true op
recomputed with a wrong upstream gradient, a wrong stride, a masked batch...). ``cnn_gradcheck.diagnosis`` fits them
to a wrong result.

Recomputations go through torch (``Context.recompute``), vectorised: never the loop references, so that a report
costs about as much as the check that found the failure.

Extending it: a spec module in checks/specs/ may define ``MISTAKES`` (a list of Mistake, with ``ops`` set to its op
names); ``register`` adds one at run time. Candidates that raise (a recomputation the configuration does not allow)
or whose shape differs are skipped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .spec import Case, OpSpec

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
