"""The TensorFlow Playground compatibility pieces: playground_mse, playground_sgd, init playground, bias_init."""

import numpy as np
import pytest

from nnctl.errors import ConfigError
from nnctl.nn.gradcheck import TOLERANCE, check_loss
from nnctl.registry import LAYERS, LOSSES, OPTIMIZERS


def test_playground_mse_on_class_labels_matches_hand_computation():
    loss = LOSSES.create({"type": "playground_mse"})
    z = np.array([[0.5], [-1.0]])
    value = loss.forward(z, np.array([1, 1]))  # targets +1, +1
    assert value == pytest.approx(0.5 * ((np.tanh(0.5) - 1) ** 2 + (np.tanh(-1.0) - 1) ** 2) / 2)
    np.testing.assert_allclose(loss.backward()[:, 0], (np.tanh(z[:, 0]) - 1) * (1 - np.tanh(z[:, 0]) ** 2) / 2)
    assert loss.predict(z).tolist() == [1, 0]
    np.testing.assert_allclose(loss.probabilities(z)[:, 1], (np.tanh(z[:, 0]) + 1) / 2)


def test_playground_mse_gradient_with_integer_labels():
    rng = np.random.default_rng(0)
    loss = LOSSES.create({"type": "playground_mse"})
    assert check_loss(loss, rng.standard_normal((6, 1)), rng.integers(0, 2, 6)) < TOLERANCE


def test_playground_mse_checks_task_and_shape():
    with pytest.raises(ConfigError, match="2 classes and 1 output unit"):
        LOSSES.create({"type": "playground_mse"}).check((2,), "classification", 2, 1)
    with pytest.raises(ConfigError, match="regression loss"):
        LOSSES.create({"type": "playground_mse", "output": "linear"}).check((1,), "classification", 2, 1)
    LOSSES.create({"type": "playground_mse", "output": "linear"}).check((1,), "regression", None, 1)


def make(spec, p, g, mask=None):
    params, grads = np.array(p, dtype=np.float64), np.array(g, dtype=np.float64)
    opt = OPTIMIZERS.create(spec).bind(params, grads, None if mask is None else np.array(mask, dtype=np.float64))
    return opt, params, grads


def test_playground_sgd_l2_takes_the_derivative_before_the_step():
    opt, p, _ = make({"type": "playground_sgd", "lr": 0.1, "regularization": "l2", "regularization_rate": 0.5},
                     [1.0, 2.0], [1.0, 1.0], mask=[1, 0])  # fmt: skip
    opt.step()
    # weight: 1 - 0.1 * 1 - 0.1 * 0.5 * 1 (w before the step); bias (mask 0): 2 - 0.1 * 1, no regularization
    np.testing.assert_allclose(p, [1 - 0.1 - 0.05, 1.9])


def test_playground_sgd_l1_sets_a_weight_that_crosses_zero_to_zero_for_good():
    spec = {"type": "playground_sgd", "lr": 0.1, "regularization": "l1", "regularization_rate": 1.0}
    opt, p, g = make(spec, [0.05, -1.0, 0.5], [0.0, 0.0, 0.0])
    opt.step()  # 0.05 - 0.1 * sign(0.05) = -0.05 crosses 0 -> 0 and dead; the others move by 0.1 towards 0
    np.testing.assert_allclose(p, [0.0, -0.9, 0.4])
    g[:] = [-5.0, 0.0, 0.0]
    opt.step()  # a dead weight is never updated again, whatever its gradient
    np.testing.assert_allclose(p, [0.0, -0.8, 0.3])
    assert opt.state_dict()["dead"].tolist() == [1.0, 0.0, 0.0]


def test_playground_sgd_without_regularization_is_plain_sgd():
    opt, p, _ = make({"type": "playground_sgd", "lr": 0.1}, [1.0, -2.0], [0.5, -1.0])
    opt.step()
    np.testing.assert_allclose(p, [0.95, -1.9])


def test_playground_init_and_bias_init():
    layer = LAYERS.create({"type": "dense", "units": 50, "init": "playground", "bias_init": 0.1})
    layer.build((40,), np.random.default_rng(0), np.float32)
    w = layer.params["weight"]
    assert w.min() >= -0.5 and w.max() <= 0.5 and w.max() - w.min() > 0.95  # uniform on [-0.5, 0.5], any fan-in
    assert np.all(layer.params["bias"] == np.float32(0.1)) and layer.params["bias"].dtype == np.float32
