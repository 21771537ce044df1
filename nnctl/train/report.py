"""What `nnctl eval` adds for classification: per-class scores and the confusion matrix, as data,
as files in the run directory (eval/<split>-<checkpoint>.json, eval/<split>-<checkpoint>-confusion.csv)
and as tables."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.metrics import per_class, present_classes


def class_names_or_indices(class_names: list[str] | None, k: int) -> list[str]:
    return list(class_names) if class_names else [str(i) for i in range(k)]


def class_report(counts: np.ndarray, class_names: list[str] | None) -> dict[str, Any]:
    """{"classes", "confusion_matrix" (list of rows: true class; columns: predicted),
    "per_class" {name: {precision, recall, f1, support}}, "macro_avg" {precision, recall, f1}}."""
    names = class_names_or_indices(class_names, len(counts))
    scores = per_class(counts)
    present = present_classes(counts)
    return {
        "classes": names,
        "confusion_matrix": np.asarray(counts).astype(int).tolist(),
        "per_class": {
            name: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(names)
        },
        "macro_avg": {
            part: float(np.mean(scores[part][present])) if present.any() else float("nan")
            for part in ("precision", "recall", "f1")
        },
    }


def confusion_csv(classes: list[str], matrix: list[list[int]]) -> str:
    """Rows are true classes, columns predicted classes; the corner cell says so."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, matrix, strict=True):
        writer.writerow([name, *row])
    return buf.getvalue()


def save_eval(run_dir: str | Path, checkpoint: str, result: dict[str, Any]) -> list[Path]:
    """Write eval/<split>-<checkpoint>.json (and -confusion.csv for classification) atomically."""
    from nnctl.runs.files import atomic_write
    from nnctl.runs.rundir import RunDir

    run = RunDir(Path(run_dir))
    document = {"checkpoint": checkpoint, **result}
    written = [run.eval_path(result["split"], checkpoint)]
    atomic_write(written[0], (json.dumps(document, indent=2, allow_nan=True) + "\n").encode())
    if "confusion_matrix" in result:
        written.append(run.eval_path(result["split"], checkpoint, "-confusion.csv"))
        atomic_write(written[1], confusion_csv(result["classes"], result["confusion_matrix"]).encode())
    return written


def per_class_table(result: dict[str, Any]):
    from rich.table import Table

    table = Table(title="per class")
    table.add_column("class")
    for column in ("precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")
    for name, row in result["per_class"].items():
        table.add_row(name, *(f"{row[c]:.4f}" for c in ("precision", "recall", "f1")), str(row["support"]))
    macro = result["macro_avg"]
    total = sum(row["support"] for row in result["per_class"].values())
    table.add_row("macro avg", *(f"{macro[c]:.4f}" for c in ("precision", "recall", "f1")), str(total), style="bold")
    return table


def confusion_table(result: dict[str, Any]):
    from rich.table import Table

    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("true \\ predicted")
    for name in result["classes"]:
        table.add_column(name, justify="right")
    for name, row in zip(result["classes"], result["confusion_matrix"], strict=True):
        table.add_row(name, *(str(v) for v in row))
    return table
