from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nnctl.errors import NnctlError
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.files import atomic_write
from nnctl.runs.rundir import RunDir, create_run_dir


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
    Checkpoint({"w": np.ones(3)}, meta={"epoch": 1}).save(target)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("nnctl.runs.files.os.replace", broken_replace)
    with pytest.raises(OSError):
        Checkpoint({"w": np.zeros(3)}, meta={"epoch": 2}).save(target)
    loaded = Checkpoint.load(target)
    assert loaded.epoch == 1 and loaded.params["w"].tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]


def test_checkpoint_round_trip_and_byte_identity(tmp_path):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    for name in ("a.npz", "b.npz"):
        Checkpoint({"0.weight": weight}, optimizer={"t": np.array(3)}, meta={"epoch": 4, "config": {"name": "x"}}).save(
            tmp_path / name
        )
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = Checkpoint.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded.params["0.weight"], weight)
    assert loaded.params["0.weight"].dtype == np.float32 and loaded.epoch == 4
    assert int(loaded.optimizer["t"]) == 3 and loaded.meta["config"] == {"name": "x"}


def test_checkpoint_with_foreign_entries_or_bad_meta_is_refused(tmp_path):
    np.savez(tmp_path / "foreign.npz", meta=np.array("{}"), weights=np.ones(2))
    with pytest.raises(NnctlError, match="unexpected entry 'weights'"):
        Checkpoint.load(tmp_path / "foreign.npz")
    np.savez(tmp_path / "list.npz", meta=np.array("[1, 2]"))
    with pytest.raises(NnctlError, match="not a JSON object"):
        Checkpoint.load(tmp_path / "list.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(NnctlError, match="damaged"):
        Checkpoint.load(tmp_path / "empty.npz")


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array("{}"), payload=np.array([object()], dtype=object))
    with pytest.raises(NnctlError, match="damaged or not an nnctl checkpoint"):
        Checkpoint.load(path)


def test_metrics_csv_grows_by_rows(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics({"epoch": 1, "train_loss": 0.5})
    run.append_metrics({"epoch": 2, "train_loss": 0.25})
    assert (tmp_path / "metrics.csv").read_text() == "epoch,train_loss\n1,0.5\n2,0.25\n"
