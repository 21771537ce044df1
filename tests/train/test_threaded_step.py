"""With batches split over threads, the optimizer step runs on those threads too, each on its part of the
flat buffers (trainer._ThreadedStep): the same training bit for bit, optimizer state and step count included."""

import warnings

import numpy as np
import pytest

from nnctl import batchsplit, registry
from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.train import trainer
from nnctl.train.loop import StopFlag
from tests.conftest import CONFIGS

OPTIMIZERS = {
    "adam": ["optimizer.type=adam", "optimizer.lr=0.01"],
    "momentum": ["optimizer.type=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9"],
}


@pytest.fixture
def split_in_two():
    batchsplit.configure(2)
    yield
    batchsplit.configure(None)


def trained(overrides, threaded, monkeypatch):
    """Three epochs through run_epoch itself (train() would let train.threads decide the splitting)."""
    monkeypatch.setattr(batchsplit, "MIN_ELEMENTS", 16 if threaded else 1 << 40)  # iris's net is small
    steps = []
    threaded_step = trainer._ThreadedStep.step

    def counted_step(self, lr):
        steps.append(lr)
        threaded_step(self, lr)

    monkeypatch.setattr(trainer._ThreadedStep, "step", counted_step)
    experiment = build_experiment(load_config(CONFIGS / "iris.yaml", ["train.epochs=3", *overrides]))
    schedule = registry.SCHEDULES.create(experiment.config.schedule)
    losses = []
    for epoch in (1, 2, 3):
        status, sums = trainer.run_epoch(experiment, epoch, schedule, experiment.config.optimizer.lr, StopFlag())
        assert status == "completed"
        losses.append(sums["loss"])
    assert bool(steps) == threaded
    return experiment, losses


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_threaded_step_trains_bit_for_bit_as_the_whole_step(name, monkeypatch, split_in_two):
    threaded, threaded_losses = trained(OPTIMIZERS[name], True, monkeypatch)
    whole, whole_losses = trained(OPTIMIZERS[name], False, monkeypatch)
    assert threaded.network.host_params().tobytes() == whole.network.host_params().tobytes()
    assert threaded_losses == whole_losses
    state, whole_state = threaded.optimizer.state_dict(), whole.optimizer.state_dict()
    assert state.keys() == whole_state.keys()
    for key in state:
        assert np.array_equal(state[key], whole_state[key]), key  # the step count "t" too


def test_no_threaded_step_without_split_batches_or_for_a_rule_that_needs_the_whole_gradient(monkeypatch):
    monkeypatch.setattr(batchsplit, "MIN_ELEMENTS", 16)
    experiment = build_experiment(load_config(CONFIGS / "iris.yaml", ["optimizer.clip_norm=1.0"]))
    assert not trainer._worth_threaded_step(experiment)  # splitting is off
    batchsplit.configure(2)
    try:
        assert not trainer._worth_threaded_step(experiment)  # clip_norm: the step needs the whole norm
        experiment = build_experiment(load_config(CONFIGS / "iris.yaml"))
        assert trainer._worth_threaded_step(experiment)
    finally:
        batchsplit.configure(None)


def test_the_parts_of_a_step_keep_the_callers_numpy_error_settings(split_in_two):
    # The trainer runs its epochs under np.errstate(over="ignore"): a diverging run's step overflows silently.
    opt = registry.OPTIMIZERS.create({"type": "sgd", "lr": 1e30})
    params = np.ones(1 << 12, np.float32)
    opt.bind(params, np.full_like(params, 1e30))
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            trainer._ThreadedStep(opt).step(1e30)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer._ThreadedStep(opt).step(1e30)
    assert np.isinf(params).all()
