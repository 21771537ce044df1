"""Faults while training and what saved folders may cause to run (default run: fast, in-process).

- a full disk during a checkpoint write: exit 2, a message naming the file, summary.json `failed`, the
  previous checkpoint intact and resumable once there is space again (issue 12, item 5);
- `nnctl sweep --resume` imports a sweep folder's plugins only with --allow-plugins (item 3);
- a trial recorded as failed (its worker was killed) runs again with --retry-failed (item 8);
- a run directory has one writer at a time (item 7; the real concurrent race is in test_processes.py).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnctl.runs.checkpoint import Checkpoint
from tests.reliability.harness import cli, expect
from tests.sweep.conftest import BASE

CONFIG = """\
name: disk
seed: 1
data: {source: {type: circle, samples: 120, noise: 5}}
model:
  layers: [{type: dense, units: 6, activation: tanh}, {type: dense, units: 2}]
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
train: {epochs: 6, batch_size: 16}
output: {checkpoint_min_seconds: 0}
"""


def test_disk_full_during_a_checkpoint_write(tmp_path, monkeypatch):
    import nnctl.runs.checkpoint as checkpoint_module

    (tmp_path / "c.yaml").write_text(CONFIG)
    real_write, writes = checkpoint_module.atomic_write, []

    def full_disk(path, data):
        writes.append(Path(path).name)
        if writes.count("last.npz") == 5:  # the initial weights, epochs 1-3, then epoch 4's: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write", full_disk)
    outcome = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    expect("faults: disk full", outcome, "No space left on device", "last.npz", "--resume", codes=(2,))
    (run,) = (tmp_path / "runs" / "disk").iterdir()
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    kept = Checkpoint.load(run / "checkpoints" / "last.npz")
    assert kept.epoch == 3 and not list((run / "checkpoints").glob(".*.tmp"))  # no temporary file left

    monkeypatch.setattr(checkpoint_module, "atomic_write", real_write)  # space freed
    resumed = cli("train", "--resume", run, "--quiet")
    expect("faults: disk full", resumed, codes=(0,))
    whole = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "whole", "--quiet")
    assert whole.code == 0
    (ref,) = (tmp_path / "whole" / "disk").iterdir()
    for name in ("last", "best"):
        a, b = Checkpoint.load(run / f"checkpoints/{name}.npz"), Checkpoint.load(ref / f"checkpoints/{name}.npz")
        assert a.epoch == b.epoch and all(np.array_equal(a.params[k], b.params[k]) for k in b.params)


def test_a_read_only_runs_folder(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o500)
    try:
        if (runs / "probe").exists() or _writable(runs):
            pytest.skip("running as a user who can write anywhere (root)")
        outcome = cli("train", tmp_path / "c.yaml", "--runs-dir", runs, "--quiet")
        expect("faults: disk full", outcome, "cannot create the runs folder", codes=(2,))
    finally:
        runs.chmod(0o700)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").mkdir()
    except OSError:
        return False
    (folder / "probe").rmdir()
    return True


def _sweep_folder(tmp_path) -> Path:
    from nnctl.sweep.runner import prepare_sweep

    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "s.yaml").write_text("name: s\nbase: base.yaml\nspace:\n  optimizer.lr: [0.01, 0.05]\n")
    return prepare_sweep(tmp_path / "s.yaml", tmp_path / "runs").path


def test_sweep_resume_asks_before_importing_plugins(tmp_path):
    folder = _sweep_folder(tmp_path)
    marker = tmp_path / "imported.txt"
    plugin_dir = tmp_path / "elsewhere"
    plugin_dir.mkdir()
    (plugin_dir / "sweep_marker_plugin.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    text = (folder / "sweep.yaml").read_text()
    text = text.replace("  name: tiny\n", "  name: tiny\n  plugins: [sweep_marker_plugin]\n", 1)
    text = text.replace(f"base_dir: {tmp_path}", f"base_dir: {plugin_dir}")
    assert "sweep_marker_plugin" in text and str(plugin_dir) in text
    (folder / "sweep.yaml").write_text(text)
    outcome = cli("sweep", "--resume", folder, "--quiet")
    expect("faults: sweep folders", outcome, "--allow-plugins", "sweep_marker_plugin", codes=(2,))
    assert not marker.exists()


def test_retry_failed_runs_a_killed_workers_trial_again(tmp_path):
    folder = _sweep_folder(tmp_path)
    first = cli("sweep", "--resume", folder, "--quiet")
    expect("faults: sweep folders", first, codes=(0,))
    records = json.loads((folder / "trials.json").read_text())
    records["trials"][1].update(status="failed", objective=None, error="worker process died (killed)")
    (folder / "trials.json").write_text(json.dumps(records))
    shutil.rmtree(folder / records["trials"][1]["run_dir"])  # what a SIGKILLed worker leaves: half a run

    again = cli("sweep", "--resume", folder, "--quiet", "--json")
    expect("faults: sweep folders", again, '"failed": 1', codes=(4,))  # final: not run again by default
    retried = cli("sweep", "--resume", folder, "--quiet", "--json", "--retry-failed")
    expect("faults: sweep folders", retried, '"completed": 2', codes=(0,))
    assert [t["status"] for t in json.loads((folder / "trials.json").read_text())["trials"]] == ["completed"] * 2
    expect("faults: sweep folders", cli("sweep", tmp_path / "s.yaml", "--retry-failed"), "--resume", codes=(2,))


def test_one_writer_per_run_directory(tmp_path):
    from nnctl.errors import NnctlError
    from nnctl.runs.lock import RunLock, locked

    with locked(tmp_path):
        with pytest.raises(NnctlError, match=f"in use by another nnctl session .PID {__import__('os').getpid()}"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / "run.lock").exists()
    assert not (tmp_path / "run.lock").exists()
    with locked(tmp_path):  # free again
        pass
