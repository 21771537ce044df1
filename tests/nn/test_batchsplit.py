"""Conv and max-pool layers split a batch over threads (nnctl/batchsplit.py): the split path equals the
unsplit one, and it engages only where designed (a training that applies 2+ threads to a network with
large conv/pool layers, large enough calls, the CPU)."""

import numpy as np
import pytest

from nnctl import batchsplit, threads
from nnctl.nn.network import Network
from nnctl.registry import LAYERS

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def _off_afterwards():
    yield
    batchsplit.configure(None)


def build(spec, shape, dtype, seed=0):
    layer = LAYERS.create(spec)
    layer.build(shape, np.random.default_rng(seed), dtype)
    if "bias" in layer.params:
        layer.params["bias"][...] = np.random.default_rng(seed + 1).standard_normal(layer.params["bias"].shape)
    return layer


def step(layer, x, dy):
    """(train output, input gradient, weight gradients, eval output), all copied (scratch is reused)."""
    y = layer.forward(x, training=True).copy()
    dx = layer.backward(dy)
    dx = None if dx is None else dx.copy()
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return y, dx, grads, layer.forward(x, training=False).copy()


LAYER_CASES = [
    ({"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"}, (4, 12, 12)),
    ({"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"}, (1, 12, 12)),
    ({"type": "conv2d", "filters": 6, "kernel_size": 3, "stride": 2, "activation": "tanh"}, (3, 13, 11)),
    ({"type": "conv2d", "filters": 5, "kernel_size": 2, "use_bias": False}, (3, 9, 9)),
    ({"type": "conv1d", "filters": 7, "kernel_size": 5, "padding": 2, "dilation": 2}, (3, 40)),
    ({"type": "max_pool2d", "pool_size": 2}, (5, 12, 12)),
    ({"type": "max_pool2d", "pool_size": 3, "stride": 2}, (5, 13, 13)),  # overlapping windows
    ({"type": "max_pool1d", "pool_size": 2}, (5, 41)),
    ({"type": "dense", "units": 9, "activation": "relu"}, (50,)),
    ({"type": "dense", "units": 9, "use_bias": False}, (50,)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("spec, shape", LAYER_CASES, ids=[f"{s['type']}-{i}" for i, (s, _) in enumerate(LAYER_CASES)])
def test_split_equals_unsplit(spec, shape, parts, dtype, monkeypatch):
    monkeypatch.setattr(batchsplit, "MIN_PRODUCT", 0)
    monkeypatch.setattr(batchsplit, "MIN_ELEMENTS", 0)
    rng = np.random.default_rng(3)
    n = 7  # parts of unequal size
    x = rng.standard_normal((n, *shape)).astype(dtype)
    if spec["type"].startswith("max_pool"):
        x[:, :, ::3] = 0.5  # ties inside windows: the first maximum must win on both paths
    layer = build(spec, shape, dtype)
    layer.needs_input_grad = True
    dy = rng.standard_normal((n, *layer.output_shape)).astype(dtype)
    calls = []
    real_run = batchsplit.run
    monkeypatch.setattr(batchsplit, "run", lambda n, work: calls.append(n) or real_run(n, work))

    y0, dx0, g0, e0 = step(layer, x, dy)
    assert calls == []
    batchsplit.configure(parts)
    y1, dx1, g1, e1 = step(layer, x, dy)
    assert len(calls) == (2 if spec["type"] == "dense" else 3)  # dense: its backward runs two GEMMs side by side
    if spec["type"] != "dense":
        # Every sample's output and input gradient is computed by the same operations on both paths.
        np.testing.assert_array_equal(y1, y0)
        np.testing.assert_array_equal(e1, e0)
        np.testing.assert_array_equal(dx1, dx0)
    else:  # OpenBLAS picks another kernel for a product of a few rows: the last bit may differ
        for split, whole in ((y1, y0), (e1, e0), (dx1, dx0)):
            tight = dtype == np.float64
            np.testing.assert_allclose(split, whole, rtol=1e-12 if tight else 1e-5, atol=1e-12 if tight else 1e-6)
    # Weight gradients are summed per part: equal up to rounding.
    assert g1.keys() == g0.keys()
    for key in g0:
        tight = dtype == np.float64
        np.testing.assert_allclose(g1[key], g0[key], rtol=1e-10 if tight else 1e-4, atol=1e-12 if tight else 1e-5)
    # ... and the same on every run: no dependence on which thread finishes first.
    for _ in range(3):
        _, dx2, g2, _ = step(layer, x, dy)
        np.testing.assert_array_equal(dx2, dx1)
        for key in g0:
            np.testing.assert_array_equal(g2[key], g1[key])


def test_no_input_gradient_for_a_first_layer(monkeypatch):
    monkeypatch.setattr(batchsplit, "MIN_PRODUCT", 0)
    layer = build({"type": "conv2d", "filters": 4, "kernel_size": 3}, (2, 8, 8), np.float64)
    layer.needs_input_grad = False
    x = np.random.default_rng(0).standard_normal((6, 2, 8, 8))
    dy = np.ones((6, *layer.output_shape))
    layer.forward(x, training=True)
    assert layer.backward(dy) is None
    unsplit = layer.grads["weight"].copy()
    batchsplit.configure(2)
    layer.forward(x, training=True)
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.grads["weight"], unsplit, rtol=1e-12)


def test_small_calls_and_single_samples_are_not_split(monkeypatch):
    calls = []
    monkeypatch.setattr(batchsplit, "run", lambda n, work: calls.append(n))
    batchsplit.configure(2)
    conv = build({"type": "conv2d", "filters": 4, "kernel_size": 3}, (2, 8, 8), np.float32)
    conv.forward(np.zeros((4, 2, 8, 8), np.float32), training=False)  # 4*36*72 = 10k multiply-adds
    pool = build({"type": "max_pool2d", "pool_size": 2}, (2, 8, 8), np.float32)
    pool.forward(np.zeros((4, 2, 8, 8), np.float32), training=False)
    assert calls == []
    monkeypatch.setattr(batchsplit, "MIN_PRODUCT", 0)
    conv.forward(np.zeros((1, 2, 8, 8), np.float32), training=False)  # one sample: nothing to split
    assert calls == []
    conv.forward(np.zeros((2, 2, 8, 8), np.float32), training=False)
    assert calls == [2]


def test_on_follows_configure():
    """`on`, which layers test before calling worth_splitting, says parts() > 1 after every configure."""
    for count, on in [(2, True), (None, False), (3, True), (1, False)]:
        batchsplit.configure(count)
        assert batchsplit.on is on and (batchsplit.parts() > 1) is on


def test_bounds_cover_the_batch_in_order():
    batchsplit.configure(3)
    assert batchsplit.bounds(7) == [(0, 2), (2, 4), (4, 7)]
    assert batchsplit.bounds(2) == [(0, 1), (1, 2)]  # never an empty part
    assert batchsplit.bounds(10, 2) == [(0, 5), (5, 10)]


def test_run_waits_for_every_part_and_raises_their_error():
    batchsplit.configure(2)
    done = []

    def work(i, a, b):
        if i == 0:
            raise ValueError("part 0")
        done.append((a, b))

    with pytest.raises(ValueError, match="part 0"):
        batchsplit.run(4, work)
    assert done == [(2, 4)]
    assert batchsplit.run(4, lambda i, a, b: (i, a, b)) == [(0, 0, 2), (1, 2, 4)]


def network(layers, shape):
    net = Network([LAYERS.create(spec) for spec in layers])
    net.build(shape, np.random.default_rng(0), np.float32)
    return net


CNN = [
    {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "max_pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def blas_threads() -> int:
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")


def test_thread_control_splits_a_cnn_only_with_two_or_more_threads():
    cnn = network(CNN, (1, 28, 28))
    before = blas_threads()
    control = threads.ThreadControl(2, cnn, 64)
    assert control.splits
    choice = control.start()
    try:
        assert batchsplit.parts() == 2 and choice.split == 2 and choice.threads == 2
        assert blas_threads() == 1  # every GEMM on one thread while the Python threads split the batch
        assert control.choice.summary()["batch_split"] == 2
        control._apply(1)  # auto stepping down under load: no split, one BLAS thread
        assert batchsplit.parts() == 1 and choice.split is None and blas_threads() == 1
        control._apply(2)
        assert batchsplit.parts() == 2
    finally:
        control.stop()
    assert batchsplit.parts() == 1 and blas_threads() == before

    control = threads.ThreadControl(1, cnn, 64)
    control.start()
    try:
        assert batchsplit.parts() == 1 and "batch_split" not in control.choice.summary()
    finally:
        control.stop()


@pytest.mark.parametrize(
    "layers, shape, batch",
    [
        ([{"type": "dense", "units": 512}, {"type": "dense", "units": 10}], (784,), 128),  # an MLP
        (CNN, (1, 6, 6), 4),  # a CNN too small to gain from threads
        ([{"type": "gru", "units": 64}, {"type": "dense", "units": 10}], (40, 1), 100),  # a recurrent network
    ],
    ids=["mlp", "tiny-cnn", "gru"],
)
def test_thread_control_leaves_other_networks_unsplit(layers, shape, batch):
    net = network(layers, shape)
    control = threads.ThreadControl(2, net, batch)
    assert not control.splits
    control.start()
    try:
        assert batchsplit.parts() == 1 and blas_threads() == 2
    finally:
        control.stop()


def test_a_conv_inside_a_residual_block_counts():
    block = {
        "type": "residual",
        "layers": [{"type": "conv2d", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}],
    }
    net = network([block, {"type": "flatten"}, {"type": "dense", "units": 10}], (16, 14, 14))
    assert batchsplit.network_splits(net, 64)
    assert not batchsplit.network_splits(net, 1)  # 1 x 196 x 2304 = 0.45M multiply-adds: too small
