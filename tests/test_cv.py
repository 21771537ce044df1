"""k-fold cross-validation: disjoint, stratified, reproducible folds; the test split untouched; the summary."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.build import build_experiment
from nnctl.cli import app
from nnctl.config import load_config
from nnctl.data.split import kfold

runner = CliRunner()
PENGUINS = Path(__file__).resolve().parents[1] / "configs" / "penguins.yaml"


def fold_splits(folds, fold, repeat=0, extra=()):
    config = load_config(
        PENGUINS, [f"data.split.folds={folds}", f"data.split.fold={fold}", f"data.split.repeat={repeat}", *extra]
    )
    experiment = build_experiment(config)
    return experiment.indices, experiment.dataset.y


def test_folds_partition_the_pool_are_stratified_and_keep_the_test_split():
    plain, y = fold_splits(5, 0)
    pool = np.sort(np.concatenate([plain["train"], plain["val"]]))
    vals = []
    for k in range(5):
        idx, _ = fold_splits(5, k)
        np.testing.assert_array_equal(idx["test"], plain["test"])  # untouched
        assert not np.intersect1d(idx["train"], idx["val"]).size
        np.testing.assert_array_equal(np.sort(np.concatenate([idx["train"], idx["val"]])), pool)
        vals.append(idx["val"])
    np.testing.assert_array_equal(np.sort(np.concatenate(vals)), pool)  # every pooled row validates exactly once
    for k in range(3):  # stratified: each fold's class count within one of its share
        share = np.bincount(y[pool], minlength=3) / 5
        assert np.all(np.abs(np.array([np.sum(y[v] == k) for v in vals]) - share[k]) <= 1)


def test_folds_are_reproducible_and_repeats_reshuffle():
    a, _ = fold_splits(5, 2)
    b, _ = fold_splits(5, 2)
    c, _ = fold_splits(5, 2, repeat=1)
    np.testing.assert_array_equal(a["val"], b["val"])
    np.testing.assert_array_equal(a["train"], b["train"])
    assert not np.array_equal(np.sort(a["val"]), np.sort(c["val"]))


def test_kfold_deals_each_class_evenly():
    y = np.array([0] * 7 + [1] * 3 + [2] * 10)
    which = kfold(y, len(y), 3, np.random.default_rng(0))
    for k in range(3):
        counts = np.bincount(which[y == k], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.bincount(which).max() - np.bincount(which).min() <= 1


def test_cv_command_writes_fold_runs_and_a_summary(tmp_path):
    args = ["cv", str(PENGUINS), "--folds", "3", "--set", "train.epochs=3", "--runs-dir", str(tmp_path), "--json", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    folder = Path(doc["cv_dir"])
    assert [f["fold"] for f in doc["folds"]] == [0, 1, 2]
    accuracies = [f["metrics"]["val_accuracy"] for f in doc["folds"]]
    assert doc["mean"]["val_accuracy"] == pytest.approx(np.mean(accuracies))
    assert doc["std"]["val_accuracy"] == pytest.approx(np.std(accuracies))
    assert json.loads((folder / "summary.json").read_text())["mean"] == doc["mean"]
    assert len((folder / "folds.csv").read_text().splitlines()) == 4
    fold_run = Path(doc["folds"][1]["run_dir"])
    assert "fold: 1" in (fold_run / "config.yaml").read_text()  # a normal run that knows its fold
    evaluated = json.loads(
        runner.invoke(app, ["eval", str(fold_run), "--split", "val", "--checkpoint", "last", "--json"]).stdout
    )
    assert evaluated["metrics"]["accuracy"] == pytest.approx(doc["folds"][1]["metrics"]["val_accuracy"])


def test_cv_with_a_bad_config_exits_2_and_leaves_no_folder(tmp_path):
    result = runner.invoke(
        app, ["cv", str(PENGUINS), "--set", "data.source.columns.islnd.type=category", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "islnd" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.rglob("cv-*"))


@pytest.mark.slow
def test_parallel_folds_give_the_same_scores_as_serial(tmp_path):
    base = ["cv", str(PENGUINS), "--folds", "3", "--repeats", "2", "--set", "train.epochs=3", "--json", "-q"]
    serial = json.loads(runner.invoke(app, [*base, "--runs-dir", str(tmp_path / "a")]).stdout)
    parallel = json.loads(runner.invoke(app, [*base, "--parallel", "2", "--runs-dir", str(tmp_path / "b")]).stdout)
    assert [f["metrics"] for f in serial["folds"]] == [f["metrics"] for f in parallel["folds"]]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
def test_ctrl_c_stops_the_folds_and_still_writes_the_summary(tmp_path, parallel):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "nnctl.cli", "cv", str(PENGUINS), "--set", "train.epochs=100000", "-q"]
    args += ["--parallel", str(parallel), "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    )
    deadline = time.time() + 60
    while not list(tmp_path.rglob("fold-*/metrics.csv")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    summary = json.loads(next(tmp_path.rglob("cv-*/summary.json")).read_text())
    assert summary["status"] == "interrupted" and summary["folds"]
    assert all(f["status"] == "interrupted" for f in summary["folds"])
    for fold in summary["folds"]:
        assert json.loads((Path(fold["run_dir"]) / "summary.json").read_text())["status"] == "interrupted"
