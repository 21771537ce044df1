"""A table run's column encoding in the ONNX graph: raw columns in, the encoded float64 features out.

One graph input per raw column, shape (N, 1), in the order `nnctl predict` reads them:

    numeric    tensor(double): blank is NaN (so is +-inf, as nnctl reads them); the fitted fill replaces it
    binary     tensor(string): true/false, yes/no, t/f, y/n, 1/0 in any letter case -> 1/0; "" is blank
    category   tensor(string): ai.onnx.ml LabelEncoder level -> index (sorted training levels, `other` last, which
               also takes rare and unseen levels); "" is blank and takes the fill level; then a one-hot
               Equal against 0..levels, or (encoding: embedding) the index itself, after every other feature

then the `_missing` indicators where declared, exactly as nnctl/data/tabular.py encodes. What nnctl turns into an
error cannot be one inside a graph: a blank with no imputation stays NaN (a category: `other`), text that is
not binary is NaN, and unseen levels are not counted. Cells are compared as given; nnctl strips surrounding
spaces first, so a client should too.

Also the exporter of the `category_embedding` layer, which turns those id columns into vectors (Gather).
"""

from __future__ import annotations

import itertools

import numpy as np

from nnctl.export.graph import Graph
from nnctl.export.registry import register_exporter

ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 3  # LabelEncoder with keys_strings / values_int64s / values_floats and defaults


def _spellings(words) -> list[str]:
    """Every letter case of each word ('no' -> no, nO, No, NO): nnctl lower-cases binary cells."""
    out = []
    for word in sorted(words):
        options = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in word]
        out += ["".join(p) for p in itertools.product(*options)]
    return out


def column_inputs(table) -> list[tuple[str, str]]:
    """(column name, 'double' or 'string') for every graph input, in predict's column order."""
    return [(c.name, "double" if c.type == "numeric" else "string") for c in table.columns if c.type != "ignore"]


def table_features(g: Graph, table) -> tuple[list, str]:
    """(graph inputs, float64 features (N, F) in nnctl's encoding order) for a fitted TablePreprocessor."""
    from nnctl.data.tabular import FALSE_TEXT, TRUE_TEXT

    onnx = g.onnx
    inputs, parts, ids = [], [], []
    outer = g.scope
    for column in table.columns:
        if column.type == "ignore":
            continue
        x = column.name
        g.scope = f"{outer}{column.name}."
        if column.type == "numeric":
            inputs.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.DOUBLE, ["batch", 1]))
            missing = g.op("Or", [g.op("IsNaN", [x]), g.op("IsInf", [x])], "missing")
            value = x
        else:
            inputs.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.STRING, ["batch", 1]))
            blank = g.op(
                "LabelEncoder", [x], "blank", domain=ML_DOMAIN, keys_strings=[""], values_int64s=[1], default_int64=0
            )
            missing = g.cast(blank, np.bool_, "missing")
        if column.type == "binary":
            true, false = _spellings(TRUE_TEXT), _spellings(FALSE_TEXT)
            value = g.op(
                "LabelEncoder",
                [x],
                "binary",
                domain=ML_DOMAIN,
                keys_strings=true + false,
                values_floats=[1.0] * len(true) + [0.0] * len(false),
                default_float=float("nan"),
            )
            value = g.cast(value, np.float64, "value")
        if column.type in ("numeric", "binary"):
            if column.fill is not None:
                value = g.op("Where", [missing, g.const([column.fill], "fill", np.float64), value], "filled")
            parts.append(value)
        else:  # category
            levels = list(column.levels)
            keys, codes = levels, list(range(len(levels)))
            if column.fill is not None:  # a blank takes the fill level ('other' when the fill is a rare level)
                keys, codes = keys + [""], codes + [levels.index(column.fill) if column.fill in levels else len(levels)]
            code = g.op(
                "LabelEncoder",
                [x],
                "code",
                domain=ML_DOMAIN,
                keys_strings=keys,
                values_int64s=codes,
                default_int64=len(levels),  # other: rare and unseen levels
            )
            if column.embedded:
                ids.append(g.cast(code, np.float64, "id"))
            else:
                slots = g.const(np.arange(len(levels) + 1), "slots", np.int64)
                parts.append(g.cast(g.op("Equal", [code, slots], "is_level"), np.float64, "onehot"))
        if column.indicator:
            parts.append(g.cast(missing, np.float64, "indicator"))
    g.scope = outer
    parts += ids
    features = g.op("Concat", parts, "features", axis=1) if len(parts) > 1 else parts[0]
    return inputs, features


def table_feed(table, cells: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The graph's inputs for raw text cells (N, C) with column `names`: numbers as float64 (NaN for a blank or a
    value that is not finite), the rest as stripped text; what a client gives the exported model."""
    from nnctl.data.tabular import _parse_numbers

    index = {n: j for j, n in enumerate(names)}
    feed = {}
    for name, kind in column_inputs(table):
        text = np.char.strip(np.asarray(cells)[:, index[name]].astype(str))
        feed[name] = (_parse_numbers(text)[0] if kind == "double" else text.astype(object)).reshape(-1, 1)
    return feed


def multilabel_outputs(g: Graph, z: str, shape: list) -> dict[str, tuple[str, int, list]]:
    """A multilabel run's outputs: logits (N, L), each label's probability 0.5 tanh(z / 2) + 0.5 (the sigmoid as
    binary_cross_entropy computes it) and the 0/1 labels z > 0, as `nnctl predict` prints them."""
    half = g.const(0.5, "half")
    p = g.op("Add", [g.op("Mul", [half, g.op("Tanh", [g.op("Mul", [half, z])])]), half], "label_probabilities")
    labels = g.cast(g.op("Greater", [z, g.const(0.0, "zero")], "positive"), np.int64, "label_values")
    t = g.onnx.TensorProto
    return {"logits": (z, t.FLOAT, shape), "probabilities": (p, t.FLOAT, shape), "labels": (labels, t.INT64, shape)}


@register_exporter("category_embedding")
def _category_embedding(layer, g: Graph, x: str) -> str:
    """[x[:, :plain], weight_j[round(x[:, plain + j])] ...]; an id outside the table is an onnxruntime error."""
    parts = [g.slice_last(x, 0, layer.plain, "plain")] if layer.plain else []
    for j in range(len(layer.vocab_sizes)):
        column = g.slice_last(x, layer.plain + j, layer.plain + j + 1, f"id_{j}")
        ids = g.reshape(g.cast(g.op("Round", [column], "rounded"), np.int64, "ids"), [-1], "ids_flat")
        parts.append(g.op("Gather", [g.const(layer.params[f"weight_{j}"], f"weight_{j}"), ids], "embedded", axis=0))
    return g.op("Concat", parts, "joined", axis=1) if len(parts) > 1 else parts[0]
