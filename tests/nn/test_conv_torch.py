"""Optional: convolution and pooling layers against PyTorch's (forward and gradients, float64), skipped without torch.

Also checks what the layers' reused training arrays (conv.Scratch) must not break: batches of changing
size, and an evaluation forward between a training forward and its backward."""

import numpy as np
import pytest

from tests.nn.test_conv import build

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV_CASES = [
    ({"kernel_size": 3, "padding": "same", "activation": "relu"}, (3, 9, 8)),
    ({"kernel_size": 2, "padding": "same"}, (2, 7, 6)),  # asymmetric padding: the extra zero after
    ({"kernel_size": 3, "stride": 2, "padding": 1, "activation": "relu"}, (2, 9, 9)),
    ({"kernel_size": [3, 2], "dilation": 2, "padding": 2, "activation": "tanh"}, (2, 8, 7)),
    ({"kernel_size": 3, "use_bias": False}, (4, 6, 6)),
]


def _as_nnctl(weight):
    """torch's (F, C, *kernel) -> nnctl's (*kernel, C, F)."""
    return np.moveaxis(np.moveaxis(weight.numpy(), 1, -1), 0, -1)


def _torch_conv(layer, x, dims):
    """The layer's convolution in torch: (x, y, dx, dW in nnctl's (*kernel, C, F) layout, db or None)."""
    weight = np.moveaxis(np.moveaxis(layer.params["weight"], -1, 0), -1, 1)  # (*k, C, F) -> (F, C, *k)
    w = torch.tensor(np.ascontiguousarray(weight), requires_grad=True)
    b = torch.tensor(layer.params["bias"], requires_grad=True) if layer.use_bias else None
    xt = torch.tensor(x, requires_grad=True)
    pads = [p for pair in reversed(layer.pads) for p in pair]  # F.pad wants the last axis first
    conv = F.conv2d if dims == 2 else F.conv1d
    yt = conv(F.pad(xt, pads), w, b, stride=layer.stride, dilation=layer.dilation)
    if layer.activation is not None:
        yt = getattr(torch, layer.activation.name)(yt)
    return xt, yt, w, b


@pytest.mark.parametrize("params, shape", CONV_CASES, ids=["same-relu", "same-even", "stride2", "dilation", "nobias"])
def test_conv2d_matches_torch(params, shape):
    rng = np.random.default_rng(0)
    layer = build({"type": "conv2d", "filters": 5, **params}, shape)
    if layer.use_bias:
        layer.params["bias"][...] = rng.standard_normal(5) * 0.1
    x = rng.standard_normal((4, *shape))
    xt, yt, w, b = _torch_conv(layer, x, 2)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], _as_nnctl(w.grad), atol=1e-12)
    if b is not None:
        np.testing.assert_allclose(layer.grads["bias"], b.grad.numpy(), atol=1e-12)


def test_conv1d_matches_torch():
    rng = np.random.default_rng(1)
    layer = build({"type": "conv1d", "filters": 3, "kernel_size": 4, "stride": 2, "padding": "same"}, (2, 11))
    x = rng.standard_normal((3, 2, 11))
    xt, yt, w, _ = _torch_conv(layer, x, 1)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.forward(x, training=True), yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], _as_nnctl(w.grad), atol=1e-12)


POOL_CASES = [
    ("max_pool2d", {}, (3, 6, 8)),
    ("max_pool2d", {}, (2, 7, 5)),  # the last row and column belong to no window: gradient 0 there
    ("max_pool2d", {"pool_size": 3, "stride": 2}, (2, 7, 7)),  # overlapping windows
    ("max_pool2d", {"pool_size": [2, 1]}, (2, 6, 3)),
    ("avg_pool2d", {}, (2, 6, 8)),
    ("avg_pool2d", {"pool_size": 3, "stride": 2}, (2, 7, 7)),
    ("max_pool1d", {"pool_size": 3}, (2, 10)),
    ("max_pool1d", {"pool_size": 3, "stride": 1}, (2, 8)),
]


@pytest.mark.parametrize("name, params, shape", POOL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL_CASES)])
def test_pooling_matches_torch_ties_included(name, params, shape):
    """Inputs are small integers, so windows often tie: both send the gradient to the window's first maximum."""
    rng = np.random.default_rng(2)
    layer = build({"type": name, **params}, shape)
    x = rng.integers(0, 3, (4, *shape)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    fn = getattr(F, name)
    yt = fn(xt, kernel_size=layer.pool, stride=layer.stride)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.forward(x, training=True), yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "spec, shape",
    [
        ({"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"}, (2, 6, 6)),
        ({"type": "max_pool2d"}, (2, 6, 7)),
        ({"type": "max_pool2d", "pool_size": 3, "stride": 2}, (2, 7, 7)),
    ],
    ids=["conv-relu", "max-pool", "max-pool-overlap"],
)
def test_reused_training_arrays_follow_the_batch(spec, shape):
    """Batches of 5, 5, 2, 5 (a short last batch), with an evaluation forward between each training forward and
    its backward, give what a fresh layer gives for each batch alone."""
    rng = np.random.default_rng(3)
    layer = build(spec, shape)
    for n in (5, 5, 2, 5):
        x = rng.integers(-2, 3, (n, *shape)).astype(np.float64)
        fresh = build(spec, shape)
        if "weight" in layer.params:
            fresh.params["weight"][...] = layer.params["weight"]
        expected_y = fresh.forward(x, training=True).copy()
        dy = rng.standard_normal(expected_y.shape)
        expected_dx = fresh.backward(dy).copy()
        y = layer.forward(x, training=True).copy()
        layer.forward(rng.standard_normal((3, *shape)), training=False)
        dx = layer.backward(dy)
        np.testing.assert_array_equal(y, expected_y)
        np.testing.assert_array_equal(dx, expected_dx)
        for key in layer.grads:
            np.testing.assert_array_equal(layer.grads[key], fresh.grads[key])
