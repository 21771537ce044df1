"""ONNX exporters of the built-in layers, each the layer's eval-mode forward (see nnctl/nn/ for the math).

Tensors keep nnctl's layout at every layer boundary: (N, F) features, (N, C, L) signals, (N, C, H, W)
images (ONNX's own NCHW), (N, T, F) sequences. Weights are converted here from nnctl's storage
(dense (in, out); conv (*kernel, C_in, F); recurrent (in, gates * units) in PyTorch's gate order).
"""

from __future__ import annotations

import itertools

import numpy as np

from nnctl.export.graph import Graph
from nnctl.export.registry import export_layer, register_exporter

# --- dense, activations, identity layers ---------------------------------------------------------------


def _activation(layer, g: Graph, y: str) -> str:
    """The `activation:` shorthand of dense / conv / time_distributed_dense."""
    if layer.activation is None:
        return y
    return export_layer(layer.activation, g, y, "activation")


@register_exporter("dense")
@register_exporter("time_distributed_dense")
def _dense(layer, g: Graph, x: str) -> str:
    # MatMul broadcasts over leading axes: (N, F) and the time-distributed (N, T, F) alike.
    y = g.op("MatMul", [x, g.const(layer.params["weight"], "weight")], "matmul")
    if layer.use_bias:
        y = g.op("Add", [y, g.const(layer.params["bias"], "bias")], "dense")
    return _activation(layer, g, y)


@register_exporter("linear")
@register_exporter("dropout")  # inverted dropout: identity in eval
@register_exporter("gaussian_noise")  # identity in eval
def _identity(layer, g: Graph, x: str) -> str:
    return x


def _elementwise(op_type: str, **attrs):
    def export(layer, g: Graph, x: str) -> str:
        values = {k: (getattr(layer, v) if isinstance(v, str) else v) for k, v in attrs.items()}
        return g.op(op_type, [x], op_type.lower(), **values)

    return export


register_exporter("sigmoid")(_elementwise("Sigmoid"))
register_exporter("tanh")(_elementwise("Tanh"))
register_exporter("relu")(_elementwise("Relu"))
register_exporter("leaky_relu")(_elementwise("LeakyRelu", alpha="alpha"))
register_exporter("elu")(_elementwise("Elu", alpha="alpha"))
register_exporter("softmax")(_elementwise("Softmax", axis=-1))


@register_exporter("gelu")
def _gelu(layer, g: Graph, x: str) -> str:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), term by term in nnctl's order (any opset)."""
    cube = g.op("Mul", [g.op("Mul", [g.op("Mul", [g.const(0.044715, "k"), x]), x]), x], "cube")
    t = g.op("Tanh", [g.op("Mul", [g.const(np.sqrt(2.0 / np.pi), "c"), g.op("Add", [x, cube])])], "t")
    half_x = g.op("Mul", [g.const(0.5, "half"), x], "half_x")
    return g.op("Mul", [half_x, g.op("Add", [g.const(1.0, "one"), t])], "gelu")


# --- normalization -----------------------------------------------------------------------------------


def _channel_shape(layer, values: np.ndarray) -> np.ndarray:
    """A per-channel vector shaped (C, 1, ...) to broadcast against one channel-first sample."""
    return values.reshape((-1,) + (1,) * (len(layer.input_shape) - 1))


@register_exporter("batch_norm")
@register_exporter("batch_renorm")  # the same running-statistics formula in eval
def _batch_norm(layer, g: Graph, x: str) -> str:
    # Written out rather than BatchNormalization, which needs (N, C, ...) and computes in its own order:
    # (x - running_mean) * (1 / sqrt(running_var + eps)) * gamma + beta, as nnctl does.
    inv = 1 / np.sqrt(layer.buffers["running_var"] + layer.dtype.type(layer.eps))  # in the layer's dtype
    xhat = g.op(
        "Mul",
        [
            g.op("Sub", [x, g.const(_channel_shape(layer, layer.buffers["running_mean"]), "running_mean")]),
            g.const(_channel_shape(layer, inv), "inv_std"),
        ],
        "xhat",
    )
    return _affine(layer, g, xhat)


def _affine(layer, g: Graph, xhat: str) -> str:
    y = g.op("Mul", [xhat, g.const(_channel_shape(layer, layer.params["gamma"]), "gamma")], "scaled")
    return g.op("Add", [y, g.const(_channel_shape(layer, layer.params["beta"]), "beta")], "norm")


@register_exporter("group_norm")
@register_exporter("layer_norm")  # one group
@register_exporter("instance_norm")  # one group per channel
def _group_norm(layer, g: Graph, x: str) -> str:
    xg = g.reshape(x, [0, layer.g, -1], "groups")  # (N, G, C/G * S): a group's channels are contiguous
    xc = g.op("Sub", [xg, g.reduce_mean(xg, [2])], "centered")
    var = g.reduce_mean(g.op("Mul", [xc, xc], "squared"), [2], hint="var")
    std = g.op("Sqrt", [g.op("Add", [var, g.const(layer.eps, "eps")])], "std")
    inv = g.op("Div", [g.const(1.0, "one"), std], "inv_std")
    xhat = g.reshape(g.op("Mul", [xc, inv], "xhat"), [0, *layer.input_shape], "xhat_sample")
    return _affine(layer, g, xhat)


# --- convolution, pooling, shapes ----------------------------------------------------------------------


def _pads(layer) -> list[int]:
    """nnctl's ((before, after), ...) per spatial axis -> ONNX's [begins..., ends...]; `same` is explicit."""
    return [a for a, _ in layer.pads] + [b for _, b in layer.pads]


@register_exporter("conv1d")
@register_exporter("conv2d")
def _conv(layer, g: Graph, x: str) -> str:
    w = layer.params["weight"]  # (*kernel, C_in, F)
    w_onnx = np.transpose(w, (w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))  # (F, C_in, *kernel)
    inputs = [x, g.const(w_onnx, "weight")]
    if layer.use_bias:
        inputs.append(g.const(layer.params["bias"], "bias"))
    y = g.op(
        "Conv",
        inputs,
        "conv",
        kernel_shape=list(layer.kernel),
        strides=list(layer.stride),
        dilations=list(layer.dilation),
        pads=_pads(layer),
    )
    return _activation(layer, g, y)


@register_exporter("max_pool1d")
@register_exporter("max_pool2d")
def _max_pool(layer, g: Graph, x: str) -> str:
    # Windows that do not fit are dropped in nnctl: no padding, floor (ceil_mode 0).
    return g.op("MaxPool", [x], "max_pool", kernel_shape=list(layer.pool), strides=list(layer.stride))


@register_exporter("avg_pool1d")
@register_exporter("avg_pool2d")
def _avg_pool(layer, g: Graph, x: str) -> str:
    # As nnctl adds: the windows' elements offset by offset (strided slices, every window at once), then
    # times 1/k; AveragePool sums in its own order and divides by k, which moves last bits.
    dims = len(layer.pool)
    axes = g.const(list(range(2, dims + 2)), "axes")
    steps = g.const(list(layer.stride), "steps")
    y = None
    for offset in itertools.product(*(range(k) for k in layer.pool)):
        ends = [o + s * (n - 1) + 1 for o, s, n in zip(offset, layer.stride, layer.out_sizes, strict=True)]
        window = g.op("Slice", [x, g.const(list(offset), "starts"), g.const(ends, "ends"), axes, steps], "window")
        y = window if y is None else g.op("Add", [y, window], "window_sum")
    return g.op("Mul", [y, g.const(1.0 / int(np.prod(layer.pool)), "inv_size")], "avg_pool")


@register_exporter("global_avg_pool1d")
@register_exporter("global_avg_pool2d")
def _global_avg_pool(layer, g: Graph, x: str) -> str:
    # nnctl sums channels-last (N, P, C) over the positions one after another (the layout conv and pooling
    # layers hand on), then divides by P. A MatMul with ones adds in that order (x * 1 + sum rounds as the
    # sum alone); GlobalAveragePool sums in another order, which moved signals_conv1d's logits by 2 ulp.
    # The Reshape between MatMul and Div keeps onnxruntime from fusing them into sum * (1 / P).
    channels, positions = layer.input_shape[0], int(np.prod(layer.input_shape[1:]))
    flat = g.reshape(x, [0, channels, positions], "positions")  # (N, C, P)
    total = g.op("MatMul", [flat, g.const(np.ones((positions, 1)), "ones")], "sum")  # (N, C, 1)
    total = g.reshape(total, [0, channels], "sums")
    return g.op("Div", [total, g.const(float(positions), "positions")], "pooled")


@register_exporter("flatten")
def _flatten(layer, g: Graph, x: str) -> str:
    return g.op("Flatten", [x], "flatten", axis=1)  # C order over (C, H, W), as nnctl


@register_exporter("reshape")
def _reshape(layer, g: Graph, x: str) -> str:
    return g.reshape(x, [0, *layer.output_shape])


@register_exporter("residual")
def _residual(layer, g: Graph, x: str) -> str:
    h, projection = x, None
    for name, inner in layer.children():  # "layers.0", "layers.1", ..., then "projection" when there is one
        if name == "projection":
            projection = inner
        else:
            h = export_layer(inner, g, h, name)
    shortcut = export_layer(projection, g, x, "projection") if projection is not None else x
    return g.op("Add", [h, shortcut], "residual")


@register_exporter("polynomial")
def _polynomial(layer, g: Graph, x: str) -> str:
    powers = [x]
    for k in range(2, layer.degree + 1):
        powers.append(g.op("Mul", [powers[-1], x], f"x{k}"))  # x^k = x^(k-1) * x, as nnctl multiplies
    return g.op("Concat", powers, "powers", axis=1) if len(powers) > 1 else x


# --- sequences -----------------------------------------------------------------------------------------


@register_exporter("embedding")
def _embedding(layer, g: Graph, x: str) -> str:
    # Ids arrive as floats; Round is half-to-even like np.rint. Ids outside 0..vocab_size-1 are an
    # onnxruntime error (Gather), where nnctl raises a DataError naming the value.
    ids = g.op("Cast", [g.op("Round", [x], "rounded")], "ids", to=g.onnx.TensorProto.INT64)
    return g.op("Gather", [g.const(layer.params["weight"], "weight"), ids], "embedded", axis=0)  # (N, T, dim)


# nnctl's gate blocks (PyTorch's order) -> ONNX's order, as block indices into nnctl's layout.
_GATE_ORDER = {
    "simple_rnn": [0],
    "lstm": [0, 3, 1, 2],  # nnctl [i, f, g, o] -> ONNX [i, o, f, c]
    "gru": [1, 0, 2],  # nnctl [r, z, n] -> ONNX [z, r, h]
}
_OP = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _blocks(w: np.ndarray, order: list[int], units: int) -> np.ndarray:
    """Reorder the gate blocks of the last axis of (rows, gates * units)."""
    return np.concatenate([w[..., k * units : (k + 1) * units] for k in order], axis=-1)


@register_exporter("simple_rnn")
@register_exporter("lstm")
@register_exporter("gru")
def _recurrent(layer, g: Graph, x: str) -> str:
    kind, h = layer.name, layer.units
    order = _GATE_ORDER[kind]
    w, r, b = [], [], []
    for sfx, _ in layer.directions:
        w.append(_blocks(layer.params["weight_ih" + sfx], order, h).T)  # (G, F)
        r.append(_blocks(layer.params["weight_hh" + sfx], order, h).T)  # (G, H)
        wb = _blocks(layer.params["bias" + sfx], order, h)  # nnctl's one bias holds the input-side terms
        rb = np.zeros_like(wb)
        if kind == "gru":
            rb[2 * h :] = layer.params["bias_hn" + sfx]  # b_hn sits inside r * (h W_hn + b_hn): linear_before_reset
        b.append(np.concatenate([wb, rb]))
    directions = len(layer.directions)
    attrs = {"hidden_size": h, "direction": "bidirectional" if directions == 2 else "forward"}
    if kind == "simple_rnn":
        attrs["activations"] = [layer.activation.capitalize()] * directions  # Tanh / Relu
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    seq = g.op("Transpose", [x], "time_major", perm=[1, 0, 2])  # (T, N, F)
    inputs = [seq, g.const(np.stack(w), "W"), g.const(np.stack(r), "R"), g.const(np.stack(b), "B")]
    outputs = g.op(_OP[kind], inputs, kind, outputs=3 if kind == "lstm" else 2, **attrs)  # Y, Y_h (, Y_c)
    y, y_h = outputs[0], outputs[1]
    if layer.return_sequences:  # Y (T, D, N, H) -> (N, T, D, H) -> (N, T, D * H): [forward, backward] features
        return g.reshape(g.op("Transpose", [y], "batch_major", perm=[2, 0, 1, 3]), [0, 0, -1], "sequences")
    # Y_h (D, N, H): the forward state after t = T-1 and the backward one after t = 0, as nnctl
    return g.reshape(g.op("Transpose", [y_h], "final_major", perm=[1, 0, 2]), [0, -1], "final_state")
