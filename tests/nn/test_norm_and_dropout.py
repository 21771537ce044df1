"""Train/eval semantics of dropout, noise and the normalization layers, and their identities."""

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.errors import ConfigError
from nnctl.registry import LAYERS
from nnctl.session import describe_config
from tests.nn.test_gradients import make_layer


@pytest.mark.parametrize("name, params", [("dropout", {"rate": 0.5}), ("gaussian_noise", {"std": 1.0})])
def test_identity_in_eval_random_in_training(name, params):
    layer = make_layer(name, params, (1000,), np.float32)
    x = np.ones((4, 1000), dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and not np.array_equal(y, x)
    assert abs(y.mean() - 1) < 0.05  # inverted dropout / zero-mean noise keep the expectation


def test_dropout_drops_the_rate_and_backward_uses_the_same_mask():
    layer = make_layer("dropout", {"rate": 0.25}, (10000,))
    x = np.ones((2, 10000))
    y = layer.forward(x, training=True)
    assert np.mean(y == 0) == pytest.approx(0.25, abs=0.02)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx, y)


def test_batch_norm_running_statistics_converge_and_are_used_in_eval():
    rng = np.random.default_rng(0)
    layer = make_layer("batch_norm", {"momentum": 0.9}, (3,))
    mean, std = np.array([3.0, -1.0, 0.0]), np.array([2.0, 0.5, 1.0])
    for _ in range(300):
        layer.forward(rng.standard_normal((64, 3)) * std + mean, training=True)
    np.testing.assert_allclose(layer.buffers["running_mean"], mean, atol=0.15)
    np.testing.assert_allclose(layer.buffers["running_var"], std**2, rtol=0.15)
    x = np.array([[3.0, -1.0, 0.0]])
    np.testing.assert_allclose(layer.forward(x, training=False), 0, atol=0.1)  # eval: running stats


def test_batch_norm_on_images_normalizes_per_channel():
    rng = np.random.default_rng(1)
    layer = make_layer("batch_norm", {}, (2, 4, 4))
    x = rng.standard_normal((8, 2, 4, 4)) * np.array([1.0, 5.0])[None, :, None, None] + 3
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 3)])
def test_batch_renorm_with_no_correction_equals_batch_norm(shape):
    rng = np.random.default_rng(2)
    bn = make_layer("batch_norm", {"momentum": 0.8}, shape)
    brn = make_layer("batch_renorm", {"momentum": 0.8, "r_max": 1.0, "d_max": 0.0, "warmup_steps": 10}, shape)
    for _ in range(5):
        x = rng.standard_normal((6,) + shape) * 3 + 1
        dy = rng.standard_normal((6,) + shape)
        np.testing.assert_allclose(brn.forward(x, training=True), bn.forward(x, training=True), atol=1e-12)
        np.testing.assert_allclose(brn.backward(dy), bn.backward(dy), atol=1e-12)
        for key in ("gamma", "beta"):
            np.testing.assert_allclose(brn.grads[key], bn.grads[key], atol=1e-12)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(brn.buffers[key], bn.buffers[key], atol=1e-12)
    x = rng.standard_normal((2,) + shape)
    np.testing.assert_allclose(brn.forward(x, training=False), bn.forward(x, training=False), atol=1e-12)


def test_batch_renorm_warms_up_from_batch_norm():
    layer = make_layer("batch_renorm", {"r_max": 3.0, "d_max": 5.0, "warmup_steps": 10}, (4,))
    assert layer.limits() == (1.0, 0.0)
    for _ in range(5):
        layer.forward(np.random.default_rng(0).standard_normal((8, 4)), training=True)
    assert layer.limits() == pytest.approx((2.0, 2.5))
    for _ in range(20):
        layer.forward(np.random.default_rng(0).standard_normal((8, 4)), training=True)
    assert layer.limits() == (3.0, 5.0)


@pytest.mark.parametrize("shape", [(6,), (6, 5), (6, 3, 3)])
def test_group_norm_with_one_group_is_layer_norm(shape):
    x = np.random.default_rng(3).standard_normal((4,) + shape) * 2 + 1
    gn = make_layer("group_norm", {"groups": 1}, shape)
    ln = make_layer("layer_norm", {}, shape)
    np.testing.assert_allclose(gn.forward(x, training=True), ln.forward(x, training=True), atol=1e-12)
    y = ln.forward(x, training=False)
    np.testing.assert_allclose(y.reshape(4, -1).mean(axis=1), 0, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5), (6, 3, 3)])
def test_group_norm_with_one_group_per_channel_is_instance_norm(shape):
    x = np.random.default_rng(4).standard_normal((4,) + shape) * 2 + 1
    gn = make_layer("group_norm", {"groups": 6}, shape)
    inn = make_layer("instance_norm", {}, shape)
    np.testing.assert_allclose(gn.forward(x, training=True), inn.forward(x, training=True), atol=1e-12)
    y = inn.forward(x, training=False).reshape(4, 6, -1)
    np.testing.assert_allclose(y.mean(axis=2), 0, atol=1e-12)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        ({"type": "group_norm", "groups": 4}, (6,), "does not divide the 6 channels"),
        ({"type": "instance_norm"}, (6,), "normalizes inputs of shape (C, L), (C, H, W)"),
        ({"type": "batch_norm"}, (2, 2, 2, 2), "gets samples of shape (2, 2, 2, 2)"),
    ],
)
def test_bad_shapes_are_config_errors(layer, shape, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LAYERS.create(layer).build(shape, np.random.default_rng(0), np.float32)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.layers[0].units=6", None),
        ("model.layers[1].rate=1.0", "less than 1"),
        ("model.layers[1].rate=-0.1", "greater than or equal to 0"),
        ("regularizers=[{type: l2, rate: -1}]", "greater than or equal to 0"),
        ("model.layers[2].groups=3", "does not divide"),
    ],
)
def test_bad_values_fail_at_validation(write_yaml, override, message):
    path = write_yaml(
        """
data: {source: {type: xor, samples: 60}}
model:
  layers:
    - {type: dense, units: 4}
    - {type: dropout, rate: 0.2}
    - {type: group_norm, groups: 2}
    - {type: dense, units: 2}
loss: cross_entropy
"""
    )
    if message is None:
        assert "config OK" in describe_config(path, [override])
        return
    with pytest.raises(ConfigError, match=message):
        describe_config(path, [override])  # what `nnctl validate` runs: no training needed


def test_per_layer_and_global_regularizers_validate(write_yaml):
    path = write_yaml(
        """
data: {source: {type: xor, samples: 60}}
model:
  layers:
    - {type: dense, units: 4, regularizers: [{type: l1, rate: 0.01}, {type: max_norm, max: 2}]}
    - {type: dense, units: 2}
loss: cross_entropy
regularizers: [{type: l2, rate: 0.001}]
"""
    )
    cfg = load_config(path)
    assert cfg.model.layers[0].regularizers[1].type == "max_norm" and cfg.regularizers[0].rate == 0.001
