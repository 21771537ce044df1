"""One gradient-check harness for every registered layer and loss (float64, random upstream gradient)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.nn.gradcheck import TOLERANCE, check_layer, check_loss, check_penalty
from nnctl.registry import LAYERS, LOSSES, REGULARIZERS

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
    # nnctl/nn/recurrent.py, nnctl/nn/embedding.py: every cell in both return_sequences modes and bidirectional
    "simple_rnn": [
        ({"units": 3}, (5, 2)),
        ({"units": 3, "return_sequences": True, "activation": "relu"}, (4, 2)),
        ({"units": 2, "bidirectional": True}, (4, 3)),
        ({"units": 2, "return_sequences": True, "bidirectional": True}, (4, 3)),
    ],
    "lstm": [
        ({"units": 3}, (5, 2)),
        ({"units": 3, "return_sequences": True}, (4, 2)),
        ({"units": 2, "bidirectional": True}, (4, 3)),
        ({"units": 2, "return_sequences": True, "bidirectional": True}, (4, 3)),
    ],
    "gru": [
        ({"units": 3}, (5, 2)),
        ({"units": 3, "return_sequences": True}, (4, 2)),
        ({"units": 2, "bidirectional": True}, (4, 3)),
        ({"units": 2, "return_sequences": True, "bidirectional": True}, (4, 3)),
    ],
    "embedding": [({"vocab_size": 7, "dim": 3}, (5,))],
    # a table's encoding: embedding columns: numbers, then one id column each (and ids alone)
    "category_embedding": [({"vocab_sizes": [4, 3], "dims": [2, 3]}, (5,)), ({"vocab_sizes": [6], "dims": [2]}, (1,))],
    "time_distributed_dense": [({"units": 3, "activation": "tanh"}, (4, 2)), ({"units": 2}, (3, 4))],
    "dropout": [({"rate": 0.3}, (6,)), ({"rate": 0.5}, (2, 3, 3))],  # the harness freezes the mask
    "gaussian_noise": [({"std": 0.5}, (6,))],
    "polynomial": [({"degree": 3}, (2,))],
    "batch_norm": [({}, (5,)), ({}, (3, 4)), ({"momentum": 0.5}, (2, 3, 3))],
    # r_max = 1, d_max = 0 is batch norm; the other cases start with running statistics far from the
    # batch's so r and d are clipped: constants, as the paper's stop-gradient treats them.
    "batch_renorm": [
        ({"r_max": 1.0, "d_max": 0.0}, (5,)),
        (
            {"r_max": 2.0, "d_max": 0.5, "warmup_steps": 0, "_buffers": {"running_mean": 500.0, "running_var": 1e4}},
            (5,),
        ),
        (
            {"r_max": 2.0, "d_max": 0.5, "warmup_steps": 0, "_buffers": {"running_mean": -50.0, "running_var": 1e-4}},
            (2, 3, 3),
        ),
    ],
    "layer_norm": [({}, (5,)), ({}, (3, 4)), ({}, (2, 3, 3))],
    "instance_norm": [({}, (3, 4)), ({}, (2, 3, 3))],
    "group_norm": [
        ({"groups": 2}, (6,)),
        ({"groups": 2}, (4, 3)),
        ({"groups": 1}, (2, 3, 3)),
        ({"groups": 3}, (3, 2, 2)),
    ],
    # nnctl/nn/conv.py, pool.py, reshape.py, residual.py: stride 1 and 2, every padding mode, dilation 2.
    # tests/nn/test_conv.py adds the naive-convolution comparison and checks the residual's inner parameters.
    "conv2d": [
        ({"filters": 3, "kernel_size": 3}, (2, 6, 5)),
        ({"filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"}, (2, 7, 6)),
        ({"filters": 2, "kernel_size": [2, 3], "stride": 2, "padding": 1}, (3, 6, 7)),
        ({"filters": 2, "kernel_size": 3, "padding": "same", "dilation": 2, "activation": "tanh"}, (2, 6, 6)),
        ({"filters": 2, "kernel_size": 2, "padding": "same", "use_bias": False}, (1, 5, 4)),
    ],
    "conv1d": [
        ({"filters": 3, "kernel_size": 3}, (2, 9)),
        ({"filters": 2, "kernel_size": 4, "stride": 2, "padding": "same"}, (3, 9)),
        ({"filters": 2, "kernel_size": 3, "stride": 2, "padding": 2, "dilation": 2, "activation": "relu"}, (2, 11)),
    ],
    "max_pool2d": [({}, (2, 4, 6)), ({"pool_size": 3, "stride": 2}, (2, 7, 6)), ({"pool_size": [2, 1]}, (1, 5, 3))],
    "avg_pool2d": [({}, (2, 4, 4)), ({"pool_size": 2, "stride": 1}, (2, 4, 5))],
    "global_avg_pool2d": [({}, (3, 4, 5))],
    "max_pool1d": [({}, (2, 8)), ({"pool_size": 3, "stride": 2}, (2, 9))],
    "avg_pool1d": [({"pool_size": 3}, (2, 9)), ({"pool_size": 2, "stride": 1}, (2, 5))],
    "global_avg_pool1d": [({}, (3, 7))],
    "flatten": [({}, (2, 3, 4))],
    "reshape": [({"shape": [2, -1]}, (8,))],
    "residual": [
        ({"layers": [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 4}]}, (4,)),
        ({"layers": [{"type": "dense", "units": 3, "activation": "tanh"}]}, (5,)),  # dense projection
        (
            {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "tanh"}]},
            (2, 4, 4),
        ),
        ({"layers": [{"type": "conv2d", "filters": 3, "kernel_size": 3, "stride": 2, "padding": "same"}]}, (2, 6, 6)),
        (
            {
                "layers": [
                    {
                        "type": "residual",
                        "layers": [{"type": "conv1d", "filters": 2, "kernel_size": 3, "padding": "same"}],
                    }
                ]
            },
            (2, 6),
        ),
    ],
}

LOSS_CASES = {
    "mse": [{}],
    "mae": [{}],
    "huber": [{"delta": 0.5}],
    "binary_cross_entropy": [{}],
    "cross_entropy": [{}],
    "playground_mse": [{"output": "tanh"}, {"output": "linear"}],  # nnctl/nn/playground.py
}


def _layer_cases():
    for name, cases in LAYER_CASES.items():
        for i, (params, shape) in enumerate(cases):
            yield pytest.param(name, params, shape, id=f"{name}-{i}")


def test_every_layer_has_a_case():
    assert sorted(LAYERS.names()) == sorted(LAYER_CASES)


def make_layer(name, params, shape, dtype=np.float64, seed=0):
    """Build a layer for a case; `_buffers` in params sets state (e.g. running statistics) after build."""
    params = dict(params)
    buffers = params.pop("_buffers", {})
    layer = LAYERS.create({"type": name, **params})
    layer.build(shape, np.random.default_rng(seed), dtype)
    for key, value in buffers.items():
        layer.buffers[key][...] = value
    if layer.stochastic:
        layer.rng = np.random.default_rng(seed)
    return layer


def test_every_loss_has_a_case():
    assert sorted(LOSSES.names()) == sorted(LOSS_CASES)


@pytest.mark.parametrize("name, params, shape", list(_layer_cases()))
def test_layer_gradients(name, params, shape):
    rng = np.random.default_rng(0)
    layer = make_layer(name, params, shape)
    x = rng.standard_normal((4,) + shape) * 2 + 0.5
    if hasattr(layer, "example_input"):  # layers that need valid inputs (embedding: token ids)
        x = layer.example_input(4, rng)
    errors = check_layer(layer, x, rng)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, params, shape", list(_layer_cases()))
def test_layer_keeps_float32(name, params, shape):
    rng = np.random.default_rng(0)
    layer = make_layer(name, params, shape, np.float32)
    out_shape = layer.output_shape
    x = rng.standard_normal((3,) + shape).astype(np.float32)
    if hasattr(layer, "example_input"):  # layers that need valid inputs (embedding: token ids)
        x = layer.example_input(3, rng)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == (3,) + out_shape
    dx = layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(g.dtype == np.float32 for g in layer.grads.values())


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_without_forward_fails_loudly(name):
    params, shape = LAYER_CASES[name][0]
    layer = make_layer(name, params, shape)
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
    params = {k: v for k, v in LAYER_CASES[name][0][0].items() if not k.startswith("_")}
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


# Every registered regularizer: penalties get a gradient check, constraints a projection check.
REGULARIZER_CASES = {
    "l1": {"rate": 0.3},
    "l2": {"rate": 0.7},
    "l1_l2": {"l1": 0.2, "l2": 0.5},
    "max_norm": {"max": 1.5},
}


def test_every_regularizer_has_a_case():
    assert sorted(REGULARIZERS.names()) == sorted(REGULARIZER_CASES)


@pytest.mark.parametrize("name", sorted(REGULARIZER_CASES))
def test_regularizer(name):
    reg = REGULARIZERS.create({"type": name, **REGULARIZER_CASES[name]})
    w = np.random.default_rng(2).standard_normal((4, 3)) + 0.05  # away from 0, where |w| has its kink
    if reg.is_constraint:
        reg.project(w)
        assert np.all(np.linalg.norm(w, axis=0) <= reg.max + 1e-12)
        small = np.full((4, 1), 0.1)
        reg.project(small)
        assert np.all(small == 0.1)  # weights inside the ball are untouched
    else:
        assert check_penalty(reg, w) < TOLERANCE


def test_penalty_values():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert REGULARIZERS.create({"type": "l2", "rate": 0.1}).value(w) == pytest.approx(0.05 * 5.25)
    assert REGULARIZERS.create({"type": "l1", "rate": 0.1}).value(w) == pytest.approx(0.35)


# --- weighted losses: class_weight and sample weights (nnctl/nn/losses.py) ----------------------------


def _weighted_loss(name, rng, class_weight=None, sample_weight=True):
    from nnctl.nn.losses import with_sample_weight

    loss = LOSSES.create({"type": name, **({"class_weight": class_weight} if class_weight else {})})
    out, y = _loss_inputs(name, rng)
    if class_weight is not None:
        k = out.shape[1] if name == "cross_entropy" else 2
        loss.fit_class_weight(y, [f"c{i}" for i in range(k)], k)
    if sample_weight:
        loss.sample_weighted = True
        y = with_sample_weight(y, rng.uniform(0.1, 3.0, len(y)))
    return loss, out, y


@pytest.mark.parametrize(
    "name, class_weight, sample_weight",
    [
        ("cross_entropy", {"c1": 3.0, "c3": 0.5}, False),
        ("cross_entropy", "balanced", True),
        ("cross_entropy", None, True),
        ("binary_cross_entropy", {"c0": 4.0}, True),
        ("binary_cross_entropy", "balanced", False),
        ("mse", None, True),
        ("mae", None, True),
        ("huber", None, True),
    ],
    ids=lambda v: str(v),
)
def test_weighted_loss_gradients(name, class_weight, sample_weight):
    loss, out, y = _weighted_loss(name, np.random.default_rng(2), class_weight, sample_weight)
    assert check_loss(loss, out, y) < TOLERANCE


def test_mse_gradient_as_the_batch_size_and_dtype_change():
    """MSE keeps 2 / size for the last batch's size and dtype: a short last batch, or another dtype, gets its own."""
    loss = LOSSES.create({"type": "mse"})
    rng = np.random.default_rng(4)
    for n, dtype in [(10, np.float32), (10, np.float32), (7, np.float32), (7, np.float64), (10, np.float32)]:
        out, y = rng.standard_normal((n, 2)).astype(dtype), rng.standard_normal((n, 2)).astype(dtype)
        loss.forward(out, y)
        grad = loss.backward()
        assert grad.dtype == dtype
        np.testing.assert_array_equal(grad, (out - y) * dtype(2.0 / out.size))  # the same bits as a scalar


def test_class_weighted_cross_entropy_equals_the_hand_computed_value():
    loss = LOSSES.create({"type": "cross_entropy", "class_weight": {"b": 3.0}})
    loss.fit_class_weight(np.array([0, 1]), ["a", "b", "c"], 3)
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    value = loss.forward(logits, np.array([2, 1, 0]))
    l0 = -np.log(np.exp(3) / (np.exp(1) + np.exp(2) + np.exp(3)))
    l1 = np.log(3.0)
    l2 = -np.log(np.exp(2) / (np.exp(2) + 2))
    assert value == pytest.approx((1 * l0 + 3 * l1 + 1 * l2) / (1 + 3 + 1), rel=1e-12)


def test_balanced_weights_and_sample_weights_multiply():
    from nnctl.nn.losses import with_sample_weight

    loss = LOSSES.create({"type": "binary_cross_entropy", "class_weight": "balanced"})
    loss.fit_class_weight(np.array([0, 0, 0, 1]), ["no", "yes"], 2)
    np.testing.assert_allclose(loss.weights, [4 / (2 * 3), 4 / (2 * 1)])  # n / (K n_k), as scikit-learn
    loss.sample_weighted = True
    z = np.array([[0.5], [-1.0]])
    value = loss.forward(z, with_sample_weight(np.array([0, 1]), np.array([2.0, 0.5])))
    w = np.array([2.0 * 4 / 6, 0.5 * 2.0])
    softplus = np.log1p(np.exp(z[:, 0]))
    per_row = np.array([softplus[0], softplus[1] - z[1, 0]])
    assert value == pytest.approx(float(w @ per_row / w.sum()), rel=1e-12)


def test_an_unknown_class_in_class_weight_names_it():
    from nnctl.errors import ConfigError

    loss = LOSSES.create({"type": "cross_entropy", "class_weight": {"Gentu": 2.0}})
    with pytest.raises(ConfigError, match=r"loss.class_weight.Gentu: there is no class 'Gentu'.*Adelie, Gentoo"):
        loss.fit_class_weight(np.array([0, 1]), ["Adelie", "Gentoo"], 2)


@pytest.mark.parametrize("sample_weight", [False, True], ids=["plain", "sample-weighted"])
def test_multilabel_binary_cross_entropy_gradient(sample_weight):
    from nnctl.nn.losses import with_sample_weight

    rng = np.random.default_rng(4)
    loss = LOSSES.create({"type": "binary_cross_entropy"})
    loss.check((3,), "multilabel", None, 3)
    out, y = rng.standard_normal((6, 3)) * 3, rng.integers(0, 2, (6, 3)).astype(np.float64)
    if sample_weight:
        loss.sample_weighted = True
        y = with_sample_weight(y, rng.uniform(0.1, 3.0, 6))
    assert check_loss(loss, out, y) < TOLERANCE


def test_multilabel_binary_cross_entropy_value():
    loss = LOSSES.create({"type": "binary_cross_entropy"})
    loss.check((2,), "multilabel", None, 2)
    z = np.array([[0.0, 2.0], [-1.0, 0.5]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    expected = np.mean(np.log1p(np.exp(z)) - t * z)
    assert loss.forward(z, t) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(loss.predict(z), [[0, 1], [0, 1]])
