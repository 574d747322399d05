"""The validity rules of the newer ops' domains (docs/ops/*.md): generated configurations obey them, the references
refuse what lies outside, and max pooling's dilation leaves plug-ins written without it working."""
import numpy as np
import pytest
from hypothesis import given, settings

from cnn_gradcheck.plugins import check_plugin
from cnn_gradcheck.reference import conv_transpose, pooling, pooling_modes
from cnn_gradcheck.registry import get_spec
from cnn_gradcheck.spec import Implementation

MANY = settings(max_examples=300, deadline=None, database=None, derandomize=True)


def _every_window_reads_input(c, reads):
    return all(reads(c[a.upper()], c[f"k{a}"], c[f"s{a}"], c[f"p{a}"], c[f"dil{a}"]) for a in "hw")


RULES = {
    # a dilated window with padding can skip the whole input: undefined (torch 2.13 misroutes its gradient)
    "maxpool2d": lambda c: _every_window_reads_input(c, pooling.every_window_reads_input),
    "maxpool2d_ceil": lambda c: _every_window_reads_input(
        c, lambda *axis: pooling_modes.windows_read_input(*axis, ceil_mode=True)),
    "batchnorm2d": lambda c: c["N"] * c["H"] * c["W"] >= 2,  # torch refuses one value per channel
    "layernorm": lambda c: c["K"] >= 1,  # one value per row allowed (y = beta; docs/ops/layernorm.md)
    "layernorm2d": lambda c: int(np.prod((c["C"], c["H"], c["W"])[3 - c["dims"]:])) >= 1,
    "conv2d_padded": lambda c: c["padding_mode"] != "reflect" or (c["ph"] < c["H"] and c["pw"] < c["W"]),
    "conv_transpose2d": lambda c: all(conv_transpose.out_size(c[a.upper()], c[f"k{a}"], c[f"s{a}"], c[f"p{a}"],
                                                              c[f"o{a}"], c[f"dil{a}"]) >= 1
                                      and c[f"o{a}"] < max(c[f"s{a}"], c[f"dil{a}"]) for a in "hw"),
    "grouped_conv2d": lambda c: c["C_in"] % c["groups"] == 0 and c["C_out"] % c["groups"] == 0,
    "bce_with_logits": lambda c: c["targets"] == "soft" or c["scale"] == 1.0,
    "dropout": lambda c: c["p"] < 1,
}


@pytest.mark.parametrize("op", sorted(RULES))
def test_generated_configurations_obey_the_ops_validity_rules(op):
    rule = RULES[op]

    @MANY
    @given(get_spec(op).configs())
    def obeys(config):
        assert rule(config), config

    obeys()


def test_max_pooling_refuses_a_window_that_reads_only_padding():
    """x (2, 1, 1, 1), kernel (2, 1), padding (1, 0), dilation (2, 1): the one window reads padded rows 0 and 2."""
    with pytest.raises(ValueError, match="along h reads only padding"):
        pooling.maxpool2d_forward(np.zeros((2, 1, 1, 1)), (2, 1), (1, 1), (1, 0), (2, 1))
    with pytest.raises(ValueError, match="reads no real cell"):
        pooling_modes.maxpool2d_ceil_forward(np.zeros((2, 1, 1, 1)), (2, 1), (1, 1), (1, 0), (2, 1))


def test_a_max_pooling_plugin_without_dilation_still_checks_undilated_configurations():
    """dilation is passed only where it is not 1: a plug-in written before it runs with limits={"dilation": 1}."""
    def forward(x, kernel, stride, padding):
        return pooling.maxpool2d_forward(x, kernel, stride, padding)

    def backward(dy, x, kernel, stride, padding):
        return pooling.maxpool2d_backward(dy, x, kernel, stride, padding)

    report = check_plugin("maxpool2d", Implementation("maxpool without dilation", forward, backward),
                          limits={"dilation": 1},
                          settings=settings(max_examples=5, deadline=None, database=None, derandomize=True))
    assert report.cases >= 5
