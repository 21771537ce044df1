"""benchmarks/gpu_checks.py, the one script a session with a GPU runs, works here in its CPU self-test:
the same harness, trainings and report with the CPU standing in for the GPU (every error 0), and
bench_gpu.py refusing with exit status 2 and a message saying what is missing."""

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.device_cases import device_cases


def test_gpu_checks_self_test_on_the_cpu(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_checks.py"),
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--quick",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "out" / "gpu_checks.json").read_text())
    assert results["passed"] is True and results["device"] == "cpu"
    components = results["components"]
    expected = {(kind, case) for kind, items in device_cases().items() for _, case, _ in items}
    assert {(r["kind"], r["case"]) for r in components["records"]} == expected  # every case, every kind
    assert all(r["max"] == 0.0 and r["errors"] for r in components["records"])
    assert components["missing_cases"] == {}
    runs = results["trainings"]["runs"]
    assert set(runs) == {"digits_cnn.yaml", "mlp_benchmark"}
    assert all(r["accuracy_difference_points"] == 0.0 and r["cpu"]["accuracy"] > 0 for r in runs.values())
    bench = results["benchmark"]
    assert bench["exit_code"] == 2 and "nothing to measure" in bench["message"], bench
    markdown = (tmp_path / "out" / "gpu_checks.md").read_text()
    assert "all passed: **True**" in markdown and "| layers | dense-0 |" in markdown


def test_gpu_checks_without_the_device_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_checks.py"), str(tmp_path / "out"), "--device", "cuda:7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "gpu_checks: device cuda" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_quick_trainings_compare_runs_on_the_same_thread_count(monkeypatch):
    """The CPU self-test's two runs of a case are bitwise equal even when the machine's load changes between
    them (train.threads: auto picked 2 threads for one and 1 for the other: 0.98 points apart, a flaky test)."""
    import importlib
    import itertools

    import nnctl.threads
    from nnctl.device import CPU

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    gpu_checks = importlib.import_module("gpu_checks")
    loads = itertools.cycle([0.0, 100.0])  # quiet for one run, busy for the next
    monkeypatch.setattr(nnctl.threads, "cores", lambda: 2)
    monkeypatch.setattr(nnctl.threads, "other_load", lambda *args, **kwargs: next(loads))
    runs = gpu_checks.check_trainings(CPU, quick=True)["runs"]
    for run in runs.values():
        assert run["accuracy_difference_points"] == 0.0 and run["cpu"]["loss"] == run["device"]["loss"]
