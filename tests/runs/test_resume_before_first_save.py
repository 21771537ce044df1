"""A run stopped after config.yaml was written but before the initial weights were saved (a SIGKILL in
that window, which a loaded machine widens) resumes by training from the start in the same folder."""

from __future__ import annotations

import json

import pytest

from nnctl.errors import NnctlError
from nnctl.session import resume_training, run_training

CONFIG = """
name: early
seed: 2
data: {source: {type: xor, samples: 120, noise: 10}}
model:
  layers: [{type: dense, units: 6, activation: tanh}, {type: dense, units: 2}]
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
train: {epochs: 4, batch_size: 16}
"""


def _files(run_dir) -> dict:
    metrics = [line.split(",")[:-1] for line in (run_dir / "metrics.csv").read_text().splitlines()]  # less seconds
    checkpoints = {p.name: p.read_bytes() for p in sorted((run_dir / "checkpoints").glob("*.npz"))}
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    return {"metrics": metrics, "checkpoints": checkpoints, "status": status}


def _killed_before_first_save(run_dir, summary_status: str | None) -> None:
    """Leave the run as a kill between config.yaml and the initial checkpoint leaves it."""
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    (run_dir / "metrics.csv").unlink()
    if summary_status is None:
        (run_dir / "summary.json").unlink()
    else:
        (run_dir / "summary.json").write_text(json.dumps({"name": "early", "status": summary_status}))


@pytest.mark.parametrize("summary_status", [None, "running", "failed"])
def test_a_run_killed_before_its_first_save_resumes_from_the_start(tmp_path, summary_status):
    (tmp_path / "c.yaml").write_text(CONFIG)
    whole = run_training(tmp_path / "c.yaml", runs_dir=tmp_path / "whole")
    part = run_training(tmp_path / "c.yaml", runs_dir=tmp_path / "part")
    _killed_before_first_save(part.run_dir, summary_status)
    resumed = resume_training(part.run_dir)
    assert resumed.status == "completed" and resumed.run_dir == part.run_dir
    assert _files(part.run_dir) == _files(whole.run_dir)


def test_a_completed_run_without_checkpoints_is_not_retrained(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = run_training(tmp_path / "c.yaml", runs_dir=tmp_path / "runs")
    for path in (run.run_dir / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(NnctlError, match="no checkpoint 'last'"):
        resume_training(run.run_dir)


def test_a_run_killed_before_its_first_save_resumes_on_the_device_asked(tmp_path):
    """--device on resume applies to a run that never saved too (here: a cuda run continued on the CPU)."""
    import yaml

    (tmp_path / "c.yaml").write_text(CONFIG)
    part = run_training(tmp_path / "c.yaml", runs_dir=tmp_path / "part")
    _killed_before_first_save(part.run_dir, "running")
    saved = yaml.safe_load((part.run_dir / "config.yaml").read_text())
    saved["train"]["device"] = "cuda"
    (part.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    resumed = resume_training(part.run_dir, device="cpu")
    assert resumed.status == "completed"


def test_a_run_with_trained_epochs_but_no_checkpoint_is_not_retrained(tmp_path):
    """Epochs in metrics.csv mean the run trained: a missing last.npz is damage to report, not a fresh start."""
    (tmp_path / "c.yaml").write_text(CONFIG)
    run = run_training(tmp_path / "c.yaml", runs_dir=tmp_path / "runs")
    for path in (run.run_dir / "checkpoints").iterdir():
        path.unlink()
    (run.run_dir / "summary.json").write_text(json.dumps({"name": "early", "status": "running"}))
    with pytest.raises(NnctlError, match="no checkpoint 'last'"):
        resume_training(run.run_dir)
