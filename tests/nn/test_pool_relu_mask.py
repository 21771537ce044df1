"""A max pool right after a relu conv applies the relu's gradient mask (nnctl/nn/pool.py, `fuse_relu_masks`):
wired at build only where it is exact, and then bit for bit the same gradients as the conv masking them."""

import gc
import itertools
import weakref

import numpy as np
import pytest

from nnctl import batchsplit
from nnctl.nn.conv import _Conv
from nnctl.nn.network import Network
from nnctl.nn.pool import _MaxPool, fuse_relu_masks
from nnctl.registry import LAYERS


@pytest.fixture(autouse=True)
def _split_off_afterwards():
    yield
    batchsplit.configure(None)


def network(specs, shape, dtype=np.float32, seed=0) -> Network:
    return Network([LAYERS.create(spec) for spec in specs]).build(shape, np.random.default_rng(seed), dtype)


def fused_pairs(net: Network) -> list[tuple[int, int]]:
    """(conv index, pool index) of the pairs wired together."""
    return [
        (i, i + 1)
        for i, (a, b) in enumerate(itertools.pairwise(net.layers))
        if getattr(a, "relu_mask_by_next", False) and getattr(b, "relu_mask", False)
    ]


def unfuse(net: Network) -> None:
    for layer in net.layers:
        if isinstance(layer, _Conv):
            layer.relu_mask_by_next = False
        elif isinstance(layer, _MaxPool):
            layer._relu_conv = None


def conv(filters=4, dims=2, activation="relu", **extra):
    spec = {"type": f"conv{dims}d", "filters": filters, "kernel_size": 3, "padding": "same", **extra}
    return spec | ({"activation": activation} if activation else {})


def pool(size=2, stride=None, dims=2):
    return {"type": f"max_pool{dims}d", "pool_size": size} | ({"stride": stride} if stride else {})


WIRING = [
    ([conv(), pool()], (1, 6, 6), [(0, 1)]),
    ([conv(dims=1), pool(3, dims=1)], (2, 10), [(0, 1)]),
    ([conv(), pool(2, 3)], (1, 7, 7), [(0, 1)]),  # gaps between windows: still no overlap
    ([conv(), pool(3, 2)], (1, 7, 7), []),  # overlapping windows
    ([conv(activation="tanh"), pool()], (1, 6, 6), []),
    ([conv(activation=None), pool()], (1, 6, 6), []),
    ([pool(), conv(), conv(), pool()], (1, 8, 8), [(2, 3)]),
    ([conv(), {"type": "avg_pool2d"}, pool()], (1, 8, 8), []),
    ([conv(), {"type": "dropout", "rate": 0.5}, pool()], (1, 8, 8), []),
]


@pytest.mark.parametrize("specs, shape, pairs", WIRING, ids=range(len(WIRING)))
def test_only_a_relu_conv_right_before_a_non_overlapping_max_pool_is_wired(specs, shape, pairs):
    net = network(specs, shape)
    assert fused_pairs(net) == pairs
    wired = {i for pair in pairs for i in pair}
    for i, layer in enumerate(net.layers):  # nothing else carries a flag
        assert getattr(layer, "relu_mask_by_next", False) is (i in wired and isinstance(layer, _Conv))
        assert getattr(layer, "relu_mask", False) is (i in wired and isinstance(layer, _MaxPool))


def test_rewiring_clears_flags_of_pairs_that_are_gone():
    net = network([conv(), pool()], (1, 6, 6))
    fuse_relu_masks(net.layers[::-1])  # the pool no longer follows the conv
    assert fused_pairs(net) == [] and not net.layers[0].relu_mask_by_next and not net.layers[1].relu_mask


def test_a_pool_built_alone_keeps_its_own_gradient():
    layer = LAYERS.create(pool())
    layer.build((2, 4, 4), np.random.default_rng(0), np.float64)
    assert not layer.relu_mask


def step(net: Network, x, dy):
    """Every gradient of one training step, the first layer's input gradient included, copied."""
    net.layers[0].needs_input_grad = True
    net.forward(x, training=True)
    dh = dy
    for layer in reversed(net.layers):
        dh = layer.backward(dh)
    return net.flat_grads.copy(), np.array(dh)


CASES = [
    # (layers, input shape): a leading layer so that the conv's input gradient is checked too
    ([conv(3, activation=None), conv(5), pool(), conv(4), pool(), {"type": "flatten"}], (2, 9, 11)),
    ([conv(3, activation=None), conv(5), pool(), conv(4), pool(), {"type": "flatten"}], (2, 8, 12)),  # tiled
    ([conv(3, activation=None), conv(5), pool(2, 3), {"type": "flatten"}], (2, 11, 10)),
    ([conv(3, dims=1, activation=None), conv(5, dims=1), pool(3, dims=1), {"type": "flatten"}], (2, 20)),
    ([conv(3, activation=None), conv(5, stride=2), pool([1, 2]), {"type": "flatten"}], (1, 8, 9)),
]


@pytest.mark.parametrize("parts", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("specs, shape", CASES, ids=range(len(CASES)))
def test_fused_gradients_equal_unfused_bit_for_bit(specs, shape, ties, dtype, parts, monkeypatch):
    monkeypatch.setattr(batchsplit, "MIN_PRODUCT", 0)
    monkeypatch.setattr(batchsplit, "MIN_ELEMENTS", 0)
    batchsplit.configure(parts)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, *shape)).astype(dtype)
    if ties:  # few distinct values: equal maxima in many windows, many windows all zero after the relu
        x = np.round(x * 2) / 2
    net = network(specs, shape, dtype)
    assert fused_pairs(net)
    if ties:  # weights of a few distinct values too, so the conv's outputs tie
        net.flat_params[...] = np.round(net.flat_params * 4) / 4
    dy = rng.standard_normal((7, *net.output_shape)).astype(dtype)
    fused = step(net, x, dy)
    unfuse(net)
    unfused = step(net, x, dy)
    for a, b in zip(fused, unfused, strict=True):
        assert a.dtype == dtype and a.tobytes() == b.tobytes()  # signed zeros included


def test_a_pool_that_does_not_write_over_its_input_does_not_hold_it():
    # Only a fused, tiling pool keeps its input (the conv's output, whose memory it reuses) until its backward;
    # any other would hold the previous layer's output (here a dropout's fresh array) alive through the step.
    dropout, max_pool = network([{"type": "dropout", "rate": 0.5}, pool()], (2, 6, 6)).layers
    dropout.rng = np.random.default_rng(1)
    h = dropout.forward(np.ones((3, 2, 6, 6), np.float32), training=True)
    held = weakref.ref(h)
    max_pool.forward(h, training=True)
    del h
    gc.collect()
    assert held() is None


def test_wired_layers_run_alone_are_plain_layers():
    """The wiring only permits: a wired pool given anything but its conv's output of this step is a plain pool
    (and leaves its input alone), and a wired conv given a gradient the pool did not mask applies its own mask."""
    net = network([conv(), pool()], (1, 6, 6))
    conv_layer, pool_layer = net.layers
    assert fused_pairs(net) == [(0, 1)]
    plain = network([conv(), pool()], (1, 6, 6))
    unfuse(plain)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 1, 6, 6)).astype(np.float32)
    dy = rng.normal(size=(5, 4, 3, 3)).astype(np.float32)

    # the pool alone, on a copy of a relu output: a plain pool's gradient, its input untouched
    h = np.maximum(rng.normal(size=(5, 4, 6, 6)), 0).astype(np.float32)
    before = h.copy()
    pool_layer.forward(h, training=True)
    plain.layers[1].forward(h.copy(), training=True)
    assert pool_layer.backward(dy).tobytes() == plain.layers[1].backward(dy).tobytes()
    assert h.tobytes() == before.tobytes()

    # the conv alone, its gradient from elsewhere: masked by the conv itself, as unwired
    g = rng.normal(size=(5, 4, 6, 6)).astype(np.float32)
    for layer in (conv_layer, plain.layers[0]):
        layer.forward(x, training=True)
        layer.backward(g.copy())
    assert np.array_equal(conv_layer.grads["weight"], plain.layers[0].grads["weight"])
    assert np.array_equal(conv_layer.grads["bias"], plain.layers[0].grads["bias"])
