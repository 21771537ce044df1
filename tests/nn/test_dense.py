"""Dense: the fast paths of small NumPy batches give the plain formulas' bits."""

import numpy as np
import pytest

from nnctl.nn import dense as dense_module
from nnctl.nn.dense import Dense


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
