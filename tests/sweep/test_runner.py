"""Sweeps end to end: trials in worker processes, failures, interruption and resume, pruning."""

import csv
import json

import pytest

from nnctl.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED
from nnctl.sweep.executors import ProcessExecutor
from nnctl.sweep.runner import Runner, open_sweep, prepare_sweep


def run(path, tmp_path, parallel=1, on_record=None, executor=None):
    sweep = prepare_sweep(path, tmp_path / "runs")
    return Runner(sweep, executor or ProcessExecutor(parallel), on_record=on_record).run()


def rows(outcome):
    with open(outcome.path / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def results(outcome):
    """What must not depend on where or how many at once the trials ran."""
    keys = ("trial", "status", "params", "seed", "objective", "metrics", "curve", "epochs")
    return [{k: r.get(k) for k in keys} for r in outcome.records]


def test_a_broken_trial_is_recorded_and_the_others_finish(sweep_file, tmp_path):
    # units 3 passes config validation but cannot fit 2 classes: the trial fails when it is built
    path = sweep_file("space:\n  model.layers[1].units: [2, 3]\n  optimizer.lr: [0.01, 0.05]\n")
    outcome = run(path, tmp_path, parallel=2)
    assert outcome.exit_code == EXIT_SOME_FAILED and outcome.status == "some_failed"
    table = rows(outcome)
    assert [r["status"] for r in table] == ["completed", "completed", "failed", "failed"]
    assert "data have 2 classes" in table[2]["error"]
    assert all(float(r["test_accuracy"]) > 0 for r in table[:2])
    best = outcome.best
    assert best["status"] == "completed"
    assert (outcome.path / "best.yaml").read_text().count(f"seed: {best['seed']}") == 1
    for r in table[:2]:
        summary = json.loads((outcome.path / r["run_dir"] / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs"] == 4
    # (the same results whatever the worker count: tests/sweep/test_dask.py runs one sweep both ways)


def test_interrupted_sweep_resumes_only_the_missing_trials(sweep_file, tmp_path):
    path = sweep_file("strategy: random\ntrials: 5\nseed: 2\nspace:\n  optimizer.lr: {loguniform: [0.001, 0.1]}\n")

    def interrupt_after_two(record):
        if record["trial"] == 1:
            raise KeyboardInterrupt

    first = run(path, tmp_path, on_record=interrupt_after_two)
    assert first.exit_code == EXIT_INTERRUPTED and first.status == "interrupted"
    done = {r["trial"]: r for r in first.records if r["status"] == "completed"}
    assert set(done) == {0, 1}
    stamps = {i: (first.path / r["run_dir"] / "summary.json").stat().st_mtime_ns for i, r in done.items()}

    ran = []
    second = Runner(open_sweep(first.path), ProcessExecutor(1), on_record=lambda r: ran.append(r["trial"])).run()
    assert sorted(ran) == [2, 3, 4]
    assert second.exit_code == 0 and [r["status"] for r in second.records] == ["completed"] * 5
    assert {i: (first.path / r["run_dir"] / "summary.json").stat().st_mtime_ns for i, r in done.items()} == stamps
    assert len(rows(second)) == 5 and (second.path / "best.yaml").exists()


def test_a_dying_worker_fails_only_its_own_task():
    import os

    executor = ProcessExecutor(2, preload=None)
    try:
        futures = [executor.submit(os._exit, 3), executor.submit(abs, -2), executor.submit(abs, -5)]
        with pytest.raises(Exception, match=r"worker process died \(exit code 3\)"):
            futures[0].result(timeout=60)
        assert [f.result(timeout=60) for f in futures[1:]] == [2, 5]
    finally:
        executor.shutdown()


def test_workers_limit_blas_threads_before_numpy_loads():
    from nnctl.sweep.worker import probe

    executor = ProcessExecutor(2, threads=1, preload=None)
    try:
        seen = executor.submit(probe).result(timeout=60)
    finally:
        executor.shutdown()
    assert set(seen["env"].values()) == {"1"}
    assert seen["numpy_before_limits"] is False


def test_pruned_trial_stops_early_and_says_so(tmp_path):
    pytest.importorskip("optuna")
    from nnctl.sweep.trial import run_trial
    from nnctl.yamlio import parse_yaml
    from tests.sweep.conftest import BASE

    config, _ = parse_yaml(BASE)
    config["train"]["epochs"] = 30
    config["optimizer"]["lr"] = 1e-5  # barely learns: far worse than the finished trials below
    strong = [{"objective": 0.01, "curve": [0.01] * 30} for _ in range(3)]
    record = run_trial(
        {
            "trial": 0,
            "config": config,
            "run_dir": str(tmp_path / "t0"),
            "objective": {"metric": "loss", "split": "val", "column": "val_loss"},
            "direction": "min",
            "pruning": {"warmup_epochs": 2, "startup_trials": 3},
            "history": strong,
        }
    )
    assert record["status"] == "pruned", record
    assert record["epochs"] == 2  # stopped right after the warm-up, not after 30 epochs
    assert record["objective"] is not None
    summary = json.loads((tmp_path / "t0" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs"] == 2


def test_tpe_sweep_with_pruning_records_pruned_trials(sweep_file, tmp_path):
    pytest.importorskip("optuna")
    path = sweep_file(
        "set: [train.epochs=8]\nstrategy: tpe\ntrials: 6\nbatch: 3\nstartup_trials: 3\nseed: 5\n"
        "objective: {metric: loss}\npruning: {warmup_epochs: 1, startup_trials: 2}\n"
        "space:\n  optimizer.lr: {loguniform: [1.0e-5, 0.1]}\n"
    )
    outcome = run(path, tmp_path, parallel=2)
    assert outcome.exit_code == 0
    statuses = [r["status"] for r in outcome.records]
    assert set(statuses) <= {"completed", "pruned"} and statuses[:3] == ["completed"] * 3
    assert "pruned" in statuses  # with this seed, the second batch has weak proposals
    for r in outcome.records:
        summary = json.loads((outcome.path / r["run_dir"] / "summary.json").read_text())
        if r["status"] == "pruned":
            assert r["epochs"] < 8 and summary["status"] == "interrupted"
    assert [r["status"] for r in rows(outcome)] == statuses


def test_objective_cv_scores_each_trial_by_its_folds(sweep_file, tmp_path):
    path = sweep_file("objective: {metric: accuracy, cv: 3}\nspace:\n  optimizer.lr: [0.01, 0.05]\n")
    outcome = run(path, tmp_path)
    assert outcome.status == "completed", [r.get("error") for r in outcome.records]
    for record in outcome.records:
        folds = record["folds"]
        assert [f["fold"] for f in folds] == [0, 1, 2] and all(f["status"] == "completed" for f in folds)
        assert record["objective"] == pytest.approx(sum(f["metrics"]["val_accuracy"] for f in folds) / 3)
        for f in folds:  # each fold a normal run that knows its fold, under the trial's folder
            assert (
                f"fold: {f['fold']}"
                in (outcome.path / record["run_dir"] / f"fold-{f['fold']}" / "config.yaml").read_text()
            )


# --- GPUs: one trial per GPU (faked GPU counts; nothing here needs a GPU) ------------------------------


def test_workers_are_pinned_one_per_gpu_and_a_replacement_takes_the_dead_ones_gpu():
    import os

    from nnctl.sweep.worker import probe

    executor = ProcessExecutor(2, threads=1, preload=None, gpus=["3", "5"])
    try:
        seen = [f.result(timeout=60) for f in [executor.submit(probe, 0.3) for _ in range(2)]]
        assert sorted(s["cuda_visible"] for s in seen) == ["3", "5"]  # one worker per GPU
        assert all(s["gpu"] == s["cuda_visible"] for s in seen)
        died = executor.submit(os._exit, 3)  # one worker dies; its GPU is free again
        with pytest.raises(Exception, match="worker process died"):
            died.result(timeout=60)
        later = [f.result(timeout=60) for f in [executor.submit(probe, 0.3) for _ in range(2)]]
    finally:
        executor.shutdown()
    assert sorted(s["cuda_visible"] for s in later) == ["3", "5"]  # the new worker took the dead one's GPU
    assert len({s["pid"] for s in later} - {s["pid"] for s in seen}) == 1


def test_sweep_gpus_pins_only_cuda_sweeps_with_parallel_trials(monkeypatch):
    from nnctl.sweep import executors

    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1", "2", "3"])
    cuda = {"train": {"device": "cuda"}}
    assert executors.sweep_gpus(cuda, 4) == ["0", "1", "2", "3"]
    assert executors.sweep_gpus(cuda, 1) is None  # one trial at a time: nothing to spread
    assert executors.sweep_gpus({"train": {"device": "cuda:2"}}, 4) is None  # the config names its GPU
    assert executors.sweep_gpus({"train": {}}, 4) is None and executors.sweep_gpus({}, 4) is None


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    import sys

    from nnctl.errors import NnctlError
    from nnctl.sweep.executors import visible_gpus
    from tests.test_device import _fake_cupy

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(2))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert visible_gpus() == ["5", "7"]
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0))
    with pytest.raises(NnctlError, match="finds no GPU"):
        visible_gpus()


def test_a_pinned_worker_trains_a_cuda_config_on_its_only_gpu(monkeypatch):
    from nnctl.config import validate
    from nnctl.sweep import trial, worker
    from nnctl.yamlio import parse_yaml
    from tests.sweep.conftest import BASE

    raw, _ = parse_yaml(BASE)
    raw.setdefault("train", {})["device"] = "cuda:3"
    config = validate(raw)
    assert trial.trial_device(config) is None  # not pinned: the config's own device
    monkeypatch.setattr(worker, "pinned_gpu", "3")
    assert trial.trial_device(config) == "cuda:0"  # pinned: CUDA_VISIBLE_DEVICES=3 makes it the first GPU
    raw["train"]["device"] = "cpu"
    assert trial.trial_device(validate(raw)) is None
