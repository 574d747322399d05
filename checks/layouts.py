"""How arrays are handed to a plug-in: the array library (numpy, torch or jax), its dtype and device, and the memory
layout. The values are always the case's values; only where they lie in memory changes, so that code which silently
assumes a contiguous layout (``as_strided`` with strides computed from the shape, ``.view``, raw pointers) is caught.

Layouts (a plug-in is given each, drawn by Hypothesis like the configuration; "contiguous" is the shrink target):

- "contiguous":    C order, a fresh copy.
- "strided":       a view of every second element (along every axis) of a buffer twice as large whose gaps hold
                   NaN: code that reads memory as if contiguous reads the NaN and is reported for it.
- "transposed":    all axes reversed in memory (Fortran order, what ``a.T.copy().T`` gives).
- "channels_last": 4-d arrays in N, H, W, C memory order (torch's ``channels_last`` memory format); other arrays
                   stay contiguous. Tried for torch plug-ins.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

LAYOUTS = ("contiguous", "strided", "transposed", "channels_last")
#: array libraries and the precisions each can hand a plug-in
DTYPES = {"numpy": ("float64", "float32", "float16"), "torch": ("float64", "float32", "float16", "bfloat16"),
          "jax": ("float64", "float32", "float16", "bfloat16")}
NUMPY_LAYOUTS = ("contiguous", "strided", "transposed")
TORCH_LAYOUTS = LAYOUTS
JAX_LAYOUTS = ("contiguous",)  # a jax array has no memory layout the caller can choose

DESCRIPTIONS = {
    "contiguous": "contiguous arrays",
    "strided": "non-contiguous strided views (every second element of a larger buffer whose gaps hold NaN)",
    "transposed": "transposed memory order (Fortran order: all axes reversed in memory)",
    "channels_last": "channels_last memory format (4-d arrays stored N, H, W, C)",
}


class PluginOptionError(ValueError):
    """A plug-in option (kind, dtype, axes, limits, layouts, the op's name) that cannot work; the message names the
    option, its value and what would be accepted. Raised before any of the plug-in's code runs."""


def check_layouts(names, where: str = "") -> tuple[str, ...]:
    """The layout names, or a PluginOptionError naming the unknown ones."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown or not names:
        raise PluginOptionError(f"{where}bad plug-in option layouts={list(names)!r}: "
                                + (f"unknown layout {', '.join(map(repr, unknown))}; " if unknown else "no layout; ")
                                + f"the layouts are {', '.join(LAYOUTS)}")
    return names


def hint(layout: str) -> str:
    """A sentence appended to failures seen with a non-contiguous layout."""
    if layout == "contiguous":
        return ""
    return (f"\nthe inputs arrived as {DESCRIPTIONS[layout]}; the same case with contiguous inputs is what "
            f"shrinking tries first, so code that assumes a contiguous layout (strides computed from the shape, "
            f"as_strided, .view, raw data pointers) is the likely cause")


def _numpy(a: np.ndarray, layout: str) -> np.ndarray:
    if a.ndim == 0:  # a scalar (a loss's dy) has no layout; np.asfortranarray would make it 1-d
        return np.array(a, copy=True)
    if layout == "strided":
        buffer = np.full(tuple(2 * n for n in a.shape), np.nan, dtype=a.dtype)
        view = buffer[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "transposed":
        return np.asfortranarray(a)
    if layout == "channels_last" and a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.array(a, copy=True, order="C")


def _torch(t, layout: str):
    import torch
    if layout == "strided" and t.dim():
        buffer = torch.full(tuple(2 * n for n in t.shape), float("nan"), dtype=t.dtype, device=t.device)
        view = buffer[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    if layout == "transposed":
        reverse = tuple(range(t.dim() - 1, -1, -1))
        return t.permute(reverse).contiguous().permute(reverse)
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.clone(memory_format=torch.contiguous_format)


@dataclass(frozen=True)
class Backend:
    """The array library a plug-in works in. kind: "numpy" or "torch"; dtype: the precision inputs are given in
    (numpy: float64/float32/float16; torch: also bfloat16); device: torch device ("cpu", "cuda")."""

    kind: str = "numpy"
    dtype: str = "float64"
    device: str = "cpu"

    def __post_init__(self):
        """An unknown library or precision is the caller's mistake: said now, not blamed on the plug-in later."""
        if self.kind not in DTYPES:
            raise PluginOptionError(f"bad plug-in option kind={self.kind!r}: the array libraries are "
                                    f"{', '.join(map(repr, DTYPES))}")
        if self.dtype not in DTYPES[self.kind]:
            raise PluginOptionError(f"bad plug-in option dtype={self.dtype!r}: a {self.kind} plug-in can be given "
                                    f"{', '.join(DTYPES[self.kind])}")

    @property
    def layouts(self) -> tuple[str, ...]:
        return {"torch": TORCH_LAYOUTS, "jax": JAX_LAYOUTS}.get(self.kind, NUMPY_LAYOUTS)

    @contextlib.contextmanager
    def context(self):
        """What every call of the plug-in runs under. torch on CUDA: TF32 off (it would round float32 matmuls to
        10-bit mantissas), so results are true float32/float64. jax: 64-bit arrays enabled for the call, the
        user's setting restored after it (jax computes in float32 otherwise, whatever it is given)."""
        if self.kind == "jax":
            import jax
            saved = jax.config.jax_enable_x64
            jax.config.update("jax_enable_x64", True)
            try:
                yield
            finally:
                jax.config.update("jax_enable_x64", saved)
            return
        if self.kind != "torch" or not self.device.startswith("cuda"):
            yield
            return
        import torch
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    def present(self, a: np.ndarray, layout: str = "contiguous") -> Any:
        """The float64 array ``a`` as the plug-in receives it: library, dtype, device, memory layout."""
        if self.kind == "numpy":
            return _numpy(np.asarray(a).astype(self.dtype), layout)
        if self.kind == "jax":
            import jax.numpy as jnp
            return jnp.asarray(np.asarray(a, dtype=np.float64), dtype=getattr(jnp, self.dtype))
        import torch
        t = torch.from_numpy(np.array(a, dtype=np.float64, order="C"))  # not ascontiguousarray: it makes 0-d 1-d
        return _torch(t.to(device=self.device, dtype=getattr(torch, self.dtype)), layout)

    def snapshot(self, x: Any) -> Any:
        """A copy to compare with after the call (in-place mutation; jax arrays are immutable, kept as they are)."""
        if self.kind == "jax":
            return x
        return x.detach().clone() if self.kind == "torch" else np.array(x, copy=True)

    def describe(self) -> str:
        return f"{self.kind} {self.dtype}" + (f" on {self.device}" if self.kind == "torch" else "")


NUMPY = Backend()
TORCH = Backend("torch")
