"""Recurrent layers, embedding and time-distributed dense: shapes, initialisation, and PyTorch parity.

Gradient checks live in the shared harness (tests/nn/test_gradients.py, LAYER_CASES).
"""

import numpy as np
import pytest

from nnctl.errors import ConfigError, DataError
from nnctl.nn import recurrent
from nnctl.nn.network import Network
from nnctl.registry import LAYERS


def build(spec, shape, dtype=np.float64, seed=0):
    layer = LAYERS.create(spec)
    layer.build(shape, np.random.default_rng(seed), dtype)
    return layer


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    "return_sequences, bidirectional, expect",
    [(False, False, (3,)), (True, False, (7, 3)), (False, True, (6,)), (True, True, (7, 6))],
    ids=["last", "sequences", "bi-last", "bi-sequences"],
)
def test_output_shapes(cell, return_sequences, bidirectional, expect):
    spec = {"type": cell, "units": 3, "return_sequences": return_sequences, "bidirectional": bidirectional}
    layer = build(spec, (7, 2))
    assert layer.output_shape == expect
    assert layer.forward(np.zeros((5, 7, 2)), training=False).shape == (5,) + expect


@pytest.mark.parametrize("shape, hint", [((7,), "embedding"), ((3, 4, 5), "(T, F)")])
def test_recurrent_input_shape_errors(shape, hint):
    with pytest.raises(ConfigError, match=hint):
        build({"type": "gru", "units": 3}, shape)


def test_initialisation_orthogonal_recurrent_blocks_and_forget_bias():
    lstm = build({"type": "lstm", "units": 5}, (4, 2))
    w = lstm.params["weight_hh"]
    for k in range(4):
        block = w[:, 5 * k : 5 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-12)
    np.testing.assert_array_equal(lstm.params["bias"][5:10], 1.0)  # forget gate
    np.testing.assert_array_equal(np.delete(lstm.params["bias"], np.s_[5:10]), 0.0)
    assert build({"type": "lstm", "units": 2, "forget_bias": 0.0}, (3, 1)).params["bias"].sum() == 0


def test_eval_forward_equals_training_forward_and_does_not_break_pending_backward():
    layer = build({"type": "gru", "units": 4, "return_sequences": True, "bidirectional": True}, (6, 3))
    rng = np.random.default_rng(1)
    x, other = rng.standard_normal((5, 6, 3)), rng.standard_normal((2, 6, 3))
    dy = rng.standard_normal((5, 6, 8))
    y = layer.forward(x, training=True)
    layer.backward(dy)
    expected = {k: g.copy() for k, g in layer.grads.items()}
    np.testing.assert_array_equal(layer.forward(x, training=True), y)
    layer.forward(other, training=False)  # an evaluation in between (another batch size)
    layer.forward(x, training=False)
    layer.backward(dy)
    for key, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, expected[key], err_msg=key)


def test_reverse_direction_reads_the_sequence_backwards():
    # A bidirectional layer's backward half, fed the time-reversed input, equals a forward layer with its weights.
    bi = build({"type": "simple_rnn", "units": 3, "return_sequences": True, "bidirectional": True}, (5, 2))
    fw = build({"type": "simple_rnn", "units": 3, "return_sequences": True}, (5, 2))
    for key in ("weight_ih", "weight_hh", "bias"):
        fw.params[key][...] = bi.params[key + "_reverse"]
    x = np.random.default_rng(2).standard_normal((4, 5, 2))
    np.testing.assert_allclose(bi.forward(x, training=False)[:, ::-1, 3:], fw.forward(x[:, ::-1], training=False))


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_fused_directions_compute_what_separate_scans_do(monkeypatch, cell, return_sequences):
    # A small bidirectional layer scans both directions in one block product per step; the per-direction
    # scans of larger layers must give the same outputs and gradients (torch parity covers the fused one).
    spec = {"type": cell, "units": 3, "return_sequences": return_sequences, "bidirectional": True}
    fused = build(spec, (5, 2))
    monkeypatch.setattr(recurrent, "FUSE_UNITS", 0)
    separate = build(spec, (5, 2))
    assert len(fused.groups) == 1 and len(separate.groups) == 2
    rng = np.random.default_rng(4)
    for key, value in fused.params.items():  # random biases too, so every parameter's role is tested
        value[...] = separate.params[key][...] = rng.uniform(-0.5, 0.5, value.shape)
    x = rng.standard_normal((4, 5, 2))
    y = fused.forward(x, training=True)
    np.testing.assert_allclose(y, separate.forward(x, training=True), rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(fused.backward(dy), separate.backward(dy), rtol=1e-12, atol=1e-14)
    for key, grad in fused.grads.items():
        np.testing.assert_allclose(grad, separate.grads[key], rtol=1e-12, atol=1e-14, err_msg=key)


def test_network_of_recurrent_layers_uses_flat_buffers():
    layers = [
        LAYERS.create({"type": "embedding", "vocab_size": 6, "dim": 4}),
        LAYERS.create({"type": "lstm", "units": 5, "return_sequences": True, "bidirectional": True}),
        LAYERS.create({"type": "time_distributed_dense", "units": 3, "activation": "relu"}),
        LAYERS.create({"type": "gru", "units": 2}),
    ]
    net = Network(layers).build((7,), np.random.default_rng(0), np.float32)
    assert net.output_shape == (2,)
    assert "1.weight_hh_reverse" in net.param_slices and "3.bias_hn" in net.param_slices
    x = np.random.default_rng(1).integers(0, 6, (3, 7)).astype(np.float32)
    out = net.forward(x, training=True)
    net.backward(np.ones_like(out))
    assert out.dtype == np.float32 and np.abs(net.flat_grads).sum() > 0
    for layer in layers:
        for key, grad in layer.grads.items():
            assert np.shares_memory(grad, net.flat_grads), key


# --- embedding and time-distributed dense ---------------------------------------------------


def test_embedding_looks_up_rows_and_sums_gradients_of_repeated_ids():
    emb = build({"type": "embedding", "vocab_size": 5, "dim": 3}, (4,))
    ids = np.array([[1, 1, 4, 0], [4, 1, 2, 2]], dtype=np.float64)
    y = emb.forward(ids, training=True)
    np.testing.assert_array_equal(y, emb.params["weight"][ids.astype(int)])
    dy = np.random.default_rng(0).standard_normal(y.shape)
    emb.backward(dy)
    expected = np.zeros((5, 3))
    np.add.at(expected, ids.astype(int).ravel(), dy.reshape(-1, 3))  # the slow reference
    np.testing.assert_allclose(emb.grads["weight"], expected)
    assert not emb.grads["weight"][3].any()  # id 3 unused


@pytest.mark.parametrize("bad", [7.0, -1.0, 2.5])
def test_embedding_rejects_ids_that_are_not_tokens(bad):
    emb = build({"type": "embedding", "vocab_size": 7, "dim": 2}, (3,))
    with pytest.raises(DataError, match="normalize: none"):
        emb.forward(np.array([[0.0, bad, 1.0]]), training=False)


def test_time_distributed_dense_applies_one_dense_at_every_step():
    td = build({"type": "time_distributed_dense", "units": 4, "activation": "tanh"}, (6, 3))
    dense = build({"type": "dense", "units": 4, "activation": "tanh"}, (3,))
    dense.params["weight"][...] = td.params["weight"]
    dense.params["bias"][...] = td.params["bias"]
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    y = td.forward(x, training=False)
    assert y.shape == (2, 6, 4)
    np.testing.assert_allclose(y[:, 2], dense.forward(x[:, 2], training=False))
    with pytest.raises(ConfigError, match="dense"):
        build({"type": "time_distributed_dense", "units": 2}, (5,))


# --- parity with PyTorch (optional) ---------------------------------------------------------

TORCH_CLASS = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def to_torch(torch, layer, cell, features):
    """A torch module holding the nnctl layer's weights (float64)."""
    h = layer.units
    kwargs = {"nonlinearity": layer.activation} if cell == "simple_rnn" else {}
    module = getattr(torch.nn, TORCH_CLASS[cell])(
        features, h, batch_first=True, bidirectional=layer.bidirectional, **kwargs
    ).double()
    with torch.no_grad():
        for sfx, _ in layer.directions:
            p = layer.params
            getattr(module, f"weight_ih_l0{sfx}").copy_(torch.from_numpy(p["weight_ih" + sfx].T.copy()))
            getattr(module, f"weight_hh_l0{sfx}").copy_(torch.from_numpy(p["weight_hh" + sfx].T.copy()))
            getattr(module, f"bias_ih_l0{sfx}").copy_(torch.from_numpy(p["bias" + sfx].copy()))
            b_hh = np.zeros_like(p["bias" + sfx])
            if cell == "gru":  # nnctl: bias = b_ih + [b_hr, b_hz, 0], bias_hn = b_hn
                b_hh[2 * h :] = p["bias_hn" + sfx]
            getattr(module, f"bias_hh_l0{sfx}").copy_(torch.from_numpy(b_hh))
    return module


@pytest.mark.parametrize(
    "cell, extra", [("simple_rnn", {}), ("simple_rnn", {"activation": "relu"}), ("lstm", {}), ("gru", {})]
)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_matches_pytorch(cell, extra, return_sequences, bidirectional):
    torch = pytest.importorskip("torch")
    n, t, f, h = 3, 6, 4, 5
    spec = {"type": cell, "units": h, "return_sequences": return_sequences, "bidirectional": bidirectional, **extra}
    layer = build(spec, (t, f))
    rng = np.random.default_rng(3)
    for value in layer.params.values():  # random biases too, so every parameter's role is tested
        value[...] = rng.uniform(-0.5, 0.5, value.shape)
    module = to_torch(torch, layer, cell, f)
    x = rng.standard_normal((n, t, f))
    y = layer.forward(x, training=True)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out, h_n = module(xt)
    if cell == "lstm":
        h_n = h_n[0]
    yt = out if return_sequences else h_n.permute(1, 0, 2).reshape(n, -1)  # [forward final, backward final]
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)

    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for sfx, _ in layer.directions:
        g = {k: getattr(module, f"{k}_l0{sfx}").grad.numpy() for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        np.testing.assert_allclose(layer.grads["weight_ih" + sfx], g["weight_ih"].T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(layer.grads["weight_hh" + sfx], g["weight_hh"].T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(layer.grads["bias" + sfx], g["bias_ih"], rtol=1e-9, atol=1e-12)
        if cell == "gru":
            np.testing.assert_allclose(layer.grads["bias_hn" + sfx], g["bias_hh"][2 * h :], rtol=1e-9, atol=1e-12)
