"""Convolution, pooling, reshape and residual layers beyond the shared gradient harness."""

import numpy as np
import pytest

from nnctl.errors import ConfigError
from nnctl.nn.gradcheck import TOLERANCE, check_network, numeric_grad, rel_error
from nnctl.nn.network import Network
from nnctl.registry import LAYERS, LOSSES


def build(spec, shape, dtype=np.float64, seed=0):
    layer = LAYERS.create(spec)
    layer.build(shape, np.random.default_rng(seed), dtype)
    return layer


def naive_conv2d(x, weight, bias, stride, pad, dilation):
    """Direct convolution: loops over samples, filters and output positions; weight (kh, kw, C, F)."""
    n, c, h, w = x.shape
    kh, kw, _, f = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    ho = (xp.shape[2] - dilation * (kh - 1) - 1) // stride + 1
    wo = (xp.shape[3] - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, f, ho, wo))
    for s in range(n):
        for k in range(f):
            for i in range(ho):
                for j in range(wo):
                    total = bias[k]
                    for a in range(kh):
                        for b in range(kw):
                            for ch in range(c):
                                total += (
                                    xp[s, ch, i * stride + a * dilation, j * stride + b * dilation]
                                    * weight[a, b, ch, k]
                                )
                    y[s, k, i, j] = total
    return y


@pytest.mark.parametrize(
    "params, pad",
    [
        ({"kernel_size": 3}, (0, 0, 0, 0)),
        ({"kernel_size": 3, "padding": "same"}, (1, 1, 1, 1)),
        ({"kernel_size": 2, "padding": "same"}, (0, 1, 0, 1)),  # even kernel: the extra zero goes after
        ({"kernel_size": 3, "stride": 2, "padding": 1}, (1, 1, 1, 1)),
        ({"kernel_size": 3, "dilation": 2, "padding": 2}, (2, 2, 2, 2)),
    ],
    ids=["valid", "same", "same-even", "stride2-pad1", "dilation2"],
)
def test_conv2d_equals_naive_direct_convolution(params, pad):
    rng = np.random.default_rng(1)
    layer = build({"type": "conv2d", "filters": 3, **params}, (2, 7, 6))
    layer.params["bias"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 6))
    expected = naive_conv2d(
        x, layer.params["weight"], layer.params["bias"], params.get("stride", 1), pad, params.get("dilation", 1)
    )
    y = layer.forward(x, training=False)
    assert y.shape == expected.shape == (2,) + layer.output_shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv1d_equals_conv2d_on_a_one_pixel_high_image():
    rng = np.random.default_rng(2)
    c1 = build({"type": "conv1d", "filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"}, (3, 9))
    c2 = build({"type": "conv2d", "filters": 2, "kernel_size": [1, 3], "stride": [1, 2], "padding": "same"}, (3, 1, 9))
    c2.params["weight"][...] = c1.params["weight"][None]
    x = rng.standard_normal((4, 3, 9))
    np.testing.assert_allclose(c1.forward(x, training=False), c2.forward(x[:, :, None], training=False)[:, :, 0])


def test_pooling_values():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(
        build({"type": "max_pool2d"}, (1, 4, 4)).forward(x, training=False)[0, 0], [[5, 7], [13, 15]]
    )
    np.testing.assert_array_equal(
        build({"type": "avg_pool2d"}, (1, 4, 4)).forward(x, training=False)[0, 0], [[2.5, 4.5], [10.5, 12.5]]
    )
    np.testing.assert_array_equal(build({"type": "global_avg_pool2d"}, (1, 4, 4)).forward(x, training=False), [[7.5]])
    s = np.array([[[3.0, 1.0, 4.0, 1.0, 5.0]]])
    np.testing.assert_array_equal(build({"type": "max_pool1d"}, (1, 5)).forward(s, training=False), [[[3.0, 4.0]]])


def test_max_pool_sends_the_gradient_to_the_first_maximum_on_ties():
    layer = build({"type": "max_pool2d"}, (1, 2, 2))
    layer.forward(np.zeros((1, 1, 2, 2)), training=True)  # all four tie (as after a ReLU)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, 0], [[1, 0], [0, 0]])


def test_flatten_is_channel_first_order_after_a_conv():
    rng = np.random.default_rng(3)
    conv = build({"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"}, (1, 5, 5))
    y = conv.forward(rng.standard_normal((2, 1, 5, 5)), training=False)
    flat = build({"type": "flatten"}, (4, 5, 5)).forward(y, training=False)
    np.testing.assert_array_equal(flat, np.ascontiguousarray(y).reshape(2, -1))


def test_residual_inner_parameters_have_correct_gradients():
    """The harness checks the block's input gradient; here every parameter inside it, nesting included."""
    rng = np.random.default_rng(4)
    spec = {
        "type": "residual",
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3, "stride": 2, "padding": "same", "activation": "tanh"},
            {"type": "residual", "layers": [{"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"}]},
        ],
    }
    block = build(spec, (2, 6, 6))
    from nnctl.nn.network import walk

    x = rng.standard_normal((3, 2, 6, 6))
    y = block.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    block.backward(dy)
    for _, sub in walk(block, ""):
        for key, param in sub.params.items():
            analytic = sub.grads[key].copy()

            def objective():
                return float(np.sum(block.forward(x, training=False) * dy))

            numeric = numeric_grad(objective, param, np.arange(param.size))
            assert rel_error(analytic.reshape(-1), numeric) < TOLERANCE, (sub.describe(), key)


def test_residual_in_a_network_has_dotted_names_and_checks():
    rng = np.random.default_rng(5)
    layers = [
        LAYERS.create({"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"}),
        LAYERS.create(
            {
                "type": "residual",
                "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "tanh"}],
            }
        ),
        LAYERS.create({"type": "global_avg_pool2d"}),
        LAYERS.create({"type": "dense", "units": 3}),
    ]
    net = Network(layers).build((1, 5, 5), rng, np.float64)
    assert {"1.layers.0.weight", "1.layers.0.bias", "1.projection.weight"} <= set(net.param_slices)
    assert net.summary_rows()[2][3] == layers[1].param_count() > 0
    assert layers[1].describe() == "residual[conv2d(4, 3x3, same, tanh) (4, 5, 5)] + conv2d(4, 1x1, valid) (4, 5, 5)"
    loss = LOSSES.create({"type": "cross_entropy"})
    x = rng.standard_normal((4, 1, 5, 5))
    assert check_network(net, loss, x, rng.integers(0, 3, 4), rng) < TOLERANCE


def test_kernel_larger_than_padded_input_is_a_config_error():
    with pytest.raises(ConfigError, match="larger than its padded input"):
        build({"type": "conv2d", "filters": 2, "kernel_size": 5}, (1, 4, 4))
    with pytest.raises(ConfigError, match="larger than its padded input"):
        build({"type": "conv1d", "filters": 2, "kernel_size": 3, "dilation": 3}, (1, 6))
    build({"type": "conv2d", "filters": 2, "kernel_size": 5, "padding": "same"}, (1, 4, 4))  # padded: fine


def test_conv_on_flat_input_and_dense_on_maps_say_what_to_add():
    with pytest.raises(ConfigError, match="expects inputs \\(channels, height, width\\).*reshape"):
        build({"type": "conv2d", "filters": 2, "kernel_size": 3}, (64,))
    with pytest.raises(ConfigError, match="add a `flatten` layer"):
        build({"type": "dense", "units": 3}, (4, 2, 2))


def test_residual_shapes_are_checked_at_build():
    with pytest.raises(ConfigError, match="residual connection needs the same shape"):
        build({"type": "residual", "layers": [{"type": "flatten"}]}, (2, 3, 3))
    with pytest.raises(ConfigError, match="residual layers\\[0\\]"):
        build({"type": "residual", "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 9}]}, (1, 4, 4))


def test_residual_inner_layer_typos_are_config_errors(write_yaml, minimal_text):
    from nnctl.config import load_config

    text = minimal_text.replace(
        "    - {type: dense, units: 4, activation: tanh}\n",
        "    - {type: residual, layers: [{type: dense, unts: 2}]}\n",
    )
    with pytest.raises(ConfigError, match="layers\\[0\\].unts"):
        load_config(write_yaml(text))
    text = minimal_text.replace(
        "    - {type: dense, units: 4, activation: tanh}\n",
        "    - {type: residual, layers: [{type: dnse, units: 2}]}\n",
    )
    with pytest.raises(ConfigError, match="Did you mean 'dense'"):
        load_config(write_yaml(text))


@pytest.mark.parametrize(
    "bad", [{"kernel_size": 0}, {"kernel_size": 3, "stride": 0}, {"kernel_size": 3, "padding": -1}]
)
def test_bad_conv_params_are_rejected(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        LAYERS.get("conv2d").spec.model_validate({"type": "conv2d", "filters": 2, **bad})


def test_float32_end_to_end_through_a_small_cnn():
    rng = np.random.default_rng(6)
    layers = [
        LAYERS.create({"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        LAYERS.create({"type": "max_pool2d"}),
        LAYERS.create({"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        LAYERS.create({"type": "avg_pool2d"}),
        LAYERS.create({"type": "flatten"}),
        LAYERS.create({"type": "dense", "units": 3}),
    ]
    net = Network(layers).build((1, 8, 8), rng, np.float32)
    out = net.forward(rng.standard_normal((5, 1, 8, 8)).astype(np.float32), training=True)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    net.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert net.flat_grads.dtype == np.float32 and np.any(net.flat_grads != 0)
