"""Check an exported model against nnctl itself: onnxruntime vs the `nnctl predict` path on a split of the run's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnctl.export.registry import ExportError


def ort_session(model: str | Path | bytes):
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking an export needs onnxruntime: pip install 'nnctl[onnx]'.") from None
    options = onnxruntime.SessionOptions()
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def compare_run(
    run_dir: str | Path, model_path: str | Path, split: str = "test", checkpoint: str = "best", allow_plugins=False
) -> dict:
    """Feed the split's raw inputs (float32, as a client would; a table's columns by name) to onnxruntime and
    (float64, as `nnctl predict` reads a CSV) to nnctl; return the largest differences and the class agreement."""
    from nnctl.api import load_run

    run = load_run(run_dir, checkpoint, allow_plugins)
    raw, _ = run.data(split)
    if len(raw) == 0:
        raise ExportError(f"the {split} split of {run_dir} is empty; choose another split.")
    p = run.predictor
    out = p.outputs(p.from_array(raw, f"{split} split"))  # nnctl's network outputs (float32)
    session = ort_session(model_path)
    names = [o.name for o in session.get_outputs()]
    if p.table is not None:  # one input per raw column: numbers as float64, the rest as text
        from nnctl.export.table import table_feed

        feed = table_feed(p.table, raw, [c.name for c in p.table.columns])
    else:
        feed = {"input": raw.astype(np.float32)}
    got = dict(zip(names, session.run(names, feed), strict=True))
    result = {"split": split, "samples": int(len(raw)), "task": p.task}
    if p.task == "multilabel":
        result.update(_diff("logits", got["logits"], out))
        result["max_abs_diff_probabilities"] = float(np.max(np.abs(got["probabilities"] - p.probabilities(out))))
        labels = p.loss.predict(out)
        result["label_disagreements"] = int(np.sum(got["labels"] != labels))
    elif p.task == "classification":
        result.update(_diff("logits", got["logits"], out))
        result["max_abs_diff_probabilities"] = float(np.max(np.abs(got["probabilities"] - p.probabilities(out))))
        classes = p.loss.predict(out)
        result["class_disagreements"] = int(np.sum(got["class_index"] != classes))
        result["class_agreement"] = float(np.mean(got["class_index"] == classes))
    else:
        result.update(_diff("output", got["output"], out))
        values = p.labels(out).reshape(got["values"].shape)
        result["max_abs_diff_values"] = float(np.max(np.abs(got["values"] - values)))
        result["max_abs_values"] = float(np.max(np.abs(values)))
    return result


def _diff(name: str, got: np.ndarray, want: np.ndarray) -> dict:
    """Largest |difference|, the largest |value|, and the largest difference in units of float32 spacing (ulp)
    at each sample's largest |output|: accumulation order alone (onnxruntime's GEMMs vs OpenBLAS's) moves
    outputs by a few of those."""
    diff = np.abs(got.astype(np.float64) - want)
    rows = np.abs(want).reshape(len(want), -1).max(axis=1).astype(np.float32)  # each sample's largest |output|
    ulp = diff.reshape(len(diff), -1) / np.spacing(rows).astype(np.float64)[:, None]
    return {
        f"max_abs_diff_{name}": float(diff.max()),
        f"max_abs_{name}": float(np.abs(want).max()),
        f"max_ulp_diff_{name}": float(ulp.max()),
    }
