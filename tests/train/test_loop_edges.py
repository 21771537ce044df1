"""Edges of the training loop found in review: each test failed before its fix."""

import signal

import pytest

from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.rundir import RunDir
from nnctl.train.callbacks import Callback
from nnctl.train.trainer import StopFlag, train
from tests.conftest import CONFIGS

threadpoolctl = pytest.importorskip("threadpoolctl")


class At(Callback):
    """Does `action(loop)` at the end of epoch `epoch`; returns its value (a stop reason, or None)."""

    def __init__(self, epoch, action):
        self.epoch, self.action = epoch, action

    def on_epoch_end(self, loop, row):
        return self.action(loop) if row["epoch"] == self.epoch else None


def improvements(history):
    best, flags = None, []
    for row in history:
        flags.append(best is None or row["val_loss"] < best)
        best = row["val_loss"] if flags[-1] else best
    return flags


def test_an_interrupt_never_puts_an_older_best_back(tmp_path):
    # Saved every 2nd epoch. Find an unsaved improving epoch a, then a saved improving epoch a+1, then an
    # unsaved epoch a+2 that does not improve; interrupt after a+2. best.npz must stay at a+1.
    overrides = ["train.epochs=60", "output.checkpoint_every=2", "output.checkpoint_min_seconds=0", "optimizer.lr=0.05"]
    config = load_config(CONFIGS / "iris.yaml", overrides)
    flags = improvements(train(build_experiment(config)).history)
    target = next(e for e in range(3, 61, 2) if flags[e - 3] and flags[e - 2] and not flags[e - 1])
    run = RunDir.create(tmp_path, "stale")

    def interrupt(loop):
        loop.stop.signum = signal.SIGINT

    result = train(build_experiment(config), run, stop=StopFlag(), callbacks=[At(target, interrupt)])
    assert result.status == "interrupted" and result.epochs == target
    last, best = Checkpoint.load(run.checkpoint_path("last")), Checkpoint.load(run.checkpoint_path("best"))
    assert last.train_state["best"]["epoch"] == best.epoch == target - 1 == result.best["epoch"]


def test_a_stop_asked_by_an_api_callback_is_checkpointed(tmp_path):
    config = load_config(CONFIGS / "iris.yaml", ["train.epochs=30"])
    run = RunDir.create(tmp_path, "stop")
    result = train(build_experiment(config), run, callbacks=[At(5, lambda loop: "my_rule")])
    assert result.status == "completed" and result.stop_reason == "my_rule" and result.epochs == 5
    assert Checkpoint.load(run.checkpoint_path("last")).epoch == 5
    assert run.has_checkpoint("best")


def blas_threads() -> int:
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")


def test_threads_are_restored_when_training_raises():
    before = blas_threads()
    wanted = 2 if before == 1 else 1
    config = load_config(CONFIGS / "iris.yaml", ["train.epochs=5", f"train.threads={wanted}"])

    def boom(loop):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(build_experiment(config), callbacks=[At(2, boom)])
    assert blas_threads() == before


def test_the_default_checkpoint_of_a_running_run_follows_its_monitor(tmp_path):
    from nnctl.session import run_training

    result = run_training(
        CONFIGS / "iris.yaml", ["train.epochs=2", "data.split={train: 0.8, val: 0, test: 0.2}"], runs_dir=tmp_path
    )
    run = RunDir(result.run_dir)
    assert run.default_checkpoint()[0] == "last"  # monitors train_loss: best would mean the lowest training loss
    summary = run.read_summary()
    run.write_summary({k: v for k, v in summary.items() if k != "best"} | {"status": "running"})  # as while training
    assert run.default_checkpoint()[0] == "last"


def test_auto_threads_step_down_on_two_readings_and_raise_only_a_minute_later(monkeypatch):
    from nnctl import threads

    config = load_config(CONFIGS / "digits_cnn.yaml", ["train.epochs=1"])
    experiment = build_experiment(config)
    for var in threads.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 16)
    monkeypatch.setattr(threads, "RECHECK_EVERY", 0.0)
    monkeypatch.setattr(threads, "other_load", lambda: 6.0)  # 6 other processes running
    control = threads.ThreadControl("auto", experiment.network, config.train.batch_size)
    control.splits = False  # BLAS threads, which step down (split batches keep every core)
    try:
        assert control.start().threads == 10
        monkeypatch.setattr(threads, "other_load", lambda: 10.0)  # more load arrives: one reading is not enough,
        control.recheck(1)
        assert control.choice.threads == 10
        control.recheck(2)  # the second in a row steps down
        assert control.choice.threads == 6
        monkeypatch.setattr(threads, "other_load", lambda: 0.0)  # a lull: not yet
        control.recheck(3)
        assert control.choice.threads == 6
        now = threads.time.monotonic()
        monkeypatch.setattr(threads.time, "monotonic", lambda: now + 61)  # a minute later: all cores again
        control.recheck(4)
        assert control.choice.threads == 16
        assert [c["threads"] for c in control.choice.changes] == [6, 16]
    finally:
        control.stop()
