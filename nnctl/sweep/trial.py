"""One trial, run where the executor puts it: build the experiment, train into a run directory under the
sweep folder, score the best checkpoint, and return a plain record (never raise for the trial's own
failures: a bad value, a divergence or an exception is the trial's result, not the sweep's)."""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from nnctl import registry
from nnctl.build import Experiment, build_experiment
from nnctl.config import validate
from nnctl.errors import NnctlError
from nnctl.runs.rundir import RunDir
from nnctl.sweep import worker
from nnctl.train.callbacks import Callback
from nnctl.train.trainer import StopFlag, train

PRUNED = -1  # StopFlag.signum for "stop: pruned" (a signal number is always positive)
FINAL = ("completed", "pruned", "diverged", "failed")  # statuses a resumed sweep does not run again


def run_trial(task: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    record: dict[str, Any] = {"trial": task["trial"], "status": "failed", "objective": None, "error": ""}
    if worker.terminated is not None:
        record.update(status="interrupted", error="stopped before it started")
        return record
    run: RunDir | None = None
    try:
        # The sweep file named these plugins (and a resumed sweep was allowed them): the runner checked.
        registry.import_plugins(task["config"].get("plugins") or [], task.get("base_dir"))
        config = validate(task["config"], source=f"trial {task['trial']}")
        if task["objective"].get("cv"):  # k folds under the trial's folder, scored by their mean
            _cross_validate_and_score(task, config, record)
            return _finish(record, started)
        experiment = build_experiment(config, device=trial_device(config))
        run = RunDir.create_at(Path(task["run_dir"]))  # the runner removed any leftover of an interrupted attempt
        _train_and_score(task, experiment, run, record)
    except NnctlError as exc:  # the trial's config or data does not work
        record["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - any bug in a trial is that trial's failure
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    if record["status"] == "failed" and run is not None:
        run.mark_failed(record["error"], only_if_running=True)
    return _finish(record, started)


def trial_device(config) -> str | None:
    """In a worker pinned to one GPU, a config's cuda is that GPU (the only one it sees: cuda:0); None
    (the config's own train.device) elsewhere."""
    if worker.pinned_gpu is not None and config.train.device != "cpu":
        return "cuda:0"
    return None


def _finish(record: dict, started: float) -> dict:
    record["seconds"] = round(time.time() - started, 3)
    return record


def _cross_validate_and_score(task: dict, config, record: dict) -> None:
    """objective.cv: every fold in turn (nnctl.train.crossval); the objective is the mean over the folds.
    The trial's folder holds the folds and the trial's config.yaml (what best.yaml copies)."""
    from nnctl.config import dump_config
    from nnctl.train.crossval import cross_validate

    objective = task["objective"]
    stop = StopFlag(signum=worker.terminated)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop._handle) if in_main else None
    try:
        result = cross_validate(task["config"], objective["cv"], task["run_dir"], stop)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    RunDir(Path(task["run_dir"])).write_config(dump_config(config))
    record.update(epochs=sum(f["epochs"] for f in result["folds"]), curve=[], folds=result["folds"])
    if result["status"] != "completed":
        record.update(status=result["status"], error=f"a fold ended {result['status']}")
        return
    metrics: dict[str, dict[str, float]] = {}
    for key, value in result["mean"].items():
        split, _, name = key.partition("_")
        metrics.setdefault(split, {})[name] = value
    record.update(status="completed", metrics=metrics)
    value = metrics.get("val", {}).get(objective["metric"])
    if value is None:
        record.update(status="failed", error=f"objective {objective['metric']} is not reported by the folds")
    else:
        record["objective"] = float(value)


def _train_and_score(task: dict, experiment: Experiment, run: RunDir, record: dict) -> None:
    objective = task["objective"]
    stop = StopFlag(signum=worker.terminated)
    curve = TrialCurve(objective["column"], stop, _pruner(task))
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop._handle) if in_main else None  # Dask runs tasks in threads
    try:
        result = train(experiment, run, stop=stop, callbacks=[curve])
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    record.update(epochs=result.epochs, curve=curve.curve)
    if result.status == "interrupted":
        record["status"] = "pruned" if stop.signum == PRUNED else "interrupted"
        if record["status"] == "interrupted":
            record["error"] = "stopped by the sweep being interrupted"
            return
    elif result.status == "diverged":
        record.update(status="diverged", error=f"training diverged (NaN/Inf loss) in epoch {result.epochs + 1}")
        return
    else:
        record["status"] = "completed"
    record["metrics"] = score(experiment, run, objective["split"])
    value = record["metrics"].get(objective["split"], {}).get(objective["metric"])
    if value is None:
        known = ", ".join(record["metrics"].get(objective["split"], {})) or "none (empty split)"
        record.update(
            status="failed",
            error=f"objective {objective['metric']} on {objective['split']} is not reported; has: {known}",
        )
    else:
        record["objective"] = float(value)


def score(experiment: Experiment, run: RunDir, objective_split: str) -> dict[str, dict[str, float]]:
    """Metrics of the best checkpoint (as `nnctl eval` scores it) on val, test and the objective's split."""
    run.load_checkpoint("best").apply(experiment.network)
    splits = dict.fromkeys(["val", "test", objective_split])
    return {s: _floats(experiment.evaluate(s)) for s in splits if len(experiment.splits[s])}


def _floats(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


class TrialCurve(Callback):
    """Collects the per-epoch objective; asks the pruner whether to stop, and stops through the StopFlag."""

    def __init__(self, column: str, stop: StopFlag, pruner=None):
        self.column, self.stop, self.pruner = column, stop, pruner
        self.curve: list[float | None] = []

    def on_epoch_end(self, loop, row: dict[str, Any]) -> None:
        value = row.get(self.column)
        self.curve.append(float(value) if value is not None else None)
        if self.pruner is not None and value is not None and math.isfinite(value):
            if self.pruner.should_prune(row["epoch"], float(value)):
                self.stop.signum = PRUNED  # the loop stops after this epoch and the run says `interrupted`


class MedianPruner:
    """Optuna's median rule against the trials that had completed when this one was proposed."""

    def __init__(self, direction: str, warmup_epochs: int, startup_trials: int, history: list[dict]):
        from nnctl.sweep.strategies import require_optuna

        optuna = require_optuna()
        pruner = optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
        study = optuna.create_study(direction="maximize" if direction == "max" else "minimize", pruner=pruner)
        for past in history:
            curve = {i + 1: v for i, v in enumerate(past["curve"]) if v is not None and math.isfinite(v)}
            study.add_trial(
                optuna.trial.create_trial(
                    state=optuna.trial.TrialState.COMPLETE, value=past["objective"], intermediate_values=curve
                )
            )
        self.trial = study.ask()

    def should_prune(self, epoch: int, value: float) -> bool:
        self.trial.report(value, epoch)
        return self.trial.should_prune()


def _pruner(task: dict) -> MedianPruner | None:
    pruning = task.get("pruning")
    if not pruning:
        return None
    return MedianPruner(task["direction"], pruning["warmup_epochs"], pruning["startup_trials"], task["history"])
