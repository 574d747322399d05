"""Mutation testing of the harness itself: does the test suite notice a small change to the code it tests?

Each mutant is one small edit to one module (operator, comparison, constant, index ...), made in a scratch copy of
the repository, never in the working tree. A targeted, fast selection of tests (``SELECTIONS``) runs against it:
the mutant is *killed* when a test fails, errors or runs past the timeout, and *survives* when every test passes.
A survivor is either a gap in the tests (add a test that asserts the behaviour the edit changes) or an equivalent
mutant (the edit cannot change behaviour; docs/mutation.md lists those with the reason).

    .venv/bin/python tools/mutation.py                        # the modules of `make mutation`, every mutant
    .venv/bin/python tools/mutation.py --modules reference/activations.py,checks/compare.py --sample 15
    .venv/bin/python tools/mutation.py --list --modules reference/dense.py       # the mutants, nothing run
    .venv/bin/python tools/mutation.py --only reference/dense.py:33              # the mutants of one line
    .venv/bin/python tools/mutation.py --json run.json ...; ... --rerun run.json    # only the survivors, again

The scratch copy: the tree is copied to a temporary folder, and ``_pkgroot/cnn_gradcheck`` in it is assembled as
the install would (checks/ with reference/ and examples/ inside); ``_pkgroot`` comes first on sys.path, ahead of
the editable install's finder (which setuptools appends to sys.meta_path). Nothing is installed. The mutated file
is the copy's; it is restored after every mutant (in a ``finally``, so also on Ctrl-C), and the scratch folder is
deleted at the end.

Speed: importing torch, numpy, Hypothesis and pytest costs ~3 s, more than most selections take to run. By default
(``--isolation fork``) one process imports them once and forks a child per mutant, which runs pytest.main on the
mutated copy (the harness itself is imported fresh in every child: the parent never imports it). ``--isolation
subprocess`` starts a fresh interpreter per mutant instead (slower, nothing shared).
"""
from __future__ import annotations

import argparse
import ast
import copy
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the modules `make mutation` mutates: the loop references and the verdict-making core of the harness
DEFAULT_MODULES = [
    "reference/activations.py", "reference/conv2d.py", "reference/conv_matrix.py", "reference/dense.py",
    "reference/losses.py", "reference/network.py", "reference/pooling.py", "reference/subsampling.py",
    "reference/printed.py",
    "reference/batchnorm.py", "reference/conv_nd.py", "reference/conv_padding_modes.py",
    "reference/conv_transpose.py", "reference/dropout.py", "reference/grouped_conv.py", "reference/layernorm.py",
    "reference/logit_losses.py", "reference/pooling_modes.py", "reference/relu_variants.py",
    "reference/upsampling.py",
    "checks/compare.py", "checks/tolerance.py", "checks/finite_diff.py", "checks/adjoint.py", "checks/oracles.py",
    "checks/probes.py",
]

_EXACT = "tests/test_reference_exact.py"
_LAYERS = "tests/test_reference_exact_layers.py"
_VERDICTS = "tests/test_verdicts.py"
_JOINT = "tests/test_joint_witnesses.py"
_MUT_TOLERANCE = "tests/test_mut_tolerance.py"
#: module -> the pytest arguments (files, node ids, -k expressions) that should kill its mutants, fastest first
#: (-x stops at the first failure)
SELECTIONS: dict[str, list[str]] = {
    "reference/activations.py": [_EXACT, "tests/test_large_magnitude.py"],
    "reference/conv2d.py": [_EXACT],
    "reference/conv_matrix.py": [_EXACT, "tests/test_adjoint.py", "-k", "not plugged_in and not guarded"],
    "reference/dense.py": [_EXACT],
    "reference/losses.py": [_EXACT, "tests/test_large_magnitude.py"],
    "reference/network.py": [_EXACT, "tests/test_network.py", "-k", "not plotted and not training"],
    "reference/pooling.py": [_EXACT, "tests/test_nondifferentiable.py"],
    "reference/subsampling.py": [_EXACT],
    "reference/printed.py": ["tests/test_mut_printed.py", "tests/test_errata.py"],
    "reference/batchnorm.py": [_LAYERS],
    "reference/conv_nd.py": [_LAYERS],
    "reference/conv_padding_modes.py": [_LAYERS],
    "reference/conv_transpose.py": [_LAYERS],
    "reference/dropout.py": [_LAYERS],
    "reference/grouped_conv.py": [_LAYERS],
    "reference/layernorm.py": [_LAYERS],
    "reference/logit_losses.py": [_LAYERS],
    "reference/pooling_modes.py": [_LAYERS],
    "reference/relu_variants.py": [_LAYERS],
    "reference/upsampling.py": [_LAYERS],
    "checks/compare.py": [_MUT_TOLERANCE, _VERDICTS, "tests/test_rounding_resolution.py", "tests/test_precision.py"],
    "checks/tolerance.py": [_MUT_TOLERANCE, _VERDICTS, _JOINT, "tests/test_adjoint_dy_identity.py",
                            "tests/test_mut_core.py", "tests/test_rounding.py", "tests/test_rounding_resolution.py",
                            "tests/test_precision.py", "tests/test_adjoint.py", "tests/test_rounding_float32.py",
                            "tests/test_rounding_floor.py"],
    "checks/finite_diff.py": ["tests/test_mut_witnesses.py", _VERDICTS, _JOINT, "tests/test_adjoint_dy_identity.py",
                              "tests/test_mut_core.py", "tests/test_nondifferentiable.py", "tests/test_precision.py",
                              "tests/test_rounding.py", "tests/test_rounding_float32.py"],
    "checks/adjoint.py": ["tests/test_mut_adjoint.py", _VERDICTS, _JOINT, "tests/test_adjoint_dy_identity.py",
                          "tests/test_adjoint.py", "tests/test_precision.py", "tests/test_rounding_resolution.py"],
    "checks/oracles.py": ["tests/test_mut_oracles_joint.py", _VERDICTS, _JOINT, "tests/test_mut_core_oracles.py",
                          "tests/test_rounding.py", "tests/test_rounding_floor.py", "tests/test_references.py",
                          "tests/test_precision.py", "tests/test_rounding_float32.py"],
    "checks/probes.py": ["tests/test_mut_oracles_joint.py", _VERDICTS, _JOINT, "tests/test_mut_core_oracles.py",
                         "tests/test_rounding.py", "tests/test_rounding_floor.py", "tests/test_references.py",
                         "tests/test_precision.py", "tests/test_rounding_float32.py"],
}

#: mutants that cannot change behaviour, keyed by (path, mutation, original line) so that they follow the line when
#: code moves; the reasons are in docs/mutation.md. They are run like any other mutant (a test that kills one shows
#: the reasoning wrong), but a survivor listed here counts as equivalent, not as a gap in the tests.
EQUIVALENT = {
    ("reference/activations.py", "`>=` -> `>`",
     "out[index] = 1.0 / (1.0 + np.exp(-v)) if v >= 0 else np.exp(v) / (1.0 + np.exp(v))"):
        "at v = 0 both branches give 1 / 2 exactly",
    ("reference/activations.py", "`0` -> `1`",
     "out[index] = 1.0 / (1.0 + np.exp(-v)) if v >= 0 else np.exp(v) / (1.0 + np.exp(v))"):
        "for 0 <= v < 1 the second form is the same value (within an ulp) and cannot overflow",
    ("reference/activations.py", "`>` -> `>=`", "y[index] = x[index] if x[index] > 0 else 0.0"):
        "at x = 0 both give 0 (x itself is 0 or -0.0, equal to 0.0)",
    ("reference/conv2d.py", "`1` -> `0`", "reach_h, reach_w = (Ho - 1) * sh + 1, (Wo - 1) * sw + 1"):
        "(Ho - 0) * S + 1 only makes delta_full longer by S zero rows; the loop over u stops at the padded input's "
        "size, so no extra term is ever nonzero (the other `1` -> `0` of this line drops a row and is killed)",
    ("reference/conv2d.py", "`-` -> `+`", "reach_h, reach_w = (Ho - 1) * sh + 1, (Wo - 1) * sw + 1"):
        "(Ho + 1) * S + 1: delta_full longer by 2 S zero rows, as above",
    ("reference/conv2d.py", "`2` -> `3`", "delta_full = np.zeros((N, C_out, reach_h + 2 * eh, reach_w + 2 * ew))"):
        "a wider zero frame around delta: the extra cells are zeros and beyond what the loops read",
    ("reference/conv_matrix.py", "`2` -> `3`", "dxp = np.zeros((N, C_in, H + 2 * ph, W + 2 * pw))"):
        "a wider zero frame for the padded dx: col2im adds only inside H + 2 ph, W + 2 pw, and dx is cropped at ph, pw",
    ("reference/network.py", "`True` -> `False`", "@dataclass(frozen=True)"):
        "nothing assigns to the record's fields after it is built; frozen only forbids it",
    ("reference/printed.py", "`0` -> `1`", "def maxpool_backward_000(dy, x, kernel, stride, padding=0):"):
        "the transcribed backward never reads padding (the text's window has none)",
    ("reference/printed.py", "`0.0` -> `1.0`", "y = np.maximum(0.0, x)"):
        "the printed mask y >= 0 holds for every y = max(c, x) with c >= 0: it passes dy everywhere either way "
        "(the printed mistake)",
    ("reference/printed.py", "`0.0` -> `1.0`", "return (np.where(y >= 0, dy, 0.0),)"):
        "the printed mask y >= 0 is always true (y = max(0, x)), so the else value is never taken",
    ("reference/pooling.py", "unary `-` removed", "best, where = -np.inf, None"):
        "the first cell is taken whatever best starts at (`where is None`), so the initial best is never compared",
    ("reference/printed.py", "unary `-` removed", "f = 1.0 / (1.0 + np.exp(-x))"):
        "f (1 - f) is even in x: sigmoid(-x) = 1 - sigmoid(x)",
    ("reference/relu_variants.py", "`>` -> `>=`", "return _elementwise(lambda v: v if v > 0 else slope * v, x)"):
        "at v = 0 both give 0 (v is 0 or -0.0, slope * v is +-0.0, all equal to 0.0)",
    ("reference/relu_variants.py", "`>` -> `>=`",
     "return _elementwise(lambda v: v if v > 0 else alpha * math.expm1(v), x)"):
        "at v = 0 both give 0 (expm1(0) = 0, and -0.0 equals 0.0)",
    ("reference/conv_padding_modes.py", "`<` -> `<=`",
     "return -r if r < 0 else (2 * (n - 1) - r if r >= n else r)"):
        "reflect's source row at r = 0: -r and r are both 0",
    ("reference/conv_padding_modes.py", "`0` -> `1`",
     "return -r if r < 0 else (2 * (n - 1) - r if r >= n else r)"):
        "r < 1 adds only r = 0 to the mirrored branch, where -r = r = 0",
    ("reference/upsampling.py", "`-` -> `+`", "u0 = min(int(math.floor(r)), size - 1)"):
        "r <= size - 1/2 - 1/(2 scale) < size for every output row i < size * scale, so floor(r) <= size - 1 and a "
        "larger bound (size + 1) clamps nothing either",
    ("reference/upsampling.py", "`1` -> `0`", "u0 = min(int(math.floor(r)), size - 1)"):
        "the bound size instead of size - 1: floor(r) <= size - 1 already (as above), so nothing is clamped",
    ("reference/conv_nd.py", "`-` -> `+`", "rank = x.ndim - 2"):
        "a scalar hyperparameter becomes a longer tuple; every use zips it with the spatial axes, which cuts it to "
        "their number (x.ndim - 3 makes it shorter and is killed)",
    ("reference/conv_nd.py", "`2` -> `3`",
     "xp = np.zeros(x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], P)))"):
        "the 2 of n + 2 * p (the slice bounds of this line are killed): p more zeros at the end of xp, beyond the "
        "last cell a window reads, (Y - 1) S + (K - 1) D <= n + 2 P - 1; x is still placed at p and dx cropped there",
    ("reference/conv_nd.py", "`1` -> `0`",
     "return correlate2d_forward(x[:, :, None, :], w[:, :, None, :], b, (1, s), (0, p), (1, d))[:, :, 0, :]"):
        "the height dilation 1 -> 0 on the one-row image (the height stride 1 -> 0 divides by zero and is killed): "
        "the kernel has one row, s = 0, so s D = 0 either way",
    ("reference/conv_nd.py", "`1` -> `0`",
     "dx, dw, db = correlate2d_backward(dy[:, :, None, :], x[:, :, None, :], w[:, :, None, :], b, (1, s), (0, p),"):
        "the height stride 1 -> 0 in the backward on the one-row image: it has one output row, i = 0, so i S = 0 "
        "either way",
    ("reference/conv_nd.py", "`1` -> `0`", "(1, d))"):
        "the height dilation 1 -> 0 in the backward on the one-row image: one kernel row, s = 0, so s D = 0",
    ("reference/conv_transpose.py", "`0` -> `1`",
     "def conv_transpose2d_backward(dy, x, w, b, stride=1, padding=0, output_padding=0, dilation=1):"):
        "the default output_padding (the padding default of the same line is killed): the backward takes the "
        "output's size from dy and never reads output_padding",
    ("reference/conv_transpose.py", "`0` -> `1`",
     "def conv_transpose2d_via_conv_backward(dy, x, w, b, stride=1, padding=0, output_padding=0, dilation=1):"):
        "the default output_padding, never read by this backward either (dy carries the output's size)",
    ("reference/grouped_conv.py", "slice bound `(g + 1) * Kg` + 1", "b[g * Kg:(g + 1) * Kg], stride, padding, dilation)"):
        "one more bias passed to a group's conv2d: correlate2d_forward reads b[k] only for its own maps, k < C_out",
    ("reference/grouped_conv.py", "slice bound `(g + 1) * Kg` + 1",
     "parts = [correlate2d_backward(dy[:, g * Kg:(g + 1) * Kg], x[:, g * Cg:(g + 1) * Cg], w[g * Kg:(g + 1) * Kg],"):
        "dy's slice (w's slice of the same line is killed): one more map of dy passed to a group's conv2d backward, "
        "which reads dy[:, k] only for the maps of its w, k < C_out",
    ("reference/grouped_conv.py", "slice bound `g * Kg` + 1", "b[g * Kg:(g + 1) * Kg], stride, padding, dilation) for g in range(groups)]"):
        "the bias passed to correlate2d_backward, which never reads b (db is the sum of dy)",
    ("reference/grouped_conv.py", "slice bound `(g + 1) * Kg` + 1", "b[g * Kg:(g + 1) * Kg], stride, padding, dilation) for g in range(groups)]"):
        "the bias passed to correlate2d_backward, which never reads b",
    ("reference/grouped_conv.py", "`+` -> `-`", "b[g * Kg:(g + 1) * Kg], stride, padding, dilation) for g in range(groups)]"):
        "the bias passed to correlate2d_backward, which never reads b",
    ("reference/grouped_conv.py", "`1` -> `0`", "b[g * Kg:(g + 1) * Kg], stride, padding, dilation) for g in range(groups)]"):
        "the bias passed to correlate2d_backward, which never reads b",
    ("reference/pooling_modes.py", "`False` -> `True`",
     "def avgpool2d_backward(dy, x, kernel, stride, padding=0, ceil_mode=False, count_include_pad=True):"):
        "the default ceil_mode of the backward, which never reads it: dy carries the window count",
    ("checks/finite_diff.py", "`1` -> `0`",
     'reduction_length: int = 1, kink_reason: str = "", dtype: str = "float64",'):
        "a reduction length of 0 counts as 1 (tolerance.output_noise takes max(K, 1))",
    ("checks/adjoint.py", "`False` -> `True`", "u = direction_for(a, rng, aligned=False)"):
        "the identity <A u, v> = <u, A^T v> holds for every u: an aligned u is as good a direction as a random one",
    ("checks/adjoint.py", "`44400` -> `44401`", "rng = np.random.default_rng(case.seed ^ 0xAD70)"):
        "another seed draws other, equally valid random directions",
    ("checks/finite_diff.py", "`0.0` -> `1.0`", "smallest = min((s for s in sizes.values() if s > 0), default=0.0)"):
        "the default is used only when every sum |g v| is 0, and then every argument keeps its direction (factor 1) "
        "whatever the default is",
    ("checks/finite_diff.py", "`24301` -> `24302`", "rng = np.random.default_rng(seed ^ 0x5EED)"):
        "another seed draws other, equally valid random directions",
    ("checks/adjoint.py", "`42864` -> `42865`",
     "joint = _joint(spec, impl, case, evaluation, names, np.random.default_rng(case.seed ^ 0xA770)) if names else {}"):
        "another seed draws other, equally valid random upstream gradients v for the joint test",
    ("checks/finite_diff.py", "`1` -> `0`", "if len(directions) == 1:"):
        "one argument alone: balancing would scale its direction by smallest / size = 1.0 exactly, the same values "
        "(a copy instead of the array itself)",
    ("checks/finite_diff.py", "`>=` -> `>`",
     "known = next((k for k in self.noises if k[1] == dtype and k[0] >= key[0]), None)"):
        "the same set of steps (>= but not >) is found by the exact lookup right after it: the same cached noise",
    ("checks/adjoint.py", "`0.0` -> `1.0`",
     "return max(float(np.max(a, initial=0.0)), -float(np.min(a, initial=0.0)))"):
        "np.min's initial enters as -initial, which never exceeds np.max's part (at least 0): for 0 and for 1 alike "
        "the result is max(0, max a, -min a)",
    ("checks/probes.py", "`>=` -> `>`", "if a.flags.writeable and all(s >= 0 for s in a.strides):"):
        "a stride of 0 (a broadcast view) then takes the copying path: a tensor of the same values",
    ("checks/probes.py", "`0` -> `1`", "if a.flags.writeable and all(s >= 0 for s in a.strides):"):
        "strides are multiples of the item size (8): s >= 1 is s > 0, and a stride of 0 takes the copying path, "
        "a tensor of the same values",
    ("checks/adjoint.py", "`0.0` -> `1.0`", "return min(steps, default=0.0)"):
        "exact_step's default for a joint direction over no arguments, which is never asked for: adjoint_oracle "
        "calls _joint only `if names`, and the joint stencil has one direction per name",
    ("checks/adjoint.py", "`<=` -> `<`", "if resolution <= tolerance.ADJOINT_JOINT_ACCEPT:"):
        "differs only when an argument's share resolves exactly ADJOINT_JOINT_ACCEPT (tolerance / share equal to "
        "5e-11 to the last bit), which no input reaches",
    ("checks/probes.py", "`3890` -> `3891`", "rng = np.random.default_rng(case.seed ^ 0x0F32)"):
        "another seed draws other, equally valid jittered points for the rounding probe",
    ("checks/oracles.py", "returned value -> `None`", 'return ""'):
        "kink_reason's empty reason is only tested for truth: None and '' are both false",
    ("checks/oracles.py", "`1` -> `0`",
     "out = [compare(label, expected, got, 1) for label, expected, got in pairs]"):
        "the first pass's 1 probe realisation -> 0: both draw the same estimates (range(samples - 1) of jittered "
        "points and PROBE_DY_SHIFTS[:max(samples - 1, 0)] of float64 realisations are empty for 0 and 1), so every "
        "tolerance and verdict is the same; only the cache key differs",
    ("checks/tolerance.py", "`0.0` -> `1.0`",
     "size = max((float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0)) for a in arrays), default=0.0)"):
        "both 0.0s (initial, default) only raise size to 1 where it is below 1, and size enters only through "
        "max(1.0, size)",
    ("checks/tolerance.py", "`>` -> `>=`", "return second_difference > affine_limit(dtype) * max(scale, TINY)"):
        "differs only when a rounding-level second difference equals the bound exactly (no input reaches it)",
    ("checks/tolerance.py", "returned value -> `None`", "return False"):
        "adjoint_step_unresolved's float64 answer: None is false as False is, and every caller (adjoint._joint's "
        "any(), _check_argument's if) only tests it for truth",
}

SCRATCH_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", "reports",
                                        "*.egg-info", "build", "dist", "*.pyc")

# ----------------------------------------------------------------------------------------------------------------
# Mutants
# ----------------------------------------------------------------------------------------------------------------

ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult}
COMPARISON = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Lt: "<", ast.LtE: "<=",
          ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
          ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}
#: called functions swapped for another: (module attribute or builtin) -> replacement
CALLS = {"np.max": "np.min", "np.min": "np.max", "np.sum": "np.mean", "max": "min", "min": "max"}


@dataclass(frozen=True)
class Mutant:
    path: str          # repository-relative
    lineno: int
    col: int
    end_lineno: int
    end_col: int
    replacement: str   # source text replacing [lineno:col, end_lineno:end_col]
    description: str   # what changed, e.g. "`+` -> `-`"
    original: str      # the original source line, stripped

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        # ast columns are UTF-8 byte offsets: convert through each line's bytes
        def position(lineno, col):
            return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())
        start, end = position(self.lineno, self.col), position(self.end_lineno, self.end_col)
        return source[:start] + self.replacement + source[end:]


def _expr(node: ast.AST) -> str:
    return f"({ast.unparse(node)})"


def _plus_one(node: ast.expr) -> ast.expr:
    return ast.BinOp(left=copy.deepcopy(node), op=ast.Add(), right=ast.Constant(1))


class _Collector(ast.NodeVisitor):
    """Walks a module and records (node, replacement text, description) for every mutation operator that applies.
    Skips docstrings, annotations and f-strings (messages; their inner positions are unreliable before 3.12)."""

    def __init__(self):
        self.found: list[tuple[ast.AST, str, str]] = []

    def add(self, node, text, description):
        self.found.append((node, text, description))

    # -- nodes never mutated ------------------------------------------------------------------------------------
    def visit_JoinedStr(self, node):
        return

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.target)
            self.visit(node.value)

    def visit_arg(self, node):  # annotations of parameters
        return

    def _visit_body(self, body):
        for i, stmt in enumerate(body):
            is_docstring = (i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                            and isinstance(stmt.value.value, str))
            if not is_docstring:
                self.visit(stmt)

    def visit_Module(self, node):
        self._visit_body(node.body)

    def visit_ClassDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        self._visit_body(node.body)

    def visit_FunctionDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)  # defaults only (visit_arg skips annotations)
        self._visit_body(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ImportFrom(self, node):
        return

    # -- operators ------------------------------------------------------------------------------------------
    def visit_BinOp(self, node):
        swap = ARITHMETIC.get(type(node.op))
        if swap:
            mutated = copy.copy(node)
            mutated.op = swap()
            self.add(node, _expr(mutated), f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        swap = ARITHMETIC.get(type(node.op))
        if swap:
            mutated = copy.copy(node)
            mutated.op = swap()
            self.add(node, ast.unparse(mutated), f"`{SYMBOL[type(node.op)]}=` -> `{SYMBOL[swap]}=`")
        self.generic_visit(node)

    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            swap = COMPARISON.get(type(op))
            if swap:
                mutated = copy.copy(node)
                mutated.ops = list(node.ops)
                mutated.ops[i] = swap()
                self.add(node, _expr(mutated), f"`{SYMBOL[type(op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        mutated = copy.copy(node)
        mutated.op = swap()
        self.add(node, _expr(mutated), f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self.add(node, _expr(node.operand), "unary `-` removed")
        elif isinstance(node.op, ast.Not):
            self.add(node, _expr(node.operand), "`not` removed")
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            new, what = (not value), f"`{value}` -> `{not value}`"
        elif isinstance(value, int):
            new = {0: 1, 1: 0}.get(value, value + 1)
            what = f"`{value}` -> `{new}`"
        elif isinstance(value, float):
            new = 1.0 if value == 0.0 else value * 2
            what = f"`{value!r}` -> `{new!r}`"
        else:
            return
        self.add(node, _expr(ast.Constant(new)), what)

    # -- conditions, returns, calls, indices ------------------------------------------------------------------
    def _negate(self, test):
        self.add(test, f"(not {_expr(test)})", "condition negated")

    def visit_If(self, node):
        self._negate(node.test)
        self.generic_visit(node)

    def visit_While(self, node):
        self._negate(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self._negate(node.test)
        self.generic_visit(node)

    def visit_Return(self, node):
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node.value, "None", "returned value -> `None`")
        self.generic_visit(node)

    def visit_Call(self, node):
        name = ast.unparse(node.func)
        if name in CALLS:
            self.add(node.func, CALLS[name], f"`{name}` -> `{CALLS[name]}`")
        self.generic_visit(node)

    def visit_Subscript(self, node):
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        for part in parts:
            if isinstance(part, ast.Slice):
                for bound in (part.lower, part.upper):
                    if bound is not None:
                        self.add(bound, _expr(_plus_one(bound)), f"slice bound `{ast.unparse(bound)}` + 1")
            elif not (isinstance(part, ast.Constant) and isinstance(part.value, str)) \
                    and not isinstance(part, ast.Starred):
                self.add(part, _expr(_plus_one(part)), f"index `{ast.unparse(part)}` + 1")
        self.generic_visit(node)


def mutants_of(path: str, root: Path = ROOT, check_syntax: bool = True) -> list[Mutant]:
    """Every mutant of one module, in source order. check_syntax: parse every mutant (a run does; a test that only
    looks the mutants up need not: it is the whole file parsed once per mutant)."""
    source = (root / path).read_text()
    lines = source.splitlines()
    collector = _Collector()
    collector.visit(ast.parse(source))
    out, seen = [], set()
    for node, text, what in collector.found:
        key = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text)
        if key in seen:
            continue
        seen.add(key)
        m = Mutant(path, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text, what,
                   lines[node.lineno - 1].strip())
        if check_syntax:
            ast.parse(m.apply(source))  # every mutant is valid Python (a SyntaxError here is a bug of the mutator)
        out.append(m)
    out.sort(key=lambda m: (m.lineno, m.col))
    return out


def sample(mutants: list[Mutant], n: int | None, seed: int) -> list[Mutant]:
    """n mutants drawn at random (seeded per file, so a file's sample does not depend on the others)."""
    if n is None or n >= len(mutants):
        return mutants
    rng = random.Random(f"{seed}:{mutants[0].path}")
    return sorted(rng.sample(mutants, n), key=lambda m: (m.lineno, m.col))


# ----------------------------------------------------------------------------------------------------------------
# The scratch copy and running a selection
# ----------------------------------------------------------------------------------------------------------------

PACKAGE_DIRS = {"checks": "", "reference": "reference", "examples": "examples"}  # pyproject's package-dir mapping


def make_scratch(root: Path = ROOT) -> Path:
    """A copy of the tree with _pkgroot/cnn_gradcheck assembled as the install would."""
    scratch = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-mutation-"))
    tree = scratch / "tree"
    shutil.copytree(root, tree, ignore=SCRATCH_IGNORE, symlinks=True)
    package = tree / "_pkgroot" / "cnn_gradcheck"
    shutil.copytree(tree / "checks", package, ignore=SCRATCH_IGNORE)
    for folder in ("reference", "examples"):
        shutil.copytree(tree / folder, package / folder, ignore=SCRATCH_IGNORE)
    return tree


def installed_path(tree: Path, path: str) -> Path:
    """Where the scratch copy's package keeps a repository file (checks/x.py -> _pkgroot/cnn_gradcheck/x.py)."""
    top, rest = path.split("/", 1)
    if top not in PACKAGE_DIRS:
        raise ValueError(f"{path}: only files of checks/, reference/ and examples/ can be mutated")
    return tree / "_pkgroot" / "cnn_gradcheck" / PACKAGE_DIRS[top] / rest


ENV = {"PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1", "CNN_GRADCHECK_PROFILE": "ci"}
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]


def _pythonpath(tree: Path) -> list[str]:
    return [str(tree / "_pkgroot"), str(tree)]


def prewarm() -> None:
    """Import the heavy dependencies once in the parent (fork isolation); never the harness itself."""
    os.environ.update(ENV)
    sys.dont_write_bytecode = True
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401
    import _pytest.python  # noqa: F401
    assert not any(name == "cnn_gradcheck" or name.startswith("cnn_gradcheck.") for name in sys.modules)


class Run:
    """One pytest run of a selection on a scratch tree, in its own session (killed as a group on timeout)."""

    def __init__(self, tree: Path, selection: list[str], timeout: float, isolation: str):
        self.tree, self.start, self.timeout = tree, time.monotonic(), timeout
        self.proc: subprocess.Popen | None = None  # kept: a collected Popen may reap the child behind our back
        log = tree / "_mutation.log"
        if isolation == "subprocess":
            env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join(
                _pythonpath(tree) + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
            with open(log, "w") as out:
                self.proc = subprocess.Popen([sys.executable, "-m", "pytest", *PYTEST_ARGS, *selection], cwd=tree,
                                             env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.pid = self.proc.pid
            return
        self.pid = os.fork()
        if self.pid == 0:  # child: pytest on the scratch copy; the harness is imported here, fresh
            code = 3
            try:
                os.setsid()
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(tree)
                sys.path[:0] = _pythonpath(tree)
                import pytest
                code = int(pytest.main([*PYTEST_ARGS, *selection]))
            finally:
                os._exit(code)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start

    def poll(self) -> str | None:
        """The outcome once the run ended (or was killed for running past its timeout), else None."""
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                return _outcome(rc)
        else:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return _outcome(os.waitstatus_to_exitcode(status))
        if self.seconds > self.timeout:
            self.kill()
            return "timeout"
        return None

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc is not None:
            self.proc.wait()
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def wait(self) -> str:
        try:
            while (outcome := self.poll()) is None:
                time.sleep(0.02)
        except BaseException:  # Ctrl-C: the run goes with us
            self.kill()
            raise
        return outcome


def _outcome(rc: int) -> str:
    """pytest's exit code: 0 all passed (survived), 1 a test failed, 2 interrupted (a collection error: the
    mutant broke an import): killed; anything else is a problem of the selection, not a verdict."""
    return {0: "survived", 1: "killed", 2: "killed"}.get(rc, f"error (exit code {rc})")


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Result:
    mutant: Mutant
    outcome: str       # killed | survived | timeout | error (...)
    seconds: float

    @property
    def equivalent(self) -> bool:
        """A survivor that docs/mutation.md shows cannot change behaviour."""
        m = self.mutant
        return self.outcome == "survived" and (m.path, m.description, m.original) in EQUIVALENT


def run_mutants(mutants: list[Mutant], trees: list[Path], isolation: str, timeouts: dict[str, float],
                on_result) -> list[Result]:
    """Up to len(trees) mutants at a time, each in its own scratch tree; every mutated file is restored, also
    when interrupted (then the runs in flight are killed)."""
    pending, free = list(mutants), list(trees)
    running: dict[Path, tuple[Mutant, Run, str]] = {}  # tree -> (mutant, run, original text)
    results: list[Result] = []
    try:
        while pending or running:
            while pending and free:
                m, tree = pending.pop(0), free.pop()
                target = installed_path(tree, m.path)
                original = target.read_text()
                target.write_text(m.apply(original))
                running[tree] = (m, None, original)
                running[tree] = (m, Run(tree, SELECTIONS[m.path], timeouts[m.path], isolation), original)
            for tree, (m, run, original) in list(running.items()):
                outcome = run.poll()
                if outcome is None:
                    continue
                installed_path(tree, m.path).write_text(original)
                del running[tree]
                free.append(tree)
                results.append(Result(m, outcome, run.seconds))
                on_result(results[-1])
            time.sleep(0.02)
    finally:
        for tree, (m, run, original) in running.items():
            if run is not None:
                run.kill()
            installed_path(tree, m.path).write_text(original)
    return results


def score(results: list[Result]) -> tuple[int, int, float]:
    """(killed, mutants that could be killed, percent): equivalent mutants and errors are left out."""
    killed = sum(r.outcome in ("killed", "timeout") for r in results)
    killable = sum(not r.outcome.startswith("error") and not r.equivalent for r in results)
    return killed, killable, 100.0 * killed / killable if killable else float("nan")


def score_lines(results: list[Result]) -> list[str]:
    lines = []
    for path in [*dict.fromkeys(r.mutant.path for r in results), "total"]:
        rs = [r for r in results if path in ("total", r.mutant.path)]
        killed, killable, pct = score(rs)
        notes = [f"{n} {what}" for n, what in ((sum(r.outcome == "timeout" for r in rs), "by timeout"),
                                                (sum(r.equivalent for r in rs), "equivalent"),
                                                (sum(r.outcome.startswith("error") for r in rs), "errors")) if n]
        lines.append(f"{path:32s} {killed:4d}/{killable:<4d} killed  {pct:5.1f}%"
                     + (f"  (of {len(rs)} mutants; {', '.join(notes)})" if notes else ""))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", default=",".join(DEFAULT_MODULES),
                        help="comma-separated repository paths (default: the modules of `make mutation`)")
    parser.add_argument("--sample", type=int, default=None, help="mutants per file, drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (default 1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per mutant (default: 3 x the unmutated selection's time + 10)")
    parser.add_argument("--isolation", choices=("fork", "subprocess"), default="fork" if hasattr(os, "fork")
                        else "subprocess", help="fork a pre-warmed process per mutant (default) or start a fresh one")
    parser.add_argument("--only", default="", help="comma-separated PATH:LINE; only the mutants on those lines")
    parser.add_argument("--rerun", default="", help="a --json file of an earlier run: run its survivors again")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--json", default="", help="write every result to this file")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 if the total score is below (percent)")
    args = parser.parse_args(argv)

    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in modules if m not in SELECTIONS]
    if unknown:
        parser.error(f"no test selection for {', '.join(unknown)}: add it to SELECTIONS in tools/mutation.py")
    only = {o.strip() for o in args.only.split(",") if o.strip()}
    mutants = []
    for path in modules:
        ms = mutants_of(path)
        if only:
            ms = [m for m in ms if m.where in only]
        mutants += sample(ms, args.sample, args.seed) if ms else []
    if args.rerun:  # the survivors of an earlier run, if the module is unchanged (else its mutants moved)
        earlier = [Mutant(**{k: v for k, v in r.items() if k in Mutant.__dataclass_fields__})
                   for r in json.loads(Path(args.rerun).read_text()) if r["outcome"] == "survived"]
        current = {path: set(mutants_of(path)) for path in {m.path for m in earlier}}
        mutants = [m for m in earlier if m in current[m.path]]
        if len(mutants) < len(earlier):
            print(f"{len(earlier) - len(mutants)} survivors no longer apply (their module changed)")
    if args.list:
        for m in mutants:
            print(f"{m.where}:{m.col}: {m.description:32s} | {m.original}")
        print(f"{len(mutants)} mutants")
        return 0

    if args.isolation == "fork":
        prewarm()
    trees = [make_scratch() for _ in range(max(1, args.jobs))]
    results: list[Result] = []
    try:
        # the unmutated copy must pass each selection, or every mutant would count as killed
        timeouts = {}
        for path in dict.fromkeys(m.path for m in mutants):
            run = Run(trees[0], SELECTIONS[path], 600, args.isolation)
            outcome, seconds = run.wait(), run.seconds
            if outcome != "survived":
                print(f"{path}: the unmutated code fails its selection ({outcome}):\n"
                      + (trees[0] / "_mutation.log").read_text()[-3000:])
                return 2
            timeouts[path] = args.timeout or 3 * seconds + 10
            print(f"{path}: {sum(m.path == path for m in mutants)} mutants, selection runs in {seconds:.1f} s "
                  f"(timeout {timeouts[path]:.0f} s)", flush=True)

        def report(r: Result):
            results.append(r)
            print({"killed": ".", "timeout": "T", "survived": "S"}.get(r.outcome, "E"), end="", flush=True)

        run_mutants(mutants, trees, args.isolation, timeouts, report)
        print()
    except KeyboardInterrupt:
        print("\ninterrupted: the scores of the mutants run so far")
    finally:
        for tree in trees:
            shutil.rmtree(tree.parent, ignore_errors=True)

    print(f"\nmutation score ({datetime.date.today()}, sample {args.sample or 'all'} per file, seed {args.seed}):")
    for line in score_lines(results):
        print("  " + line)
    for title, rs in (("survivors", [r for r in results if r.outcome == "survived" and not r.equivalent]),
                      ("equivalent survivors", [r for r in results if r.equivalent])):
        if rs:
            print(f"\n{title} (file:line, mutation, original line):")
            for r in rs:
                print(f"  {r.mutant.where}: {r.mutant.description} | {r.mutant.original}")
    errors = [r for r in results if r.outcome.startswith("error")]
    for r in errors:
        print(f"  {r.mutant.where}: {r.mutant.description}: {r.outcome}")
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(r.mutant), "outcome": r.outcome, "seconds": r.seconds,
                                                "equivalent": r.equivalent}
                                               for r in results], indent=1))
    killed, killable, pct = score(results)
    return 1 if killable and pct < args.fail_under else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before any mutant ran (while importing); nothing was written yet
        sys.exit(130)
