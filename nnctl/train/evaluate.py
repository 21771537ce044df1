"""Score a trained run on one of its splits: `nnctl eval`, the Python API and sweep scoring."""

from __future__ import annotations

from pathlib import Path

from nnctl.build import Experiment
from nnctl.errors import NnctlError
from nnctl.runs.reopen import open_run


def evaluate_run(
    run_dir: str | Path, split: str = "test", checkpoint: str = "best", allow_plugins: bool = False, device: str = "cpu"
) -> dict:
    """Score a run's checkpoint on `split`, computing on `device` (the CPU unless asked)."""
    from nnctl.device import resolve_device

    on = resolve_device(device)  # a missing GPU is refused before anything is read
    return score_split(open_run(run_dir, checkpoint, allow_plugins).experiment(device=on), split)


def score_split(experiment: Experiment, split: str) -> dict:
    """{"split", "samples", "metrics"}; for classification also "classes", "confusion_matrix" (rows: true
    class, columns: predicted), "per_class" ({class: precision, recall, f1, support}) and "macro_avg"."""
    from nnctl.train.report import class_report

    n = len(experiment.splits[split])
    if n == 0:
        raise NnctlError(f"the {split} split of this run is empty (data.split.{split} is 0); choose another --split.")
    extra = []
    if experiment.task == "classification":
        from nnctl.metrics import ConfusionMatrix

        extra.append(ConfusionMatrix(experiment.num_classes, experiment.device))
    result = {"split": split, "samples": n, "metrics": experiment.evaluate(split, extra)}
    if extra:
        result.update(class_report(extra[0].result(), experiment.class_names))
    return result
