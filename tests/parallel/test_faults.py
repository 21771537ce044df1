"""Faults of a data-parallel run through the launcher (nnctl train --workers 2): a rank killed
mid-run stops the job within seconds with a message naming it, and the run resumes; Ctrl-C to the
launcher stops every rank at one step, exits 130, and a resume ends where an uninterrupted run ends."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from nnctl.parallel import find_mpiexec
from tests.parallel.cases import ROOT

pytest.importorskip("mpi4py")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install 'nnctl[mpi]')"),
]

CONFIG = str(ROOT / "configs" / "digits.yaml")
SETTINGS = ["--set", "train.epochs=30", "--set", "train.batch_size=16", "--set", "output.checkpoint_min_seconds=0"]


def _nnctl(*args: str, tag: str = "", **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NNCTL_TEST_TAG": tag}
    return subprocess.Popen(
        [sys.executable, "-m", "nnctl", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs,
    )  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nnctl", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _wait_for_epochs(runs: Path, epochs: int, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for metrics in runs.glob("digits/*/metrics.csv"):
            if len(metrics.read_text().splitlines()) > epochs:
                return metrics.parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the run did not get going")


def _rank_pid(tag: str, rank: int) -> int:
    """The pid of rank `rank` of the job started with NNCTL_TEST_TAG=tag (from /proc/*/environ)."""
    want = {f"NNCTL_TEST_TAG={tag}".encode(), f"PMI_RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                variables = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= variables:
                return int(entry.name)
    raise AssertionError(f"rank {rank} not found")


def _params(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "checkpoints" / "last.npz") as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def _rows(run: Path) -> list[list[str]]:
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    drop = rows[0].index("seconds")
    return [r[:drop] + r[drop + 1 :] for r in rows]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's pid through /proc")
def test_a_killed_rank_stops_the_job_within_seconds_naming_it_and_the_run_resumes(tmp_path):
    tag = uuid.uuid4().hex
    proc = _nnctl("train", CONFIG, "--workers", "2", "--runs-dir", str(tmp_path), "-q", *SETTINGS, tag=tag)
    run = _wait_for_epochs(tmp_path, 2, proc)
    os.kill(_rank_pid(tag, 1), signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - killed
    assert proc.returncode not in (0, 130, 143), (proc.returncode, err)
    assert took < 10, took
    assert "rank 1 (pid" in err and "was killed by signal 9" in err, err
    assert f"nnctl train --resume {run}" in err, err
    assert "BAD TERMINATION" not in err  # Hydra's banner is replaced by the message above
    # Hydra SIGKILLs rank 0 too; the launcher records the end, so the run no longer says "running"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed", summary
    assert summary["error"].startswith("rank 1 (pid") and "killed by signal 9" in summary["error"], summary
    listed = _run("runs", str(tmp_path), "--json")
    assert [(r["status"], r["error"]) for r in json.loads(listed.stdout)] == [("failed", summary["error"])], listed

    resumed = _run("train", "--resume", str(run), "--workers", "2", "-q", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 30
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and "error" not in summary, summary


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's pid through /proc")
def test_a_killed_rank_under_bare_mpiexec_leaves_a_run_that_reads_as_failed(tmp_path):
    """mpiexec -n 2 nnctl train (no launcher of ours): Hydra SIGKILLs rank 0 at once, so nobody writes the
    final status; summary.json stays `running`, but rank 0's run.lock names a process that is gone, and
    `nnctl runs` says failed, naming it. The run resumes."""
    tag = uuid.uuid4().hex
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NNCTL_TEST_TAG": tag}
    cmd = [find_mpiexec(), "-n", "2", sys.executable, "-m", "nnctl", "train", CONFIG, "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*cmd, "-q", *SETTINGS], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    run = _wait_for_epochs(tmp_path, 2, proc)
    rank0 = _rank_pid(tag, 0)
    os.kill(_rank_pid(tag, 1), signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert json.loads((run / "summary.json").read_text())["status"] == "running"  # as rank 0 left it
    listed = _run("runs", str(tmp_path), "--json")
    [record] = json.loads(listed.stdout)
    assert record["status"] == "failed" and f"PID {rank0} on" in record["error"], record

    resumed = _run("train", "--resume", str(run), "--workers", "2", "-q", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert json.loads(_run("runs", str(tmp_path), "--json").stdout)[0]["status"] == "completed"


def test_ctrl_c_to_the_launcher_exits_130_and_the_resume_is_exact(tmp_path):
    proc = _nnctl("train", CONFIG, "--workers", "2", "--runs-dir", str(tmp_path / "a"), "-q", *SETTINGS)
    run = _wait_for_epochs(tmp_path / "a", 2, proc)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs"] < 30

    resumed = _run("train", "--resume", str(run), "--workers", "2", "-q")
    assert resumed.returncode == 0, resumed.stderr
    whole = _run("train", CONFIG, "--workers", "2", "--runs-dir", str(tmp_path / "b"), "-q", "--json", *SETTINGS)
    assert whole.returncode == 0, whole.stderr
    uninterrupted = Path(json.loads(whole.stdout)["run_dir"])
    a, b = _params(run), _params(uninterrupted)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert _rows(run) == _rows(uninterrupted)


def test_sigterm_to_the_launcher_exits_143_with_every_rank_stopped(tmp_path):
    proc = _nnctl("train", CONFIG, "--workers", "2", "--runs-dir", str(tmp_path), "-q", *SETTINGS)
    run = _wait_for_epochs(tmp_path, 2, proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["workers"] == 2
    with np.load(run / "checkpoints" / "last.npz") as npz:
        assert json.loads(str(npz["meta"]))["epoch"] == summary["epochs"]
