"""A trained run as one ONNX model: raw inputs in (as `nnctl predict` takes them), predictions out.

Graph: input (N, *raw shape) float32 -> float64 -> Playground features (x1, x2 -> sin_x1 ...) -> the
stored input normalization -> float32 -> the network's layers (eval mode) -> outputs:

- classification: `logits` (N, K) (the network's raw scores; (N, 1) for a one-logit binary loss),
  `probabilities` (N, K) as the loss turns scores into probabilities, `class_index` (N,) int64;
- regression: `output` (N, T) (the network's output, normalized target units) and `values` (N, T)
  float64 in the data's original units (the stored target normalization undone), as `nnctl predict` prints;
- multilabel (a table's 0/1 label columns): `logits` (N, L), `probabilities` (N, L) each label's own, `labels`
  (N, L) int64 0/1.

A table run (typed columns) instead takes one (N, 1) input per raw column, numbers as float64 and text as
strings, encoded in the graph as nnctl/data/tabular.py does (nnctl/export/table.py).

Features and normalization run in float64 as in nnctl (which computes them in float64 and only then
casts to the network's float32). The batch axis is dynamic. Class names, feature and input column
names, the task, the resolved config and the nnctl version are the model's metadata_props.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.export.graph import DEFAULT_OPSET, Graph
from nnctl.export.registry import ExportError, export_layer, exporter_for

PLAYGROUND_INPUTS = ["x1", "x2"]
CHECKPOINTS = ("best", "last")


def open_experiment(run_dir: str | Path, checkpoint: str = "best", allow_plugins: bool = False):
    """The run's experiment with the checkpoint's weights: the one place export and its checks reopen a run."""
    from nnctl.runs.reopen import open_run

    if checkpoint not in CHECKPOINTS:
        raise ExportError(f"--checkpoint must be best or last, got '{checkpoint}'.")
    return open_run(run_dir, checkpoint, allow_plugins).experiment()


def is_playground(config) -> bool:
    """Whether the data source is a TensorFlow Playground one (raw inputs are the points x1, x2)."""
    from nnctl import registry
    from nnctl.data.sources import _Playground

    component = registry.DATA_SOURCES.get(config.data.source.type).component
    return isinstance(component, type) and issubclass(component, _Playground)


# --- the network part ------------------------------------------------------------------------------------


def _config_path(prefix: str) -> str:
    """'3.layers.1.' -> 'model.layers[3].layers[1]'."""
    parts = prefix.rstrip(".").split(".")
    text = f"model.layers[{parts[0]}]"
    for i in range(1, len(parts) - 1, 2):
        text += f".{parts[i]}[{parts[i + 1]}]" if parts[i + 1].isdigit() else f".{parts[i]}"
    if len(parts) % 2 == 0:
        text += f".{parts[-1]}"
    return text


def check_exportable(network) -> None:
    """ExportError naming every layer (by config path) that has no exporter, before any graph is built."""
    missing = [(prefix, layer.name) for prefix, layer in network.all_layers() if exporter_for(layer.name) is None]
    if missing:
        listed = ", ".join(f"{_config_path(p)} ({name})" for p, name in missing)
        names = sorted({name for _, name in missing})
        raise ExportError(
            f"cannot export to ONNX: no exporter for layer(s) {listed}. A plugin layer can register one with "
            f"@nnctl.export.register_exporter('{names[0]}') in its module (see nnctl/export/registry.py)."
        )


def network_graph(network, g: Graph, x: str) -> str:
    """Add every layer of `network` (eval mode) after tensor `x`; returns the output tensor's name."""
    check_exportable(network)
    for i, layer in enumerate(network.layers):
        x = export_layer(layer, g, x, str(i))
    return x


# --- inputs: Playground features and normalization --------------------------------------------------------


def _playground_features(g: Graph, points: str, names: list[str]) -> str:
    x1 = g.op(
        "Slice",
        [points, g.const([0], "s0", np.int64), g.const([1], "e0", np.int64), g.const([1], "ax", np.int64)],
        "x1",
    )
    x2 = g.op(
        "Slice",
        [points, g.const([1], "s1", np.int64), g.const([2], "e1", np.int64), g.const([1], "ax", np.int64)],
        "x2",
    )
    build = {  # nnctl/data/features.py, term by term
        "x1": lambda: x1,
        "x2": lambda: x2,
        "x1_squared": lambda: g.op("Mul", [x1, x1], "x1_squared"),
        "x2_squared": lambda: g.op("Mul", [x2, x2], "x2_squared"),
        "x1_x2": lambda: g.op("Mul", [x1, x2], "x1_x2"),
        "sin_x1": lambda: g.op("Sin", [x1], "sin_x1"),
        "sin_x2": lambda: g.op("Sin", [x2], "sin_x2"),
    }
    unknown = [n for n in names if n not in build]
    if unknown:
        raise ExportError(f"cannot export the Playground feature(s) {', '.join(unknown)}.")
    columns = [build[n]() for n in names]
    return g.op("Concat", columns, "features", axis=1) if len(columns) > 1 else columns[0]


def _normalize(g: Graph, x: str, normalizer) -> str:
    if normalizer.method == "none":
        return x
    shift = g.const(np.asarray(normalizer.shift, dtype=np.float64), "norm_shift", np.float64)
    scale = g.const(np.asarray(normalizer.scale, dtype=np.float64), "norm_scale", np.float64)
    return g.op("Div", [g.op("Sub", [x, shift], "centred"), scale], "normalized")


# --- outputs per loss ---------------------------------------------------------------------------------------


def _softmax_head(loss, g: Graph, z: str) -> dict[str, str]:
    return {
        "probabilities": g.op("Softmax", [z], "probabilities", axis=1),
        "class_index": g.op("ArgMax", [z], "class_index", axis=1, keepdims=0),  # first maximum, as np.argmax
    }


def _binary_head(scale: float):
    """p1 = 0.5 tanh(scale * z) + 0.5 (a sigmoid for scale 0.5), probabilities [1 - p1, p1], class z > 0."""

    def head(loss, g: Graph, z: str) -> dict[str, str]:
        t = g.op("Tanh", [g.op("Mul", [g.const(scale, "scale"), z])], "t") if scale != 1 else g.op("Tanh", [z], "t")
        p1 = g.op("Add", [g.op("Mul", [g.const(0.5, "half"), t]), g.const(0.5, "half")], "p1")  # (N, 1)
        probs = g.op("Concat", [g.op("Sub", [g.const(1.0, "one"), p1], "p0"), p1], "probabilities", axis=1)
        positive = g.op("Greater", [z, g.const(0.0, "zero")], "positive")
        cls = g.reshape(g.cast(positive, np.int64, "class_bool"), [-1], "class_index")
        return {"probabilities": probs, "class_index": cls}

    return head


def _classification_head(loss) -> Any:
    name = loss.name
    if name == "cross_entropy":
        return _softmax_head
    if name == "binary_cross_entropy":
        return _binary_head(0.5)
    if name == "playground_mse" and getattr(loss, "output", None) == "tanh":
        return _binary_head(1.0)
    return None


@dataclass
class ExportResult:
    path: Path | None
    opset: int
    inputs: list[dict]
    outputs: list[dict]
    metadata: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0


def build_model(experiment, opset: int = DEFAULT_OPSET, run_name: str = "", checkpoint: str = "best"):
    """The ONNX ModelProto of an opened run (not yet checked or written)."""
    from nnctl import __version__

    table = getattr(experiment, "table", None)  # a table run: one input per raw column (nnctl/export/table.py)
    g = Graph(opset)
    onnx = g.onnx
    config = experiment.config
    playground = is_playground(config)
    raw_shape = (2,) if playground else tuple(experiment.network.input_shape)
    input_names = PLAYGROUND_INPUTS if playground else None
    if not playground and len(raw_shape) == 1 and len(experiment.feature_names) == raw_shape[0]:
        input_names = list(experiment.feature_names)
    if table is not None:
        input_names, raw_shape = table.input_names, (1,)
    task = experiment.task
    head = _classification_head(experiment.loss) if task == "classification" else None
    if task == "classification" and head is None:
        raise ExportError(
            f"cannot export the outputs of loss '{experiment.loss.name}': nnctl export knows cross_entropy, "
            "binary_cross_entropy and playground_mse (tanh) for classification."
        )
    check_exportable(experiment.network)

    g.scope = "input."
    if table is not None:
        from nnctl.export.table import table_features

        g.reserve(table.input_names)  # the graph's inputs are named by column: no tensor made here takes one
        graph_inputs, x = table_features(g, table)
    else:
        graph_inputs = [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", *raw_shape])]
        x = g.cast("input", np.float64, "raw")
    if playground:
        x = _playground_features(g, x, list(experiment.feature_names))
    x = _normalize(g, x, experiment.normalizer)
    g.scope = ""
    z = network_graph(experiment.network, g, g.cast(x, np.float32, "network_input"))

    outputs: dict[str, tuple[str, Any, list]] = {}  # name -> (tensor, element type, shape)
    out_shape = ["batch", *experiment.network.output_shape]
    if task == "classification":
        g.scope = "output."
        parts = head(experiment.loss, g, z)
        g.scope = ""
        k = experiment.num_classes
        outputs["logits"] = (z, onnx.TensorProto.FLOAT, out_shape)
        outputs["probabilities"] = (parts["probabilities"], onnx.TensorProto.FLOAT, ["batch", k])
        outputs["class_index"] = (parts["class_index"], onnx.TensorProto.INT64, ["batch"])
    elif task == "multilabel":  # a table's several 0/1 label columns, one logit each
        from nnctl.export.table import multilabel_outputs

        g.scope = "output."
        outputs.update(multilabel_outputs(g, z, out_shape))
        g.scope = ""
    else:
        target = experiment.target_normalizer
        g.scope = "output."
        values = g.op(
            "Add",
            [
                g.op("Mul", [g.cast(z, np.float64, "output64"), g.const(target.scale, "target_scale", np.float64)]),
                g.const(target.shift, "target_shift", np.float64),
            ],
            "values",
        )
        g.scope = ""
        outputs["output"] = (z, onnx.TensorProto.FLOAT, out_shape)
        outputs["values"] = (values, onnx.TensorProto.DOUBLE, out_shape)
    clash = [n for n in outputs if table is not None and n in table.input_names]
    if clash:
        raise ExportError(
            f"run {run_name or config.name}: its input column '{clash[0]}' has the name of an output of the exported "
            f"model ({', '.join(outputs)}); ONNX needs each name once: rename the column in the data (its header) "
            "and train again, or use nnctl predict / nnctl serve for this run."
        )
    for name, (tensor, _, _) in outputs.items():
        g.nodes.append(onnx.helper.make_node("Identity", [tensor], [name], name=f"{name}_identity"))

    graph = onnx.helper.make_graph(
        g.nodes,
        f"nnctl_{config.name}",
        graph_inputs,
        [onnx.helper.make_tensor_value_info(n, t, s) for n, (_, t, s) in outputs.items()],
        initializer=g.initializers,
    )
    from nnctl.export.table import ML_DOMAIN, ML_OPSET

    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)]
        + ([onnx.helper.make_opsetid(ML_DOMAIN, ML_OPSET)] if table is not None else []),
        producer_name="nnctl",
        producer_version=__version__,
        doc_string=f"nnctl run {run_name} ({checkpoint} checkpoint): {config.name}",
    )
    metadata = {
        "nnctl_version": __version__,
        "task": task,
        "run": run_name,
        "checkpoint": checkpoint,
        "input_names": json.dumps(input_names),
        "input_shape": json.dumps(list(raw_shape)),
        "feature_names": json.dumps(list(experiment.feature_names)),
        "class_names": json.dumps(list(experiment.class_names) if experiment.class_names else None),
        "target_names": json.dumps(list(experiment.target_names) if experiment.target_names else None),
        "config": json.dumps(config.model_dump(mode="json")),
    }
    if table is not None:  # each input column's type, imputation and levels
        metadata["columns"] = json.dumps(table.input_columns())
    onnx.helper.set_model_props(model, metadata)
    return model


def export_run(
    run_dir: str | Path,
    output: str | Path | None = None,
    checkpoint: str = "best",
    opset: int = DEFAULT_OPSET,
    allow_plugins: bool = False,
) -> ExportResult:
    """Export RUN to ONNX (default RUN/export/model-<checkpoint>.onnx), checked by onnx.checker, written atomically."""
    from nnctl.export.graph import _onnx
    from nnctl.runs.rundir import atomic_write

    onnx = _onnx()  # a clear message before anything is loaded when the extra is missing
    run_dir = Path(run_dir)
    experiment = open_experiment(run_dir, checkpoint, allow_plugins)
    model = build_model(experiment, opset, run_dir.name, checkpoint)
    onnx.checker.check_model(model, full_check=True)
    if output is None:
        from nnctl.runs.rundir import RunDir

        path = RunDir(run_dir).export_path(checkpoint)
    else:
        path = Path(output)
        if not path.parent.is_dir():
            raise ExportError(f"cannot write {path}: the folder {path.parent} does not exist.")
    data = model.SerializeToString()
    atomic_write(path, data)
    return ExportResult(
        path=path,
        opset=opset,
        inputs=[_describe(v) for v in model.graph.input],
        outputs=[_describe(v) for v in model.graph.output],
        metadata={p.key: p.value for p in model.metadata_props if p.key != "config"},
        size_bytes=len(data),
    )


def _describe(value) -> dict:
    from onnx import TensorProto, helper

    t = value.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    dtype = "string" if t.elem_type == TensorProto.STRING else helper.tensor_dtype_to_np_dtype(t.elem_type).name
    return {"name": value.name, "dtype": dtype, "shape": dims}


def network_model(network, opset: int = DEFAULT_OPSET):
    """The network alone as an ONNX model: input `x` (N, *input shape) float32, output `y`; for tests and checks."""
    g = Graph(opset)
    onnx = g.onnx
    y = network_graph(network, g, "x")
    g.nodes.append(onnx.helper.make_node("Identity", [y], ["y"], name="y_identity"))
    graph = onnx.helper.make_graph(
        g.nodes,
        "nnctl_network",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", *network.input_shape])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", *network.output_shape])],
        initializer=g.initializers,
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="nnctl")
