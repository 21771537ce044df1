"""nnctl train --workers: bad input (exit 2, one message, no traceback), a run continued on another
number of workers (said so), metric accumulators that merge like one pass, and the one-process seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.metrics import ConfusionMatrix, build_metrics
from nnctl.parallel import SingleProcess, find_mpiexec, shard
from tests.conftest import CONFIGS, ROOT, StopAfter

runner = CliRunner()
needs_mpi = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install 'nnctl[mpi]')")


def _nnctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nnctl", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_workers_must_be_positive(tmp_path):
    result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "--workers", "0"])
    assert result.exit_code == 2 and "--workers must be at least 1" in result.output


def test_workers_inside_an_mpi_world_is_refused(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    result = runner.invoke(app, ["train", str(CONFIGS / "xor.yaml"), "--workers", "2"])
    assert result.exit_code == 2 and "already runs in an MPI world of 4 ranks" in result.output


def test_workers_without_mpiexec_says_how_to_install(monkeypatch, capsys):
    import nnctl.parallel

    monkeypatch.setattr(nnctl.parallel, "find_mpiexec", lambda: None)
    assert nnctl.parallel.launch(2, ["train", "x.yaml"]) == 2
    assert "pip install 'nnctl[mpi]'" in capsys.readouterr().err


def test_one_worker_trains_in_this_process(tmp_path):
    result = runner.invoke(
        app, ["train", str(CONFIGS / "xor.yaml"), "--workers", "1", "--runs-dir", str(tmp_path), "-q", "--json"]
    )
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    assert json.loads((run / "summary.json").read_text())["workers"] == 1


@needs_mpi
def test_a_config_error_on_two_workers_is_one_message_and_exit_2(tmp_path):
    result = _nnctl("train", str(CONFIGS / "xor.yaml"), "--workers", "2", "--set", "optimizer.lr=-1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    assert "Traceback" not in result.stderr and "optimizer.lr" in result.stderr


@needs_mpi
def test_sync_batch_norm_needs_a_sample_per_worker_in_every_batch(tmp_path):
    layers = "model.layers=[{type: dense, units: 8}, {type: batch_norm, sync: true}, {type: dense, units: 2}]"
    result = _nnctl(
        "train", str(CONFIGS / "xor.yaml"), "--workers", "2", "--runs-dir", str(tmp_path),
        "--set", layers, "--set", "data.source.samples=201", "--set", "data.split={train: 1.0, val: 0, test: 0}",
        "--set", "train.batch_size=40",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "a batch has 1 for 2 workers" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*/*"))  # refused before any run directory


@needs_mpi
def test_a_nan_in_the_second_ranks_part_of_mapped_data_is_one_error(tmp_path):
    x = np.random.default_rng(0).random((300, 4)).astype(np.float32)
    x[250, 3] = np.inf  # in rank 1's half of the streaming check
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(300) % 2)
    source = f"data.source={{type: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}}}"
    result = _nnctl("train", str(CONFIGS / "xor.yaml"), "--workers", "2", "--runs-dir", str(tmp_path), "--set", source)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("error:") == 1 and "sample 250, feature f3 is inf" in result.stderr, result.stderr


@needs_mpi
def test_a_one_process_run_continues_on_two_workers_and_says_so(tmp_path):
    from nnctl.session import run_training

    part = run_training(CONFIGS / "xor.yaml", ["train.epochs=6"], runs_dir=tmp_path, stop=StopAfter(25))
    assert part.status == "interrupted"
    result = _nnctl("train", "--resume", str(part.run_dir), "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert "trained on 1 worker(s) and continues on 2" in result.stderr
    assert json.loads(result.stdout)["epochs"] == 6
    evaluated = _nnctl("eval", str(part.run_dir), "--json")  # the same checkpoint format, on one process
    assert evaluated.returncode == 0 and "accuracy" in json.loads(evaluated.stdout)["metrics"]


def test_shards_cover_every_item_once():
    for n in (0, 1, 7, 33, 128):
        for size in (1, 2, 3, 8):
            parts = [range(n)[shard(n, r, size)] for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize(
    "task, names",
    [
        ("classification", ["accuracy", "precision", "recall", "f1", {"type": "top_k_accuracy", "k": 2}, "log_loss"]),
        ("regression", ["mse", "rmse", "mae", "r2"]),
        ("multilabel", ["label_accuracy", "subset_accuracy"]),
    ],
)
def test_metric_states_of_shards_merge_to_the_whole_split(task, names):
    rng = np.random.default_rng(0)
    n, k = 101, 4
    if task == "classification":
        y, pred = rng.integers(0, k, n), rng.integers(0, k, n)
        proba = rng.dirichlet(np.ones(k), n)
    elif task == "multilabel":
        y, pred, proba = rng.integers(0, 2, (n, 3)), rng.integers(0, 2, (n, 3)), None
    else:
        y, pred, proba = rng.normal(5, 2, (n, 2)), rng.normal(5, 2, (n, 2)), None
    whole = build_metrics(names, task, k if task == "classification" else None)
    for metric in whole.values():
        metric.update(y, pred, proba)
    parts = [slice(0, 40), slice(40, 41), slice(41, 41), slice(41, 101)]
    shards = []
    for part in parts:
        metrics = build_metrics(names, task, k if task == "classification" else None)
        for metric in metrics.values():
            metric.update(y[part], pred[part], None if proba is None else proba[part])
        shards.append({c: m.state() for c, m in metrics.items()})
    merged = build_metrics(names, task, k if task == "classification" else None)
    for column, metric in merged.items():
        for states in shards:
            metric.merge(states[column])
        assert metric.result() == pytest.approx(whole[column].result(), rel=1e-12), column
    cm, other = ConfusionMatrix(3), ConfusionMatrix(3)
    cm.update([0, 1, 2], [0, 2, 2])
    other.merge(cm.state())
    assert other.result().tolist() == cm.result().tolist()


def test_every_registered_metric_can_be_merged_across_workers():
    from nnctl import registry
    from nnctl.metrics import Metric

    for entry in registry.METRICS.entries():
        metric = entry.component
        adds_up = bool(metric.sums) and metric.state is Metric.state and metric.merge is Metric.merge
        own = metric.state is not Metric.state and metric.merge is not Metric.merge
        assert adds_up or own, entry.name


def test_the_one_process_comm_changes_nothing():
    comm, grads = SingleProcess(), np.arange(5.0)
    assert comm.reduce_step(grads, 0.5, False, None) == (False, None)
    assert grads.tolist() == [0, 1, 2, 3, 4]  # no scaling, no copy
    assert comm.size == 1 and comm.stream == () and comm.sum(2.5) == 2.5 and comm.allgather("x") == ["x"]
