"""Checks the training loop would otherwise make only after the run directory exists, made before it does."""

from __future__ import annotations

from nnctl import registry
from nnctl.train.callbacks import standard_callbacks


def check_before_run(experiment) -> None:
    """Build the loop's callbacks once, without a run directory: an unknown monitor (`train.monitor: x`),
    a callback the loop runs itself, or a missing optional engine (mlflow, tensorboardX) is a ConfigError
    here, and a rejected config leaves no run directory behind. Constructing callbacks has no side
    effects; they act only from `on_train_start`."""
    standard_callbacks(experiment, None, registry.SCHEDULES.create(experiment.config.schedule))
