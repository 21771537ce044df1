"""Dense: the fast paths of small NumPy batches give the plain formulas' bits."""

import numpy as np
import pytest

from nnctl.nn import dense as dense_module
from nnctl.nn.dense import Dense
from nnctl.nn.network import Network


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_bias_rows_add_the_broadcast_bias_bit_for_bit(dtype):
    layer = Dense(units=7)
    layer.build((3,), np.random.default_rng(0), dtype)
    layer.params["bias"][...] = np.random.default_rng(1).standard_normal(7)
    weight, bias = layer.params["weight"], layer.params["bias"]
    rng = np.random.default_rng(2)
    for n in (10, 10, 3, 10, 1000):  # a batch size that changes, and one past SMALL_OUTPUT (7000 outputs)
        x = rng.standard_normal((n, 3)).astype(dtype)
        out = layer.forward(x, training=False)
        assert out.dtype == dtype and out.tobytes() == (x.dot(weight) + bias).tobytes()
        small = n * 7 <= dense_module.SMALL_OUTPUT
        assert (layer._rows is not None and len(layer._rows) == n) == small


def test_an_output_is_never_the_kept_rows_buffer():
    layer = Dense(units=4)
    layer.build((2,), np.random.default_rng(0))
    x = np.ones((5, 2), dtype=np.float32)
    first = layer.forward(x, training=False)
    kept = first.copy()
    layer.params["bias"] += 1
    second = layer.forward(x, training=False)
    assert first is not layer._rows and second is not layer._rows
    assert np.array_equal(first, kept) and np.array_equal(second, kept + 1)


def test_dense_works_on_the_networks_flat_buffers():
    # Dense keeps its parameter and gradient views (Layer._bind_params): they must be the network's.
    net = Network([Dense(units=3, activation="tanh"), Dense(units=1)]).build((2,), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    net.load_params({name: rng.standard_normal(shape) for name, (_, shape) in net.param_slices.items()})
    first, second = net.layers
    x = rng.standard_normal((4, 2)).astype(np.float32)
    h = np.tanh(x.dot(first.params["weight"]) + first.params["bias"])
    out = net.forward(x, training=True)
    assert out.tobytes() == (h.dot(second.params["weight"]) + second.params["bias"]).tobytes()
    dy = rng.standard_normal((4, 1)).astype(np.float32)
    net.backward(dy)
    grads = {name: net.flat_grads[o : o + int(np.prod(s))].reshape(s) for name, (o, s) in net.param_slices.items()}
    assert grads["1.weight"].tobytes() == h.T.dot(dy).tobytes()
    assert grads["1.bias"].tobytes() == np.ones(4, np.float32).dot(dy).tobytes()
    dh = dy.dot(second.params["weight"].T) * (1 - h * h)
    assert np.allclose(grads["0.weight"], x.T.dot(dh), rtol=1e-6) and np.allclose(grads["0.bias"], dh.sum(0), rtol=1e-6)


def test_a_second_backward_without_a_forward_fails():
    layer = Dense(units=2)
    layer.build((3,), np.random.default_rng(0))
    layer.forward(np.ones((2, 3), np.float32), training=True)
    layer.backward(np.ones((2, 2), np.float32))
    with pytest.raises(RuntimeError, match="without a training forward"):
        layer.backward(np.ones((2, 2), np.float32))


def test_a_rebuild_in_another_dtype_drops_the_kept_buffers():
    # The bias rows kept from a float32 build would round a float64 bias to float32.
    layer = Dense(units=3)
    net = Network([layer]).build((4,), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(1).standard_normal((5, 4))
    net.forward(x.astype(np.float32), training=False)
    net.build((4,), np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(2)
    net.load_params({name: rng.standard_normal(shape) for name, (_, shape) in net.param_slices.items()})
    out = net.forward(x, training=False)
    assert out.tobytes() == (x.dot(layer.params["weight"]) + layer.params["bias"]).tobytes()
