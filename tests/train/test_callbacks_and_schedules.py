"""Schedules at chosen times, early stopping on a crafted sequence, time limit, checkpoint policy, optimizers."""

import math

import numpy as np
import pytest

from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.registry import OPTIMIZERS, SCHEDULES
from nnctl.runs.rundir import RunDir, create_run_dir
from nnctl.train.trainer import train


def sched(spec):
    return SCHEDULES.create(spec)


@pytest.mark.parametrize(
    "spec, t, expected",
    [
        ({"type": "constant"}, 7.3, 0.1),
        ({"type": "constant", "warmup_epochs": 2}, 0.5, 0.025),
        ({"type": "step", "every": 3, "factor": 0.5}, 2.9, 0.1),
        ({"type": "step", "every": 3, "factor": 0.5}, 6.0, 0.025),
        ({"type": "multistep", "milestones": [2, 5], "factor": 0.1}, 4.0, 0.01),
        ({"type": "multistep", "milestones": [2, 5], "factor": 0.1}, 5.5, 0.001),
        ({"type": "exponential", "factor": 0.5}, 2.0, 0.025),
        ({"type": "cosine"}, 5.0, 0.05),  # half of a 10-epoch period
        ({"type": "cosine", "min_lr": 0.02}, 10.0, 0.02),
        ({"type": "cosine", "period": 4, "restarts": True}, 5.0, 0.1 * 0.5 * (1 + math.cos(math.pi / 4))),
        (
            {"type": "cosine", "period": 2, "restarts": True, "t_mult": 2},
            4.0,
            0.05,
        ),  # periods 2, 4: t=4 is halfway through the 2nd
        ({"type": "cosine", "warmup_epochs": 2}, 6.0, 0.05),  # warm-up 2, then a cosine over the remaining 8
        ({"type": "step", "every": 1, "factor": 0.5, "warmup_epochs": 1}, 3.0, 0.025),
    ],
)
def test_schedule_values(spec, t, expected):
    assert sched(spec).lr(0.1, t, 10) == pytest.approx(expected)


def test_reduce_on_plateau():
    s = sched({"type": "reduce_on_plateau", "patience": 1, "factor": 0.5, "min_lr": 0.02})
    for value in [1.0, 0.9, 0.95, 0.96]:  # two epochs without improvement > patience 1
        s.on_epoch_end(value)
    assert s.lr(0.1, 4, 10) == pytest.approx(0.05)
    for value in [0.97, 0.98, 0.99, 1.0, 1.1, 1.2]:
        s.on_epoch_end(value)
    assert s.lr(0.1, 10, 10) == pytest.approx(0.02)  # floored at min_lr


def test_rmsprop_and_adagrad_one_step():
    # eps must be > 0 (Params validates it); 1e-12 leaves the hand-computed values unchanged at approx precision
    p = np.array([1.0])
    g = np.array([0.5])
    OPTIMIZERS.create({"type": "rmsprop", "lr": 0.01, "rho": 0.9, "eps": 1e-12}).bind(p, g).step()
    assert p[0] == pytest.approx(1 - 0.01 * 0.5 / math.sqrt(0.1 * 0.25))
    p = np.array([1.0])
    g = np.array([0.5])
    opt = OPTIMIZERS.create({"type": "adagrad", "lr": 0.1, "eps": 1e-12}).bind(p, g)
    opt.step()
    opt.step()
    assert p[0] == pytest.approx(1 - 0.1 - 0.1 * 0.5 / math.sqrt(0.5))


def test_gradient_clipping():
    p = np.zeros(2)
    g = np.array([3.0, 4.0])  # norm 5
    OPTIMIZERS.create({"type": "sgd", "lr": 1.0, "clip_norm": 1.0}).bind(p, g).step()
    np.testing.assert_allclose(p, [-0.6, -0.8])
    p = np.zeros(2)
    g = np.array([3.0, -0.2])
    OPTIMIZERS.create({"type": "sgd", "lr": 1.0, "clip_value": 0.5}).bind(p, g).step()
    np.testing.assert_allclose(p, [-0.5, 0.2])


IRIS = """
name: cb
seed: 0
data: {source: iris, normalize: standard}
model: {layers: [{type: dense, units: 8, activation: tanh}, {type: dense, units: 3}]}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 30, batch_size: 16}
"""


def test_early_stopping_on_a_crafted_sequence_restores_the_best_weights(write_yaml, tmp_path):
    cfg = load_config(write_yaml(IRIS), ["train.early_stopping={patience: 2, restore_best: true}"])
    exp = build_experiment(cfg)
    sequence = iter([1.0, 0.8, 0.9, 0.85, 0.95, 0.5, 0.4])
    exp.evaluate = lambda split: {"loss": next(sequence)}
    weights = {}

    class Keep:
        def on_start(self, *a):
            pass

        def on_epoch(self, row):
            weights[row["epoch"]] = exp.network.flat_params.copy()

        def on_end(self, result):
            pass

    run = RunDir(create_run_dir(tmp_path, "cb"))
    result = train(exp, run, Keep())
    # best at epoch 2 (0.8); epochs 3, 4, 5 don't improve; the third exceeds patience 2 -> stop after 5
    assert result.epochs == 5 and result.stop_reason == "early_stopping" and result.best["epoch"] == 2
    np.testing.assert_array_equal(exp.network.flat_params, weights[2])
    assert not np.array_equal(weights[5], weights[2])


def test_time_limit_stops_after_the_epoch(write_yaml):
    cfg = load_config(write_yaml(IRIS), ["train.max_seconds=1.0e-6"])
    result = train(build_experiment(cfg))
    assert result.epochs == 1 and result.stop_reason == "time_limit" and result.status == "completed"


def test_keep_last_k_epoch_checkpoints(write_yaml, tmp_path):
    cfg = load_config(write_yaml(IRIS), ["train.epochs=5", "output={checkpoint_min_seconds: 0, keep_last: 2}"])
    run = RunDir(create_run_dir(tmp_path, "cb"))
    train(build_experiment(cfg), run)
    names = sorted(p.name for p in (run.path / "checkpoints").iterdir())
    assert names == ["best.npz", "epoch-0004.npz", "epoch-0005.npz", "last.npz"]


def test_lr_column_is_the_rate_used(write_yaml, tmp_path):
    cfg = load_config(write_yaml(IRIS), ["train.epochs=4", "schedule={type: step, every: 2, factor: 0.5}"])
    result = train(build_experiment(cfg))
    # batches of the last step of epochs 1..4 sit at t just below 1, 2, 3, 4
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.005])


def test_monitor_typo_is_a_config_error(write_yaml):
    from nnctl.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'val_loss'"):
        train(build_experiment(load_config(write_yaml(IRIS), ["train.monitor=val_los"])))
