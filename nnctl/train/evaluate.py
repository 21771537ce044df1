"""Reopen a finished run: rebuild its experiment from the stored config and load a checkpoint."""

from __future__ import annotations

from pathlib import Path

from nnctl import registry
from nnctl.build import Experiment, build_experiment
from nnctl.config import validate
from nnctl.errors import NnctlError
from nnctl.runs.checkpoint import group, load_checkpoint
from nnctl.yamlio import read_yaml


def open_run(run_dir: str | Path, checkpoint: str = "best", allow_plugins: bool = False) -> Experiment:
    return restore_run(run_dir, checkpoint, allow_plugins)[0]


def restore_run(
    run_dir: str | Path, checkpoint: str = "best", allow_plugins: bool = False
) -> tuple[Experiment, dict, dict]:
    """(experiment with the checkpoint's weights and state, the checkpoint's arrays, its metadata)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NnctlError(f"run directory not found: {run_dir}")
    ckpt_path = run_dir / "checkpoints" / f"{checkpoint}.npz"
    if not ckpt_path.exists() and checkpoint == "best":
        ckpt_path = run_dir / "checkpoints" / "last.npz"  # a run without validation data has no best
    if not ckpt_path.exists():
        raise NnctlError(
            f"{run_dir} has no checkpoint '{checkpoint}' (looked for {ckpt_path}); did the run finish an epoch?"
        )
    arrays, meta = load_checkpoint(ckpt_path)

    raw, lines = read_yaml(run_dir / "config.yaml")
    plugins = (raw or {}).get("plugins") or []
    if plugins:
        if not allow_plugins:
            raise NnctlError(
                f"{run_dir} was trained with plugins {plugins}; importing them runs their code. "
                "Pass --allow-plugins if you trust them (they must be importable)."
            )
        registry.import_plugins(plugins)
    config = validate(raw, lines, source=str(run_dir / "config.yaml"))
    # The stored normalization statistics (not a refit), so eval sees exactly what training saw.
    stored = {prefix: group(arrays, prefix) for prefix in ("norm", "target_norm")}
    experiment = build_experiment(config, stored)
    experiment.network.load_params(group(arrays, "param"), source=str(ckpt_path))
    buffers = group(arrays, "buffer")
    if buffers or experiment.network.named_buffers():
        experiment.network.load_buffers(buffers, source=str(ckpt_path))
    return experiment, arrays, meta


def evaluate_run(
    run_dir: str | Path, split: str = "test", checkpoint: str = "best", allow_plugins: bool = False
) -> dict:
    return score_split(open_run(run_dir, checkpoint, allow_plugins), split)


def score_split(experiment: Experiment, split: str) -> dict:
    """{"split", "samples", "metrics"}; for classification also "classes", "confusion_matrix" (rows: true
    class, columns: predicted), "per_class" ({class: precision, recall, f1, support}) and "macro_avg"."""
    from nnctl.train.report import class_report

    n = len(experiment.splits[split])
    if n == 0:
        raise NnctlError(f"the {split} split of this run is empty (data.split.{split} is 0); choose another --split.")
    extra = []
    if experiment.task == "classification":
        from nnctl.train.metrics import ConfusionMatrix

        extra.append(ConfusionMatrix(experiment.num_classes))
    result = {"split": split, "samples": n, "metrics": experiment.evaluate(split, extra)}
    if extra:
        result.update(class_report(extra[0].result(), experiment.class_names))
    return result
