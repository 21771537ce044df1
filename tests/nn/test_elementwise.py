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


@pytest.mark.parametrize(
    "padded, region",
    [
        ((64, 16, 16, 32), (slice(None), slice(1, 15), slice(2, 16))),  # conv2's col2im: rows of 14 x 32
        ((64, 30, 30, 1), (slice(None), slice(0, 28), slice(1, 29))),  # C = 1: rows of 28, through the buffer
        ((16, 30, 30, 10), (slice(None), slice(1, 29), slice(2, 30))),  # rows of 280: no multiple of 16
        ((64, 16, 16, 32), (slice(None), slice(0, 14, 2), slice(0, 14, 2))),  # stride 2: rows of 32
        ((8, 8, 8, 8), (slice(None), slice(1, 7), slice(1, 7))),  # small: the plain add
    ],
)
def test_add_into_a_strided_view_is_the_plain_add(padded, region):
    rng = np.random.default_rng(2)
    base = rng.standard_normal(padded).astype(np.float32)
    expected = base.copy()
    expected[region] += np.ones_like(expected[region]) * 0.5
    src = np.full(base[region].shape, 0.5, dtype=np.float32)
    settings = (np.getbufsize(), np.geterr())
    view = base[region]
    assert elementwise.add_(np, view, src) is view
    assert base.tobytes() == expected.tobytes()
    assert (np.getbufsize(), np.geterr()) == settings  # nothing leaks out of the call


def test_contiguous_run_counts_the_innermost_contiguous_elements():
    a = np.zeros((4, 16, 16, 32), np.float32)
    assert elementwise.contiguous_run(a) == a.size
    assert elementwise.contiguous_run(a[:, 1:15, 1:15]) == 14 * 32
    assert elementwise.contiguous_run(a[:, :, ::2]) == 32
    assert elementwise.contiguous_run(a[..., ::2]) == 1
    assert elementwise.contiguous_run(a[:, 3:4, 1:15]) == 14 * 32  # a length-1 axis does not break the run
