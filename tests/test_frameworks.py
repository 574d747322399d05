"""Arrays of other frameworks are converted (and the summary says so once); a type without a known conversion is
named with the conversion to add; JAX functions are checked through jax_function (forward through JAX, gradients by
jax.vjp, 64-bit for the check only)."""
import numpy as np
import pytest
from hypothesis import settings

from cnn_gradcheck import plugins as P
from cnn_gradcheck.plugins import PluginCheckFailure, check_plugin
from cnn_gradcheck.registry import all_specs

FEW = settings(max_examples=5, deadline=None, derandomize=True, database=None)
RELU = all_specs()["relu"].reference


class ArrayProtocol:
    """An array type of another library that offers numpy's protocol only."""

    def __init__(self, a):
        self._a = np.array(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class DLPackOnly:
    """An array type that offers the DLPack protocol only."""

    def __init__(self, a):
        self._a = np.ascontiguousarray(a)

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class NumpyMethod:
    """An array type with a .numpy() method (TensorFlow's eager tensors)."""

    def __init__(self, a):
        self._a = np.array(a)

    def numpy(self):
        return self._a


class Opaque:
    """An array type the harness cannot read."""

    def __init__(self, a):
        self.data = list(np.ravel(a))


@pytest.mark.parametrize("wrap, via", [(ArrayProtocol, "via __array__"), (DLPackOnly, "via __dlpack__"),
                                       (NumpyMethod, "via .numpy()")])
def test_foreign_arrays_are_converted_and_the_summary_says_how(wrap, via):
    plugin = P.plugin(lambda x: wrap(RELU.forward(x)), lambda dy, x: wrap(RELU.backward(dy, x)[0]))
    summary = check_plugin("relu", plugin, settings=FEW).summary()
    line = f"  arrays converted to numpy: test_frameworks.{wrap.__name__} {via}"
    assert summary.splitlines().count(line) == 1, summary


def test_a_foreign_array_is_still_checked_for_its_values():
    plugin = P.plugin(lambda x: ArrayProtocol(RELU.forward(x)), lambda dy, x: ArrayProtocol(-RELU.backward(dy, x)[0]))
    with pytest.raises(PluginCheckFailure, match="relu: dx wrong in"):
        check_plugin("relu", plugin, settings=FEW)


def test_an_unreadable_type_is_named_with_the_conversion_to_add():
    with pytest.raises(PluginCheckFailure) as failure:
        check_plugin("relu", P.plugin(lambda x: Opaque(x), lambda dy, x: (dy,)), settings=FEW)
    message = str(failure.value)
    assert "relu: wrong output type in" in message
    assert "the forward output y is a test_frameworks.Opaque, which the harness cannot read" in message
    assert "give the type __array__ (numpy's protocol), __dlpack__ or a .numpy() method" in message


# ------------------------------------------------------------------------------------------------- JAX

def _jax():
    return pytest.importorskip("jax", reason="JAX is an optional extra (pip install '.[jax]'); the JAX adapter's "
                                             "tests need it")


def test_jax_relu_passes_and_64_bit_is_restored_after_the_check():
    jax = _jax()
    before = jax.config.jax_enable_x64
    report = check_plugin("relu", P.jax_function(jax.nn.relu), settings=FEW)
    assert report.cases == FEW.max_examples and report.precision == "float64"
    assert {"pytorch", "reference", "finite differences", "adjoint"} <= report.oracles_seen
    assert jax.config.jax_enable_x64 == before
    assert "(jax float64; input layouts: contiguous" in report.summary()


def _lax_conv(x, w, b, stride, padding, dilation):
    from jax import lax
    y = lax.conv_general_dilated(x, w, stride, [(p, p) for p in padding], rhs_dilation=dilation,
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def test_jax_lax_conv_passes_every_oracle():
    _jax()
    report = check_plugin("conv2d", P.jax_function(_lax_conv), settings=FEW)
    assert {"pytorch", "reference", "finite differences", "adjoint", "sparse matrix"} <= report.oracles_seen


def test_a_wrong_jax_function_is_caught():
    jax = _jax()
    leaky = P.jax_function(lambda x: jax.numpy.where(x > 0, x, 0.01 * x), name="leaky relu")
    with pytest.raises(PluginCheckFailure, match="relu: forward, dx wrong in leaky relu"):
        check_plugin("relu", leaky, settings=FEW)


def test_jax_in_float32_gets_float32_tolerances_and_a_note():
    jax = _jax()
    with pytest.warns(P.PrecisionNote, match="returns float32 results"):
        report = check_plugin("relu", P.jax_function(jax.nn.relu, dtype="float32"), settings=FEW)
    assert report.precision == "float32"


def test_the_three_line_recipe_for_any_autodiff_framework():
    """docs/plugins.md's recipe, with JAX standing in for any framework: a forward and a vjp through plugin()."""
    jax = _jax()
    f, jnp = jax.nn.relu, jax.numpy
    fwd = lambda *a, **h: f(*map(jnp.asarray, a), **h)  # noqa: E731
    vjp = lambda dy, *a, **h: jax.vjp(lambda *p: f(*p, **h), *map(jnp.asarray, a))[1](jnp.asarray(dy))  # noqa: E731
    with _x64(jax):  # the recipe's framework computes in float64 here (in float32 it gets a precision note)
        report = check_plugin("relu", P.plugin(fwd, vjp), settings=FEW)
    assert report.precision == "float64" and "via __array__" in report.summary()


class _x64:
    """64-bit JAX for the block, the previous setting restored after it."""

    def __init__(self, jax):
        self.jax = jax

    def __enter__(self):
        self.saved = self.jax.config.jax_enable_x64
        self.jax.config.update("jax_enable_x64", True)

    def __exit__(self, *exc):
        self.jax.config.update("jax_enable_x64", self.saved)
