"""User callbacks: a plugin registers one, a config lists it, its state resumes exactly."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.runs.checkpoint import Checkpoint
from nnctl.session import resume_training, run_training
from tests.conftest import ROOT, StopAfter

CONFIG = ROOT / "tests/plugins/callback.yaml"
runner = CliRunner()


def test_a_plugin_callback_stops_training_and_its_state_is_saved(tmp_path):
    result = run_training(CONFIG, runs_dir=tmp_path)
    assert result.status == "completed" and result.stop_reason == "target_reached"
    assert result.epochs < 60
    last3 = [row["val_accuracy"] for row in result.history[-3:]]
    assert all(v >= 0.97 for v in last3)  # patience 3: three epochs in a row at the target
    state = Checkpoint.load(result.run_dir / "checkpoints" / "last.npz").train_state
    assert state["callbacks"] == {"stop_at": {"streak": 3}}
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "target_reached"


def test_interrupted_mid_streak_resumes_to_the_same_end(tmp_path):
    whole = run_training(CONFIG, runs_dir=tmp_path / "whole")
    # Stop inside the streak (mid-epoch E-1, so epoch E-2 is the last one done, with a streak of 1):
    # the resumed run must remember it. The flag is read once a step and once after each epoch.
    reads_per_epoch = whole.steps // whole.epochs + 1
    part = run_training(CONFIG, runs_dir=tmp_path / "part", stop=StopAfter(reads_per_epoch * (whole.epochs - 2) + 3))
    assert part.status == "interrupted" and part.epochs == whole.epochs - 2
    assert Checkpoint.load(part.run_dir / "checkpoints" / "last.npz").train_state["callbacks"] == {
        "stop_at": {"streak": 1}
    }
    resumed = resume_training(part.run_dir, allow_plugins=True)
    assert resumed.epochs == whole.epochs and resumed.stop_reason == "target_reached"
    a = Checkpoint.load(whole.run_dir / "checkpoints" / "last.npz")
    b = Checkpoint.load(part.run_dir / "checkpoints" / "last.npz")
    for key, value in a.arrays().items():
        assert np.array_equal(value, b.arrays()[key]), key
    assert a.train_state == b.train_state


def test_list_callbacks_shows_built_ins_and_where_they_are_set():
    result = runner.invoke(app, ["list", "callbacks"])
    assert result.exit_code == 0
    for name in ("early_stopping", "checkpoint", "best_weights", "summary"):
        assert name in result.output
    assert "train.early_stopping" in result.output


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{type: early_stopping}", "is run by the loop itself; set it with train.early_stopping"),
        ("{type: stop_att, target: 1}", "stop_at"),  # a typo gets a suggestion
    ],
)
def test_bad_callback_entries_exit_2(tmp_path, entry, message):
    text = CONFIG.read_text().replace(
        "  - {type: stop_at, column: val_accuracy, target: 0.97, patience: 3}", f"  - {entry}"
    )
    config = CONFIG.parent / "bad_callback_tmp.yaml"  # beside the plugin, so `plugins:` resolves
    config.write_text(text)
    try:
        result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path), "--quiet"])
    finally:
        config.unlink()
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not any(tmp_path.rglob("config.yaml"))  # rejected before a run directory exists
