"""MLflow tracking of a training run: the `mlflow` callback (extra `mlflow`: mlflow-skinny, the client).

    callbacks: [{type: mlflow}]                                  # file store <runs dir>/mlruns
    callbacks: [{type: mlflow, tracking_uri: "http://127.0.0.1:5000", experiment: spirals}]

Params: every scalar of the resolved config under its dotted key (`optimizer.lr`, `model.layers.0.units`);
metrics: every metrics.csv column per epoch (the epoch is the step); at the end the run directory
(config, metrics.csv, summary.json, model.txt, checkpoints) as artifacts and the status. The default
store is a local file store next to the run names (`<runs dir>/mlruns`; `mlflow ui --backend-store-uri
file:runs/mlruns`); MLflow 3 has put file stores in maintenance mode behind MLFLOW_ALLOW_FILE_STORE, which
this callback sets for file stores (a database store, sqlite:///..., needs the full mlflow package). A resumed nnctl run continues the same MLflow run (its id is callback state).

`MlflowWriter` does the work through `MlflowClient` (no global active run, so sweep workers in threads
do not share one) and knows nothing about the loop; it is tested on its own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from nnctl.errors import NnctlError
from nnctl.registry import CALLBACKS, Params
from nnctl.train.callbacks import Callback
from nnctl.train.logging_tb import flat_config, require

NOT_METRICS = ("epoch",)
STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}  # anything else (diverged, failed) -> FAILED
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def default_tracking_uri(run_dir: Path) -> str:
    """A file store in <runs dir>/mlruns: run_dir is <runs dir>/<name>/<stamp>."""
    return (Path(run_dir).resolve().parent.parent / "mlruns").as_uri()


class MlflowWriter:
    """start(run_dir, config) -> log_epoch(row) per epoch -> end(summary); `run_id` to continue a run."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, artifacts: bool = True):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.artifacts = artifacts
        self.client = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None

    def start(self, run_dir: str | Path, config: dict[str, Any], run_id: str | None = None) -> str:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise NnctlError("the mlflow callback needs MLflow: pip install 'nnctl[mlflow]'.") from None
        self.run_dir = Path(run_dir)
        uri = self.tracking_uri or default_tracking_uri(self.run_dir)
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps its file store in "maintenance mode" behind this opt-in; a local store that needs
            # no database (sqlite needs the full mlflow package) is what this callback promises by default.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is not None:  # a resumed nnctl run: the same MLflow run, back to RUNNING
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        name = self.experiment_name or str(config.get("name") or "nnctl")
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(name)
        tags = {"mlflow.runName": self.run_dir.name, "nnctl.run_dir": str(self.run_dir.resolve())}
        self.run_id = self.client.create_run(experiment_id, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flat_config(config, index=".{}").items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return self.run_id

    def log_epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        epoch = int(row["epoch"])
        stamp = _now_ms()
        metrics = [
            Metric(key, float(value), stamp, epoch)
            for key, value in row.items()
            if key not in NOT_METRICS and isinstance(value, (int, float)) and math.isfinite(value)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def end(self, summary: dict[str, Any]) -> None:
        if self.client is None:
            return
        if self.artifacts and self.run_dir is not None:
            # The finished run directory: the loop's own callbacks (final checkpoint, summary.json) end
            # before a config's callbacks do.
            self.client.log_artifacts(self.run_id, str(self.run_dir), artifact_path="run")
        status = STATUS.get(str(summary.get("status")), "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        self.client = None


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@CALLBACKS.register("mlflow")
class Mlflow(Callback):
    """MLflow tracking: config as params, metrics per epoch, the run directory as artifacts."""

    class Params(Params):
        tracking_uri: str | None = Field(
            None, description="Where to log (a file store path, http://host:port ...); null = <runs dir>/mlruns."
        )
        experiment: str | None = Field(None, description="MLflow experiment name; null = the config's name.")
        artifacts: bool = Field(True, description="Upload the run directory (checkpoints included) at the end.")

    def setup(self):
        # Checked when training builds the callback, not when a config validates (reopening needs no MLflow).
        require("mlflow", "the mlflow callback needs MLflow: pip install 'nnctl[mlflow]'.")
        self.writer = MlflowWriter(self.tracking_uri, self.experiment, self.artifacts)
        self.run_id: str | None = None

    def on_train_start(self, loop) -> None:
        if loop.run is not None:
            config = loop.experiment.config.model_dump(mode="json")
            self.run_id = self.writer.start(loop.run.path, config, self.run_id if loop.resumed else None)

    def on_epoch_end(self, loop, row) -> None:
        if self.writer.client is not None:
            self.writer.log_epoch(row)

    def on_train_end(self, loop) -> None:
        result = loop.result
        if result is None:
            self.writer.end({"status": "failed"})
            return
        summary = {"name": loop.experiment.config.name, "status": result.status, "epochs": result.epochs}
        summary.update(steps=result.steps, seconds=round(result.seconds, 3), final=result.final, best=result.best)
        if result.stop_reason:
            summary["stop_reason"] = result.stop_reason
        self.writer.end(summary)

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
