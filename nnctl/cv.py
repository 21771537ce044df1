"""k-fold cross-validation: `nnctl cv CONFIG --folds 5 [--repeats R] [--parallel N]`.

Each fold is a normal run whose config says which fold it is (`data.split.folds/fold/repeat`): the
config's train and val rows are pooled and cut into stratified folds (from the seed and the
repeat), one fold validates, the others train, and the test split stays untouched. So `nnctl
eval`, `predict` and `train` work on a fold's run directory as on any run. The folds live under
one folder with the summary:

    runs/<name>/cv-<stamp>-<id>/
      fold-0/ ... fold-4/        (repeat-1-fold-0/ ... with --repeats 2)
      folds.csv                  one row per fold: status, epochs, val_<metric>, test_<metric>
      summary.json               mean and std (numpy's, ddof 0) per metric, the folds, the command's settings
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.train import crossval
from nnctl.train.crossval import fold_name, fold_overrides


@dataclass
class CvResult:
    path: Path
    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"cv_dir": str(self.path), **self.settings, "mean": self.mean, "std": self.std, "folds": self.folds}


def run_cv(
    config_path: str | Path,
    overrides: list[str] | None = None,
    folds: int = 5,
    repeats: int = 1,
    parallel: int = 1,
    runs_dir: str | Path | None = None,
    on_fold=None,
    stop=None,
) -> CvResult:
    """Train every fold (in `parallel` worker processes), score each fold's last checkpoint on its
    validation fold (and on the test split when the config has one), and summarise.

    `stop` (a StopFlag set by Ctrl-C or SIGTERM) stops the running folds at their next step (they are
    recorded as interrupted), starts no more, and the summary says `status: interrupted`."""
    from nnctl.build import build_experiment
    from nnctl.config import config_lines, load_config, load_config_detailed

    if folds < 2:
        raise NnctlError(f"--folds must be at least 2, got {folds}.")
    if repeats < 1 or parallel < 1:
        raise NnctlError("--repeats and --parallel must be at least 1.")
    overrides = list(overrides or [])
    jobs = [(r, k) for r in range(repeats) for k in range(folds)]
    loaded = load_config_detailed(config_path, overrides + fold_overrides(folds, 0, 0))
    first = loaded.config
    with config_lines(loaded):  # an error about a config key (a column declaration) names its line
        build_experiment(first)  # every config and data error surfaces before a folder exists
    path = _create_cv_dir(Path(runs_dir or first.output.runs_dir) / first.name)
    tasks = [
        (str(config_path), overrides + fold_overrides(folds, k, r), str(path / fold_name(k, r, repeats)))
        for r, k in jobs
    ]
    records: list[dict[str, Any]] = []

    def stopped() -> bool:
        return stop is not None and stop.signum is not None

    if parallel == 1:
        for (r, k), task in zip(jobs, tasks, strict=True):
            if stopped():
                break
            records.append(
                {"repeat": r, "fold": k, **crossval.train_fold(load_config(task[0], task[1]), task[2], stop)}
            )
            if on_fold:
                on_fold(records[-1])
    else:
        from concurrent.futures import wait

        from nnctl.sweep.executors import ProcessExecutor

        executor = ProcessExecutor(min(parallel, len(tasks)), preload="nnctl.cv")
        try:
            futures = [executor.submit(train_fold, *task) for task in tasks]
            while not all(f.done() for f in futures):
                wait(futures, timeout=0.25)
                if stopped():
                    executor.stop_running()  # running folds stop at their next step
                    executor.shutdown(wait=True, cancel_futures=True)
                    break
            for (r, k), future in zip(jobs, futures, strict=True):
                if future.cancelled():
                    continue
                records.append({"repeat": r, "fold": k, **future.result()})
                if on_fold:
                    on_fold(records[-1])
        finally:
            executor.shutdown()
    mean, std = crossval.summarize([rec for rec in records if rec["status"] == "completed"])
    settings = {"config": str(config_path), "overrides": overrides, "folds": folds, "repeats": repeats}
    status = "interrupted" if stopped() else "completed"
    if status == "completed" and any(rec["status"] != "completed" for rec in records):
        status = "some_failed"  # a fold diverged
    settings["status"] = status
    result = CvResult(path, records, mean, std, settings)
    _write_summary(result)
    return result


def train_fold(config_path: str, overrides: list[str], path: str) -> dict[str, Any]:
    """One fold in a worker process: its config from the file and overrides, trained and scored; SIGTERM
    (the parent's stop_running) stops it at the next step."""
    import signal
    import threading

    from nnctl.config import load_config
    from nnctl.sweep import worker
    from nnctl.train.loop import StopFlag

    stop = StopFlag(signum=worker.terminated)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop._handle)
    return crossval.train_fold(load_config(config_path, overrides), path, stop)


def _create_cv_dir(parent: Path) -> Path:
    from nnctl.runs.files import new_stamped_folder

    return new_stamped_folder(parent, prefix="cv-")


def _write_summary(result: CvResult) -> None:
    from nnctl.runs.files import atomic_write

    metrics = list(result.mean)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["repeat", "fold", "status", "epochs", *metrics, "run_dir"])
    for rec in result.folds:
        values = [rec["metrics"].get(m, "") for m in metrics]
        writer.writerow([rec["repeat"], rec["fold"], rec["status"], rec["epochs"], *values, rec["run_dir"]])
    atomic_write(result.path / "folds.csv", buf.getvalue().encode("utf-8"))
    text = json.dumps(result.document(), indent=2, sort_keys=False) + "\n"
    atomic_write(result.path / "summary.json", text.encode("utf-8"))


def cv_table(result: CvResult):
    """A rich table: one row per fold, then mean ± std."""
    from rich.table import Table

    metrics = list(result.mean)
    table = Table(title=f"{len(result.folds)} fold run(s) in {result.path}")
    for col in ("repeat", "fold", "status", "epochs", *metrics):
        table.add_column(col, justify="right")
    for rec in result.folds:
        table.add_row(
            str(rec["repeat"]),
            str(rec["fold"]),
            rec["status"],
            str(rec["epochs"]),
            *(f"{rec['metrics'][m]:.4f}" if m in rec["metrics"] else "" for m in metrics),
        )
    table.add_row("", "mean ± std", "", "", *(f"{result.mean[m]:.4f} ± {result.std[m]:.4f}" for m in metrics))
    return table
