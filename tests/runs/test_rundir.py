from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nnctl.errors import NnctlError
from nnctl.runs.checkpoint import load_checkpoint, save_checkpoint
from nnctl.runs.rundir import RunDir, atomic_write, create_run_dir


def test_runs_started_together_never_share_a_directory(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: create_run_dir(tmp_path, "same"), range(32)))
    assert len(set(paths)) == 32 and all((p / "checkpoints").is_dir() for p in paths)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "last.npz"
    save_checkpoint(target, {"param/w": np.ones(3)}, {"epoch": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("nnctl.runs.rundir.os.replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(target, {"param/w": np.zeros(3)}, {"epoch": 2})
    arrays, meta = load_checkpoint(target)
    assert meta["epoch"] == 1 and arrays["param/w"].tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]


def test_checkpoint_round_trip_and_byte_identity(tmp_path):
    arrays = {"param/0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "optim/t": np.array(3)}
    save_checkpoint(tmp_path / "a.npz", arrays, {"epoch": 4, "config": {"name": "x"}})
    save_checkpoint(tmp_path / "b.npz", arrays, {"epoch": 4, "config": {"name": "x"}})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded, meta = load_checkpoint(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded["param/0.weight"], arrays["param/0.weight"])
    assert loaded["param/0.weight"].dtype == np.float32 and meta["epoch"] == 4


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array("{}"), payload=np.array([object()], dtype=object))
    with pytest.raises(NnctlError, match="damaged or not an nnctl checkpoint"):
        load_checkpoint(path)


def test_metrics_csv_grows_by_rows(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics({"epoch": 1, "train_loss": 0.5})
    run.append_metrics({"epoch": 2, "train_loss": 0.25})
    assert (tmp_path / "metrics.csv").read_text() == "epoch,train_loss\n1,0.5\n2,0.25\n"
