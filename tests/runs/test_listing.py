"""`nnctl runs`: reading summaries, sorting by a metric's direction, filtering, JSON."""

import json

import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.errors import NnctlError
from nnctl.runs.listing import duration, list_runs

runner = CliRunner()


def fake_run(root, name, stamp, status="completed", final=None, best=None, seconds=1.0, epochs=5):
    path = root / name / stamp
    path.mkdir(parents=True)
    summary = {"name": name, "status": status, "seed": 0, "monitor": "val_loss"}
    if final is not None:
        summary.update(epochs=epochs, steps=epochs * 10, seconds=seconds, final=final)
        summary["best"] = {"monitor": "val_loss", "epoch": epochs, **(best or final)}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.fixture
def runs(tmp_path):
    fake_run(tmp_path, "iris", "20260101-100000-aaaaaa", final={"val_loss": 0.3, "val_accuracy": 0.90}, seconds=12)
    fake_run(tmp_path, "iris", "20260101-110000-bbbbbb", final={"val_loss": 0.1, "val_accuracy": 0.97}, seconds=75)
    fake_run(tmp_path, "wine", "20260101-090000-cccccc", final={"val_loss": 0.2, "val_accuracy": 0.95}, seconds=3)
    fake_run(tmp_path, "spiral", "20260101-120000-dddddd", status="diverged", final={"val_loss": float("nan")})
    fake_run(tmp_path, "spiral", "20260101-130000-eeeeee", status="running")  # no final metrics yet
    (tmp_path / "iris" / "20260101-140000-ffffff").mkdir()  # no summary.json: not a run (yet)
    return tmp_path


def stamps(records):
    return [r["stamp"][-6:] for r in records]


def test_default_order_is_by_start(runs):
    assert stamps(list_runs(runs)) == ["cccccc", "aaaaaa", "bbbbbb", "dddddd", "eeeeee"]


def test_sort_accuracy_descending_and_loss_ascending(runs):
    assert stamps(list_runs(runs, sort="val_accuracy")) == ["bbbbbb", "cccccc", "aaaaaa", "dddddd", "eeeeee"]
    assert stamps(list_runs(runs, sort="accuracy")) == stamps(list_runs(runs, sort="val_accuracy"))
    # NaN and missing values go last either way
    assert stamps(list_runs(runs, sort="val_loss")) == ["bbbbbb", "cccccc", "aaaaaa", "dddddd", "eeeeee"]
    assert stamps(list_runs(runs, sort="best")) == ["bbbbbb", "cccccc", "aaaaaa", "dddddd", "eeeeee"]
    assert stamps(list_runs(runs, sort="val_accuracy", reverse=True))[:3] == ["aaaaaa", "cccccc", "bbbbbb"]
    assert stamps(list_runs(runs, sort="seconds")) == ["dddddd", "cccccc", "aaaaaa", "bbbbbb", "eeeeee"]


def test_filters(runs):
    assert stamps(list_runs(runs, status="completed")) == ["cccccc", "aaaaaa", "bbbbbb"]
    assert stamps(list_runs(runs, status="diverged,running")) == ["dddddd", "eeeeee"]
    assert stamps(list_runs(runs, name="IRI", sort="val_loss")) == ["bbbbbb", "aaaaaa"]


def test_unknown_sort_key_suggests(runs):
    with pytest.raises(NnctlError, match="no run reports 'val_acc'.*Did you mean 'val_accuracy'"):
        list_runs(runs, sort="val_acc")


def test_missing_folder_and_unreadable_summary(tmp_path):
    with pytest.raises(NnctlError, match="runs folder not found"):
        list_runs(tmp_path / "nope")
    broken = tmp_path / "x" / "20260101-000000-000000"
    broken.mkdir(parents=True)
    (broken / "summary.json").write_text("{not json")
    assert [r["status"] for r in list_runs(tmp_path)] == ["unreadable"]


def test_cli_json_is_one_list(runs):
    result = runner.invoke(app, ["runs", str(runs), "--sort", "val_accuracy", "--status", "completed", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["stamp"][-6:] for r in records] == ["bbbbbb", "cccccc", "aaaaaa"]
    assert records[0]["name"] == "iris" and records[0]["final"]["val_accuracy"] == 0.97
    assert records[0]["best_value"] == 0.1 and records[0]["monitor"] == "val_loss"


def test_cli_table(runs):
    result = runner.invoke(app, ["runs", str(runs), "--name", "iris"])
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.stdout and "val_loss 0.1 @5" in result.stdout and "1m 15s" in result.stdout
    assert "wine" not in result.stdout
    result = runner.invoke(app, ["runs", str(runs), "--sort", "nonsense"])
    assert result.exit_code == 2 and "Sort by one of" in result.output
    empty = runner.invoke(app, ["runs", str(runs), "--status", "failed"])
    assert empty.exit_code == 0 and "no runs" in empty.output


def test_duration():
    assert (
        duration(3.21) == "3.2 s" and duration(75) == "1m 15s" and duration(7322) == "2h 02m" and duration(None) == "-"
    )


def _lock(run, host, pid):
    (run / "run.lock").write_text(json.dumps({"host": host, "pid": pid}))


def test_a_running_run_whose_process_is_gone_reads_as_failed(tmp_path):
    """A SIGKILLed session (or an MPI job whose rank 0 Hydra killed) leaves summary.json at `running` and
    its run.lock behind: a lock naming a process of this machine that no longer exists means it failed."""
    import os
    import socket
    import subprocess
    import sys

    from nnctl.viz.plots import Run

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    killed = fake_run(tmp_path, "iris", "20260101-100000-aaaaaa", status="running")
    _lock(killed, socket.gethostname(), dead_pid)
    alive = fake_run(tmp_path, "iris", "20260101-110000-bbbbbb", status="running")
    _lock(alive, socket.gethostname(), os.getpid())
    elsewhere = fake_run(tmp_path, "iris", "20260101-120000-cccccc", status="running")
    _lock(elsewhere, "another-" + socket.gethostname(), dead_pid)  # cannot be checked from here
    fake_run(tmp_path, "iris", "20260101-130000-dddddd", status="running")  # no lock file: as written
    done = fake_run(tmp_path, "iris", "20260101-140000-eeeeee", final={"val_loss": 0.1})
    _lock(done, socket.gethostname(), dead_pid)  # only `running` is second-guessed

    records = {r["stamp"][-6:]: r for r in list_runs(tmp_path)}
    assert {k: r["status"] for k, r in records.items()} == {
        "aaaaaa": "failed",
        "bbbbbb": "running",
        "cccccc": "running",
        "dddddd": "running",
        "eeeeee": "completed",
    }
    assert f"PID {dead_pid} on {socket.gethostname()}" in records["aaaaaa"]["error"]
    assert f"nnctl train --resume {killed}" in records["aaaaaa"]["error"]
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"  # read only
    for run in (killed, alive):
        (run / "config.yaml").write_text("name: iris\n")  # what makes a folder a run for Run.open
    assert Run.open(killed).summary["status"] == "failed"  # report and plot titles read it the same way
    assert Run.open(alive).summary["status"] == "running"
