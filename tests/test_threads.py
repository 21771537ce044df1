"""BLAS threads: train.threads / --threads applied through threadpoolctl, auto's choices, the summary."""

import json

import pytest

from nnctl import threads
from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.train.callbacks import Callback
from nnctl.train.trainer import train
from tests.conftest import CONFIGS

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> int:
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")


class Record(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, loop, row):
        self.seen.append(blas_threads())


def test_explicit_threads_hold_during_training_and_are_restored(tmp_path):
    before = blas_threads()
    wanted = 2 if before == 1 else 1
    config = load_config(CONFIGS / "iris.yaml", ["train.epochs=3", f"train.threads={wanted}"])
    record = Record()
    result = train(build_experiment(config), callbacks=[record])
    assert record.seen == [wanted] * 3
    assert blas_threads() == before
    assert result.status == "completed"


def test_summary_records_the_choice(tmp_path):
    from nnctl.session import run_training

    result = run_training(CONFIGS / "iris.yaml", ["train.epochs=2", "train.threads=1"], runs_dir=tmp_path)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    recorded = summary["threads"]
    assert {k: recorded[k] for k in ("setting", "threads", "reason")} == {
        "setting": 1,
        "threads": 1,
        "reason": "set by train.threads",
    }
    assert recorded["blas"] == threads.blas_library()  # which library and kernel did the products
    assert recorded["blas"]["library"].split()[0] in ("openblas", "mkl", "blis", "flexiblas")


def test_blas_library_names_the_kernel_and_an_environment_that_forced_it(monkeypatch):
    info = [
        {"user_api": "openmp", "internal_api": "openmp", "version": None},
        {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell"},
    ]
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert threads.blas_library(info) == {"library": "openblas 0.3.31", "kernel": "Haswell"}
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert threads.blas_library(info)["kernel_forced_by"] == "OPENBLAS_CORETYPE=Haswell"
    mkl = [{"user_api": "blas", "internal_api": "mkl", "version": "2024.1", "threading_layer": "intel"}]
    assert threads.blas_library(mkl) == {"library": "mkl 2024.1"}  # the variable is OpenBLAS's alone
    assert threads.blas_library([]) is None


def test_auto_runs_a_small_model_on_one_thread():
    config = load_config(CONFIGS / "iris.yaml", ["train.epochs=1"])
    experiment = build_experiment(config)
    control = threads.ThreadControl("auto", experiment.network, config.train.batch_size)
    assert control.product == 16 * 4 * 16  # the largest product: batch 16 x (4 -> 16)
    assert control.auto()[0] == 1


def test_auto_uses_the_cores_for_large_products_and_backs_off_under_load(monkeypatch):
    config = load_config(CONFIGS / "digits_cnn.yaml", ["train.epochs=1"])
    experiment = build_experiment(config)
    control = threads.ThreadControl("auto", experiment.network, config.train.batch_size)
    assert control.product >= threads.SMALL_PRODUCT
    monkeypatch.setattr(threads, "cores", lambda: 4)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "other_load", lambda: 0.2)
    assert control.auto()[0] == 4  # quiet: every core
    control.splits = False  # BLAS threads, which spin while they wait: back off
    monkeypatch.setattr(threads, "other_load", lambda: 3.0)  # three other processes running
    assert control.auto()[0] == 1
    monkeypatch.setattr(threads, "other_load", lambda: 1.0)  # one other
    assert control.auto()[0] == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user's limit caps auto
    monkeypatch.setattr(threads, "other_load", lambda: 0.0)
    assert control.auto()[0] == 2


def test_auto_keeps_split_batches_on_every_core_under_load(monkeypatch):
    """A CNN whose batches split over Python threads (they sleep while waiting) keeps them on a busy
    machine; the same load steps a BLAS-threaded model down."""
    config = load_config(CONFIGS / "digits_cnn.yaml", ["train.epochs=1"])
    experiment = build_experiment(config)
    control = threads.ThreadControl("auto", experiment.network, config.train.batch_size)
    assert control.splits
    monkeypatch.setattr(threads, "cores", lambda: 2)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "other_load", lambda: 2.0)
    count, reason = control.auto()
    assert count == 2 and "split" in reason
    control.splits = False
    assert control.auto()[0] == 1


def test_other_load_counts_other_processes_not_this_ones_threads():
    import subprocess
    import sys
    import time

    if not threads.Path("/proc/loadavg").exists():
        pytest.skip("no /proc/loadavg here")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert threads.other_load(samples=5) >= 1  # at least one of the two is seen running
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
