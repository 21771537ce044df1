"""nnctl.nn.elementwise gives the bits of the plain NumPy calls it replaces, on every path it can take."""

import numpy as np
import pytest

from nnctl.nn import elementwise

SHAPES = [
    (50176, 32),  # the benchmark CNN's first conv output: bias tiled 32 times, relu in whole rows
    (12544, 64),
    (40000, 3),  # a width that does not divide ROW
    (1001, 64),  # rows that do not divide by the bias's repeat: the plain broadcast
    (64, 1024 * 40 + 5),  # a tail after the whole rows
    (100, 7),  # small: the plain call
]


def _values(shape, dtype, rng):
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    flat[::7] = -0.0
    flat[5::101] = np.nan
    flat[9::103] = -np.inf
    return a


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_bias_are_the_plain_calls_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(0)
    a = _values(shape, dtype, rng)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    expected_relu = np.maximum(a, 0)
    assert elementwise.relu(np, a).tobytes() == expected_relu.tobytes()
    inplace = a.copy()
    assert elementwise.relu_(np, inplace) is inplace
    assert inplace.tobytes() == expected_relu.tobytes()
    summed = a.copy()
    assert elementwise.add_bias_(np, summed, bias) is summed
    assert summed.tobytes() == (a + bias).tobytes()


def test_non_contiguous_arrays_take_the_plain_call():
    a = _values((40000, 64), np.float32, np.random.default_rng(1))[:, ::2]
    out = elementwise.relu(np, a)
    assert out.tobytes() == np.maximum(a, 0).tobytes()
    view = a.copy(order="F")
    elementwise.relu_(np, view)
    assert view.tobytes() == np.maximum(a, 0).tobytes()
