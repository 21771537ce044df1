"""Reopen a run: the one path by which eval, predict, resume, plot, report, the Python API, export,
serve and sweep scoring get a trained model back from disk.

    opened = open_run("runs/iris/20260101-120000-ab12cd", "best", allow_plugins=False)
    opened.config        # the validated resolved config (plugins imported only if allowed)
    opened.checkpoint    # the Checkpoint (best falls back to last)
    opened.experiment()  # data, splits and network rebuilt, the checkpoint's weights loaded

A run trained with plugins is refused unless `allow_plugins`: importing them runs their code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from nnctl import registry
from nnctl.build import Experiment, build_experiment, build_network
from nnctl.config import validate
from nnctl.data.tabular import TablePreprocessor
from nnctl.device import Device, resolve_device
from nnctl.errors import ConfigError, NnctlError
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.rundir import RunDir
from nnctl.yamlio import read_yaml


def read_run_config(run: RunDir, allow_plugins: bool = False) -> BaseModel:
    """The run's resolved config, validated; its plugins pass through the one plugin gate."""
    path = run.config_path
    raw, lines = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name, data, model, ...).")
    registry.import_plugins(raw.get("plugins") or [], allowed=allow_plugins, where=str(run.path))
    return validate(raw, lines, source=str(path))


@dataclass
class OpenRun:
    run: RunDir
    config: BaseModel
    checkpoint: Checkpoint
    which: str  # the checkpoint asked for: best or last
    _experiment: Experiment | None = field(default=None, repr=False)
    _device: str | Device | None = field(default=None, repr=False)  # the device _experiment was built on

    @property
    def path(self) -> Path:
        return self.run.path

    def experiment(self, with_optimizer: bool = False, comm=None, device: str | Device | None = "cpu") -> Experiment:
        """The experiment rebuilt from the config (data and the same split), with the checkpoint's weights,
        its stored normalization statistics (not a refit) and, when asked, its optimizer state.

        On `device`: the CPU unless asked (a run trained on a GPU reopens anywhere); None: the config's
        train.device (what --resume continues on)."""
        if self._experiment is None or with_optimizer or device != self._device:
            stored = {
                "norm": self.checkpoint.norm,
                "target_norm": self.checkpoint.target_norm,
                "table": self.checkpoint.table,
            }
            experiment = build_experiment(
                self.config, stored, comm=comm, device=device
            )  # comm: data-parallel ranks share the NaN check
            self.checkpoint.apply(experiment.network, experiment.optimizer if with_optimizer else None)
            if with_optimizer:
                return experiment
            self._experiment, self._device = experiment, device
        return self._experiment

    def network(self, input_shape: tuple[int, ...], device: str | Device | None = "cpu"):
        """Just the network, built for `input_shape` with the checkpoint's weights (no data loaded), on
        `device` (the CPU unless asked)."""
        table = TablePreprocessor.from_state(self.checkpoint.table) if self.checkpoint.table else None
        network = build_network(self.config, input_shape, np.dtype(self.config.dtype), table, resolve_device(device))
        self.checkpoint.apply(network)
        return network


def open_run(path: str | Path, checkpoint: str = "best", allow_plugins: bool = False) -> OpenRun:
    run = RunDir.open(path)
    ckpt = run.load_checkpoint(checkpoint)
    return OpenRun(run, read_run_config(run, allow_plugins), ckpt, checkpoint)


def check_resumable(opened: OpenRun) -> dict:
    """The train_state of a last.npz, or a user error saying why the run cannot continue."""
    state = opened.checkpoint.train_state
    if state is None:
        raise NnctlError(f"{opened.checkpoint.source} has no training state; it cannot be resumed.")
    if not isinstance(state.get("epoch"), int) or not isinstance(state.get("step"), int):
        raise NnctlError(f"{opened.checkpoint.source}: its train_state has no valid epoch and step.")
    return state
