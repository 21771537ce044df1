"""TensorBoard logs of a training run: the `tensorboard` callback (extra `tensorboard`: tensorboardX).

    callbacks: [{type: tensorboard, histograms: true}]     # then: tensorboard --logdir runs/

Event files go to `<run dir>/tensorboard/`: every metrics.csv column per epoch (the epoch is the step
axis), the resolved config as text, optionally weight and gradient histograms (the gradients of the
epoch's last batch), and at the end one hparams entry (the config's scalar values, or the keys listed
in `hparams`, with the final and best metrics), so sweep trials line up in TensorBoard's HPARAMS view.
A resumed run appends to the same folder; TensorBoard orders the points by epoch.

`TensorBoardWriter` does the writing and knows nothing about the loop (tested on its own); the
callback only hands it what the loop has.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError, NnctlError
from nnctl.registry import CALLBACKS, Params
from nnctl.runs.rundir import RunDir
from nnctl.train.callbacks import Callback

LOGDIR = RunDir.TENSORBOARD
NOT_SCALARS = ("epoch",)  # the step axis itself


def flat_config(config: dict[str, Any], prefix: str = "", index: str = "[{}]") -> dict[str, Any]:
    """{"optimizer.lr": 0.01, "model.layers[0].units": 16, ...}: every scalar leaf of a config dict, list
    items as `index` says (MLflow's keys allow no brackets: ".{}" gives model.layers.0.units)."""
    out: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            out.update(flat_config(value, f"{prefix}.{key}" if prefix else str(key), index))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            out.update(flat_config(value, prefix + index.format(i), index))
    elif isinstance(config, (bool, int, float, str)) or config is None:
        out[prefix] = "null" if config is None else config
    return out


class TensorBoardWriter:
    """start(run_dir, config) -> log_epoch(row[, network]) per epoch -> end(summary)."""

    def __init__(self, histograms: bool = False, hparams: list[str] | None = None, logdir: str = LOGDIR):
        self.histograms = histograms
        self.hparam_keys = hparams
        self.logdir_name = logdir
        self.writer = None
        self.config: dict[str, Any] = {}
        self.logdir: Path | None = None

    def start(self, run_dir: str | Path, config: dict[str, Any]) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise NnctlError("the tensorboard callback needs tensorboardX: pip install 'nnctl[tensorboard]'.") from None
        import yaml

        self.config = config
        self.logdir = Path(run_dir) / self.logdir_name
        self.writer = SummaryWriter(logdir=str(self.logdir), flush_secs=30)
        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "```yaml\n" + text + "```", global_step=0)  # markdown code block

    def log_epoch(self, row: dict[str, Any], network=None) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and value is not None:
                self.writer.add_scalar(key, float(value), global_step=epoch)
        if self.histograms and network is not None:
            params, grads = network.host_params(), network.device.to_host(network.flat_grads)  # once per epoch
            for name, (offset, shape) in network.param_slices.items():
                size = int(np.prod(shape))
                self.writer.add_histogram(f"weights/{name}", params[offset : offset + size], epoch)
                self.writer.add_histogram(f"gradients/{name}", grads[offset : offset + size], epoch)

    def hparams(self) -> dict[str, Any]:
        flat = flat_config(self.config)
        if self.hparam_keys is None:
            return {k: v for k, v in flat.items() if not k.startswith(("output.", "plugins"))}
        missing = [k for k in self.hparam_keys if k not in flat]
        if missing:
            raise NnctlError(f"tensorboard hparams: the config has no value at {', '.join(missing)}.")
        return {k: flat[k] for k in self.hparam_keys}

    def end(self, summary: dict[str, Any]) -> None:
        if self.writer is None:
            return
        # the last epoch's values and the best epoch's (by train.monitor), as TensorBoard's hparams metrics
        metrics = {f"hparam/final_{k}": float(v) for k, v in (summary.get("final") or {}).items() if _number(v)}
        for key, value in (summary.get("best") or {}).items():
            if key not in ("epoch", "step", "lr", "seconds", "monitor") and _number(value):
                metrics[f"hparam/best_{key}"] = float(value)
        if metrics:
            # In this run's own event file (tensorboardX's add_hparams would open a second writer and file).
            from tensorboardX.summary import hparams as hparams_summary

            step = int(summary.get("epochs") or 0)
            file_writer = self.writer._get_file_writer()
            for part in hparams_summary(self.hparams(), metrics):  # experiment, session start, session end
                file_writer.add_summary(part, step)
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.close()
        self.writer = None


def require(module: str, message: str) -> None:
    """ConfigError (exit 2) when an optional package is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(message)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


@CALLBACKS.register("tensorboard")
class TensorBoard(Callback):
    """TensorBoard event files in <run dir>/tensorboard: metrics per epoch, config, histograms, hparams."""

    class Params(Params):
        histograms: bool = Field(False, description="Also log weight and gradient histograms every epoch.")
        hparams: list[str] | None = Field(
            None,
            description="Config keys for the HPARAMS view (e.g. [optimizer.lr, model.layers[0].units]); "
            "null = every scalar in the config.",
        )

    def setup(self):
        # Checked when training builds the callback, not when a config validates: reopening a run that
        # logged to TensorBoard (eval, predict, export) must not need tensorboardX.
        require("tensorboardX", "the tensorboard callback needs tensorboardX: pip install 'nnctl[tensorboard]'.")
        self.writer = TensorBoardWriter(self.histograms, self.hparams)

    def on_train_start(self, loop) -> None:
        if loop.run is not None:
            self.writer.start(loop.run.path, loop.experiment.config.model_dump(mode="json"))

    def on_epoch_end(self, loop, row) -> None:
        if self.writer.writer is not None:
            self.writer.log_epoch(row, loop.experiment.network)

    def on_train_end(self, loop) -> None:
        result = loop.result
        summary = {"epochs": result.epochs, "final": result.final, "best": result.best} if result else {}
        self.writer.end(summary)
