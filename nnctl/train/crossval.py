"""One k-fold cross-validation, fold by fold: what `nnctl cv` runs in each worker and what a sweep trial
with `objective: {cv: K}` runs in order.

A fold is a normal run whose config says which fold it is (`data.split.folds/fold/repeat`; see
nnctl/data/split.py). It is scored with its *last* checkpoint on its held-out fold (and on the test
split when the config has one): best.npz is chosen by its score on that same fold, which would
flatter the cv score.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel


def fold_overrides(folds: int, fold: int, repeat: int) -> list[str]:
    return [f"data.split.folds={folds}", f"data.split.fold={fold}", f"data.split.repeat={repeat}"]


def fold_name(fold: int, repeat: int, repeats: int) -> str:
    return f"fold-{fold}" if repeats == 1 else f"repeat-{repeat}-fold-{fold}"


def train_fold(config: BaseModel, path: str | Path, stop=None) -> dict[str, Any]:
    """Train one fold's config into the new run directory `path`; its scores as {"val_<m>", "test_<m>"}."""
    from nnctl.build import build_experiment
    from nnctl.runs.rundir import RunDir
    from nnctl.train.evaluate import score_split
    from nnctl.train.trainer import train

    experiment = build_experiment(config)
    run = RunDir.create_at(Path(path))
    result = train(experiment, run, stop=stop)
    scores: dict[str, float] = {}
    if result.status == "completed":
        run.load_checkpoint("last").apply(experiment.network)
        for split in ("val", "test"):
            if len(experiment.splits[split]):
                for key, value in score_split(experiment, split)["metrics"].items():
                    scores[f"{split}_{key}"] = float(value)
    return {"run_dir": str(path), "status": result.status, "epochs": result.epochs, "metrics": scores}


def summarize(records: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, std) per metric over the folds that report it; std is numpy's (ddof 0)."""
    keys = sorted({k for rec in records for k in rec["metrics"]}, key=_column_order)
    mean, std = {}, {}
    for key in keys:
        values = np.array([rec["metrics"][key] for rec in records if key in rec["metrics"]], dtype=np.float64)
        mean[key], std[key] = float(values.mean()), float(values.std())
    return mean, std


def cross_validate(raw: dict, folds: int, path: str | Path, stop=None) -> dict[str, Any]:
    """Every fold of a config dict in turn under `path` (fold-0, fold-1 ...): {"folds", "mean", "std", "status"}."""
    from nnctl.config import validate

    records = []
    for k in range(folds):
        fold_raw = copy.deepcopy(raw)
        split = fold_raw.setdefault("data", {}).setdefault("split", {})
        split.update(folds=folds, fold=k, repeat=0)
        record = {"repeat": 0, "fold": k, **train_fold(validate(fold_raw), Path(path) / fold_name(k, 0, 1), stop)}
        records.append(record)
        if record["status"] != "completed":
            break
    mean, std = summarize(records)
    status = next((r["status"] for r in records if r["status"] != "completed"), "completed")
    return {"folds": records, "mean": mean, "std": std, "status": status}


def _column_order(key: str) -> tuple:
    split, _, name = key.partition("_")
    return (split != "val", name != "loss", name)
