"""One gradient-check harness for every registered layer and loss (float64, random upstream gradient)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.nn.gradcheck import TOLERANCE, check_layer, check_loss
from nnctl.registry import LAYERS, LOSSES

# The test plugin's layer is registered here under the same module name a config's `plugins:` uses,
# so the harness covers it whatever order the tests run in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import nnctl_test_plugin  # noqa: F401

# name -> list of (constructor params, input shape without batch axis). A new layer cannot ship
# without a case here: test_every_layer_has_a_case fails.
LAYER_CASES = {
    "dense": [
        ({"units": 3}, (5,)),
        ({"units": 4, "activation": "tanh"}, (3,)),
        ({"units": 2, "use_bias": False, "activation": "softmax"}, (4,)),
    ],
    "linear": [({}, (5,))],
    "sigmoid": [({}, (5,))],
    "tanh": [({}, (5,))],
    "relu": [({}, (6,))],
    "leaky_relu": [({"alpha": 0.1}, (6,))],
    "elu": [({"alpha": 0.7}, (6,))],
    "gelu": [({}, (6,))],
    "softmax": [({}, (4,))],
    "scaled_tanh": [({"init_scale": 1.5}, (5,))],  # tests/plugins/nnctl_test_plugin.py
}

LOSS_CASES = {
    "mse": [{}],
    "mae": [{}],
    "huber": [{"delta": 0.5}],
    "binary_cross_entropy": [{}],
    "cross_entropy": [{}],
}


def _layer_cases():
    for name, cases in LAYER_CASES.items():
        for i, (params, shape) in enumerate(cases):
            yield pytest.param(name, params, shape, id=f"{name}-{i}")


def test_every_layer_has_a_case():
    assert sorted(LAYERS.names()) == sorted(LAYER_CASES)


def test_every_loss_has_a_case():
    assert sorted(LOSSES.names()) == sorted(LOSS_CASES)


@pytest.mark.parametrize("name, params, shape", list(_layer_cases()))
def test_layer_gradients(name, params, shape):
    rng = np.random.default_rng(0)
    layer = LAYERS.create({"type": name, **params})
    layer.build(shape, rng, np.float64)
    x = rng.standard_normal((4,) + shape)
    errors = check_layer(layer, x, rng)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, params, shape", list(_layer_cases()))
def test_layer_keeps_float32(name, params, shape):
    rng = np.random.default_rng(0)
    layer = LAYERS.create({"type": name, **params})
    out_shape = layer.build(shape, rng, np.float32)
    x = rng.standard_normal((3,) + shape).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == (3,) + out_shape
    dx = layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(g.dtype == np.float32 for g in layer.grads.values())


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_without_forward_fails_loudly(name):
    params, shape = LAYER_CASES[name][0]
    layer = LAYERS.create({"type": name, **params})
    layer.build(shape, np.random.default_rng(0), np.float64)
    x = np.ones((2,) + shape)
    y = layer.forward(x, training=True)
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.backward(np.ones_like(y))


def _loss_inputs(name, rng):
    if name == "cross_entropy":
        return rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    if name == "binary_cross_entropy":
        return rng.standard_normal((6, 1)) * 3, rng.integers(0, 2, 6)
    return rng.standard_normal((6, 2)), rng.standard_normal((6, 2))


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_gradients(name):
    rng = np.random.default_rng(1)
    for params in LOSS_CASES[name]:
        loss = LOSSES.create({"type": name, **params})
        out, y = _loss_inputs(name, rng)
        assert check_loss(loss, out, y) < TOLERANCE


def test_cross_entropy_values_match_hand_computation():
    loss = LOSSES.create({"type": "cross_entropy"})
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    value = loss.forward(logits, np.array([2, 0]))
    p = np.exp(3) / (np.exp(1) + np.exp(2) + np.exp(3))
    assert value == pytest.approx(-np.log(p) / 2)  # second row is certain and right: loss 0, no overflow


def test_binary_cross_entropy_is_stable_for_large_logits():
    loss = LOSSES.create({"type": "binary_cross_entropy"})
    value = loss.forward(np.array([[800.0], [-800.0]]), np.array([0, 1]))
    assert value == pytest.approx(800.0)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_every_params_field_is_accepted_by_the_constructor(name):
    entry = LAYERS.get(name)
    params, _ = LAYER_CASES[name][0]
    spec = entry.spec.model_validate({"type": name, **params})
    LAYERS.create(spec)  # every field, defaults included, passed as a keyword


def test_activation_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    expect = {
        "relu": [0, 0, 3],
        "leaky_relu": [-0.02, 0, 3],
        "sigmoid": 1 / (1 + np.exp(-x[0])),
        "tanh": np.tanh(x[0]),
        "linear": x[0],
        "elu": [np.exp(-2) - 1, 0, 3],
    }
    for name, values in expect.items():
        layer = LAYERS.create({"type": name})
        layer.build((3,), np.random.default_rng(0), np.float64)
        np.testing.assert_allclose(layer.forward(x, training=False)[0], values, rtol=1e-12, atol=1e-12)
