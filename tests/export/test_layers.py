"""ONNX round trip of every registered layer in a random-weights harness: onnx.checker, onnxruntime vs nnctl.

Like the gradient-check harness: a layer cannot ship without a case here (test_every_layer_has_an_export_case),
and every case runs with all parameters random (biases, GRU's bias_hn, norm scales) and random running
statistics, so a swapped gate block or a missing bias shows.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.export import ExportError, exporter_for
from nnctl.nn.network import Network
from nnctl.registry import LAYERS

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'nnctl[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'nnctl[onnx]')")

from nnctl.export.graph import DEFAULT_OPSET, MIN_OPSET  # noqa: E402
from nnctl.export.onnx_model import network_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import nnctl_test_plugin  # noqa: E402, F401  (registers scaled_tanh and its exporter, as a config's plugins: would)

TOLERANCE = 1e-5
SEQ = [  # every recurrent mode: many-to-one / many-to-many, one or two directions, long enough to accumulate
    {},
    {"return_sequences": True},
    {"bidirectional": True},
    {"return_sequences": True, "bidirectional": True},
]

# name -> list of (constructor params, input shape without batch axis)
EXPORT_CASES = {
    "dense": [
        ({"units": 3}, (5,)),
        ({"units": 4, "activation": "gelu"}, (3,)),
        ({"units": 2, "use_bias": False}, (4,)),
    ],
    "linear": [({}, (5,))],
    "sigmoid": [({}, (5,))],
    "tanh": [({}, (5,))],
    "relu": [({}, (6,))],
    "leaky_relu": [({"alpha": 0.1}, (6,))],
    "elu": [({"alpha": 0.7}, (6,))],
    "gelu": [({}, (6,)), ({}, (2, 3, 3))],
    "softmax": [({}, (4,)), ({}, (3, 4))],
    "scaled_tanh": [({"init_scale": 1.5}, (5,))],  # tests/plugins/nnctl_test_plugin.py registers its exporter
    "simple_rnn": [({"units": 3, **m}, (9, 2)) for m in SEQ] + [({"units": 3, "activation": "relu"}, (6, 2))],
    "lstm": [({"units": 3, **m}, (9, 2)) for m in SEQ],
    "gru": [({"units": 3, **m}, (9, 2)) for m in SEQ],
    "embedding": [({"vocab_size": 7, "dim": 3}, (5,))],
    # a table's encoding: embedding columns: numbers, then one id column each (and ids alone)
    "category_embedding": [({"vocab_sizes": [4, 3], "dims": [2, 3]}, (5,)), ({"vocab_sizes": [6], "dims": [2]}, (1,))],
    "time_distributed_dense": [({"units": 3, "activation": "tanh"}, (4, 2)), ({"units": 2}, (3, 4))],
    "dropout": [({"rate": 0.3}, (6,)), ({"rate": 0.5}, (2, 3, 3))],
    "gaussian_noise": [({"std": 0.5}, (6,))],
    "polynomial": [({"degree": 3}, (2,)), ({"degree": 1}, (3,))],
    "batch_norm": [({}, (5,)), ({}, (3, 4)), ({"momentum": 0.5}, (2, 3, 3))],
    "batch_renorm": [({"r_max": 2.0, "d_max": 0.5}, (5,)), ({}, (2, 3, 3))],
    "layer_norm": [({}, (5,)), ({}, (3, 4)), ({"eps": 1e-3}, (2, 3, 3))],
    "instance_norm": [({}, (3, 4)), ({}, (2, 3, 3))],
    "group_norm": [
        ({"groups": 2}, (6,)),
        ({"groups": 2}, (4, 3)),
        ({"groups": 1}, (2, 3, 3)),
        ({"groups": 3}, (3, 2, 2)),
    ],
    "conv2d": [
        ({"filters": 3, "kernel_size": 3}, (2, 6, 5)),
        ({"filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"}, (2, 7, 6)),  # asymmetric same pads
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
    "avg_pool2d": [({}, (2, 4, 4)), ({"pool_size": 2, "stride": 1}, (2, 4, 5)), ({"pool_size": 2}, (1, 5, 5))],
    "global_avg_pool2d": [({}, (3, 4, 5))],
    "max_pool1d": [({}, (2, 8)), ({"pool_size": 3, "stride": 2}, (2, 9))],
    "avg_pool1d": [({"pool_size": 3}, (2, 9)), ({"pool_size": 2, "stride": 1}, (2, 5))],
    "global_avg_pool1d": [({}, (3, 7))],
    "flatten": [({}, (2, 3, 4)), ({}, (5,))],
    "reshape": [({"shape": [2, -1]}, (8,)), ({"shape": [1, 3, 4]}, (12,))],
    "residual": [
        ({"layers": [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 4}]}, (4,)),
        ({"layers": [{"type": "dense", "units": 3, "activation": "tanh"}]}, (5,)),  # dense projection
        ({"layers": [{"type": "dense", "units": 5}], "projection": "always"}, (5,)),
        (
            {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"}]},
            (2, 4, 4),
        ),
        ({"layers": [{"type": "conv2d", "filters": 3, "kernel_size": 3, "stride": 2, "padding": "same"}]}, (2, 6, 6)),
        (
            {
                "layers": [
                    {
                        "type": "residual",
                        "layers": [{"type": "conv1d", "filters": 2, "kernel_size": 3, "padding": "same"}],
                    },
                    {"type": "batch_norm"},
                ]
            },
            (2, 6),
        ),
    ],
}


def _cases():
    for name, cases in EXPORT_CASES.items():
        for i, (params, shape) in enumerate(cases):
            yield pytest.param(name, params, shape, id=f"{name}-{i}")


def random_network(name, params, shape, seed=0):
    """A one-layer network with every parameter and running statistic random (float32)."""
    layer = LAYERS.create({"type": name, **params})
    network = Network([layer]).build(shape, np.random.default_rng(seed), np.float32)
    rng = np.random.default_rng(seed + 1)
    network.flat_params[...] = rng.normal(0.0, 0.6, network.flat_params.shape)
    if name == "scaled_tanh":
        np.abs(network.flat_params, out=network.flat_params)
        network.flat_params += 0.5  # scales stay away from 0
    for _, sub in network.all_layers():
        for key, value in sub.buffers.items():
            if key == "running_mean":
                value[...] = rng.normal(0.0, 1.0, value.shape)
            elif key == "running_var":
                value[...] = rng.uniform(0.3, 3.0, value.shape)
    return network


def inputs(network, n, seed=2):
    rng = np.random.default_rng(seed)
    layer = network.layers[0]
    if hasattr(layer, "example_input"):  # token ids
        return layer.example_input(n, rng)
    return (rng.standard_normal((n, *network.input_shape)) * 2 + 0.5).astype(np.float32)


def run_onnx(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def test_every_layer_has_an_export_case():
    assert sorted(LAYERS.names()) == sorted(EXPORT_CASES)


def test_every_layer_has_an_exporter():
    assert [name for name in LAYERS.names() if exporter_for(name) is None] == []


@pytest.mark.parametrize("name, params, shape", list(_cases()))
def test_layer_round_trip(name, params, shape):
    network = random_network(name, params, shape)
    model = network_model(network, DEFAULT_OPSET)
    onnx.checker.check_model(model, full_check=True)
    for n in (1, 7):  # the batch axis is dynamic
        x = inputs(network, n)
        want = network.forward(x, training=False)
        got = run_onnx(model, x)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.max(np.abs(got - want)) <= TOLERANCE, (name, params, np.max(np.abs(got - want)))


@pytest.mark.parametrize("opset", sorted({MIN_OPSET, 18, onnx.defs.onnx_opset_version()}))
@pytest.mark.parametrize("name", ["group_norm", "layer_norm", "instance_norm", "gru", "conv2d"])
def test_other_opsets(name, opset):
    """ReduceMean changed its axes from attribute to input at opset 18: both spellings, and the newest opset."""
    params, shape = EXPORT_CASES[name][-1]
    network = random_network(name, params, shape)
    model = network_model(network, opset)
    onnx.checker.check_model(model, full_check=True)
    x = inputs(network, 4)
    assert np.max(np.abs(run_onnx(model, x) - network.forward(x, training=False))) <= TOLERANCE


@pytest.mark.parametrize(
    "name, params, shape",
    [
        ("global_avg_pool1d", {}, (4, 96)),
        ("global_avg_pool2d", {}, (3, 9, 11)),
        ("avg_pool2d", {"pool_size": 3}, (2, 9, 9)),
        ("avg_pool1d", {"pool_size": 3, "stride": 1}, (3, 20)),
    ],
)
def test_averages_add_in_nnctl_order(name, params, shape):
    """Averages are exported as nnctl computes them (positions added one by one, then / P or * 1/k), so their
    outputs are bitwise nnctl's: GlobalAveragePool and AveragePool sum in other orders and divide, which
    moves the last bit of a large share of outputs. Inputs channels-last in memory, as a conv or pooling
    layer hands them on."""
    from nnctl.nn.conv import channels_first, channels_last

    network = random_network(name, params, shape)
    x = channels_first(np.ascontiguousarray(channels_last(inputs(network, 16) * 10)))
    got = run_onnx(network_model(network), np.ascontiguousarray(x))
    assert np.array_equal(got, network.forward(x, training=False))


def test_swapped_gate_order_would_be_caught():
    """The harness is sharp: exporting an LSTM with nnctl's gate order unchanged gives different outputs."""
    from nnctl.export import layers as exporters

    network = random_network("lstm", {"units": 3}, (9, 2))
    x = inputs(network, 4)
    saved = exporters._GATE_ORDER["lstm"]
    exporters._GATE_ORDER["lstm"] = [0, 1, 2, 3]
    try:
        wrong = run_onnx(network_model(network), x)
    finally:
        exporters._GATE_ORDER["lstm"] = saved
    assert np.max(np.abs(wrong - network.forward(x, training=False))) > 1e-2


def test_layer_without_exporter_is_named(monkeypatch):
    from nnctl.export import registry

    monkeypatch.delitem(registry._EXPORTERS, "scaled_tanh")
    network = Network(
        [
            LAYERS.create({"type": "dense", "units": 3}),
            LAYERS.create({"type": "residual", "layers": [{"type": "scaled_tanh"}]}),
        ]
    ).build((4,), np.random.default_rng(0), np.float32)
    with pytest.raises(
        ExportError, match=r"model.layers\[1\].layers\[0\] \(scaled_tanh\).*register_exporter\('scaled_tanh'\)"
    ):
        network_model(network)


def test_bad_opset_is_a_user_error():
    network = random_network("dense", {"units": 2}, (3,))
    with pytest.raises(ExportError, match="--opset must be between"):
        network_model(network, 7)
