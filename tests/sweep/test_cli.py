"""`nnctl sweep` from the command line: exit codes, --json, --resume, and a fast --help."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl.cli import app


def test_sweep_with_a_failed_trial_exits_4_and_reports_it(sweep_file, tmp_path):
    path = sweep_file("space:\n  model.layers[1].units: [2, 3]\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "some_failed" and doc["counts"] == {"completed": 1, "failed": 1}
    assert doc["best"]["trial"] == 0 and doc["best_config"].endswith("best.yaml")
    assert "trial 1 failed" in result.stderr and "data have 2 classes" in result.stderr

    # everything is finished: a resume has nothing left to run and keeps the exit code
    again = CliRunner().invoke(app, ["sweep", "--resume", doc["sweep_dir"], "--quiet"])
    assert again.exit_code == 4


def test_resume_of_a_folder_that_is_not_a_sweep_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a sweep folder" in result.output


def test_invalid_trial_config_is_a_usage_error_before_anything_runs(sweep_file, tmp_path):
    path = sweep_file("space:\n  optimizer.lr: [0.01, -1]\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "trial 1 (optimizer.lr=-1)" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, heavy",
    [
        (["--help"], ("numpy", "pydantic", "dask", "distributed", "optuna")),
        (["sweep", "--help"], ("numpy", "dask", "distributed", "optuna")),  # typer's help itself loads pydantic
    ],
)
def test_help_does_not_import_the_engines(args, heavy):
    code = (
        f"import sys; from nnctl.cli import app\ntry:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_ctrl_c_keeps_finished_trials_and_resume_runs_the_rest(sweep_file, tmp_path):
    import signal
    import time

    path = sweep_file("set: [train.epochs=150]\nspace:\n  optimizer.lr: [0.01, 0.02, 0.03]\n")
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "nnctl.cli", "sweep", str(path), "--runs-dir", str(runs), "--parallel", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "completed" in p.read_text() for p in runs.glob("sweeps/s/*/trials.csv")
    ):
        time.sleep(0.05)  # until the first trial has finished
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "nnctl sweep --resume" in out
    sweep_dir = next(runs.glob("sweeps/s/*"))
    first = json.loads((sweep_dir / "trials.json").read_text())["trials"]
    done = [r["trial"] for r in first if r["status"] == "completed"]
    assert done and len(done) < 3
    assert {r["status"] for r in first} <= {"completed", "interrupted"}

    result = CliRunner().invoke(app, ["sweep", "--resume", str(sweep_dir), "--json", "--parallel", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"completed": 3}
    assert f"({len(done)} already done)" in result.stderr


def test_dask_missing_is_refused_before_the_sweep_folder_exists(sweep_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    path = sweep_file("space:\n  optimizer.lr: [0.01, 0.02]\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--executor", "dask"])
    assert result.exit_code == 2 and "pip install 'nnctl[distributed]'" in result.output
    assert not (tmp_path / "runs").exists()


def test_whole_number_quniform_values_are_reported_as_integers(sweep_file, tmp_path):
    path = sweep_file("space:\n  train.batch_size: {quniform: [16, 32, 16]}\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert type(doc["best"]["params"]["train.batch_size"]) is int
    sweep_dir = Path(doc["sweep_dir"])
    for name in ("trials.csv", "leaderboard.csv"):
        with open(sweep_dir / name, newline="") as fh:
            values = sorted(row["train.batch_size"] for row in csv.DictReader(fh))
        assert values == ["16", "32"], name
