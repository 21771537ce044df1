"""benchmarks/bench_contention.py runs, reports both conditions and kills the competitors it started.

The whole run is marked slow: it starts CPU-bound busy loops, which would slow whatever else runs
beside the default suite. Tests never assert on time; the figures are the benchmark's business.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_contention", ROOT / "benchmarks" / "bench_contention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_measurement_cut_short_reports_its_timed_epochs_else_its_warmup_else_a_lower_bound():
    cut_short = _load_script().cut_short
    lines = ['{"setup_s": 2.0}', '{"epoch_s": 9.0, "warmup": true}']
    epochs = [f'{{"epoch_s": {t}, "warmup": false}}' for t in (4.0, 5.0, 15.0)]
    timed = cut_short("cnn", "torch", "\n".join(lines + epochs) + "\n", 60.0)
    assert timed["times_s"] == [4.0, 5.0, 15.0] and not timed["lower_bound"]
    assert timed["mean_s"] == 8.0  # the mean, which counts time spent waiting for the CPU; the median would be 5
    warmup_only = cut_short("cnn", "torch", "\n".join(lines[:2]).encode(), 60.0)  # bytes, as run() may give
    assert warmup_only["mean_s"] == 9.0 and not warmup_only["lower_bound"]
    nothing = cut_short("cnn", "torch", lines[0], 60.0)
    assert nothing["mean_s"] == 58.0 and nothing["lower_bound"]  # the time it had for its warm-up epoch
    assert cut_short("cnn", "torch", None, 60.0)["mean_s"] == 60.0


def test_slowdown_is_marked_when_a_side_was_cut_short():
    slowdown = _load_script().slowdown
    res = {"quiet": {"torch": {"mean_s": 2.0}}, "loaded": {"torch": {"mean_s": 30.0, "lower_bound": True}}}
    assert slowdown(res, "torch") == (15.0, ">=")
    res["loaded"]["torch"]["lower_bound"] = False
    assert slowdown(res, "torch") == (15.0, "=")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_quick_run_reports_quiet_and_loaded_and_stops_its_competitors():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_contention.py", "--quick", "--no-torch", "--workload", "tiny", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    tiny = result["workloads"]["tiny"]
    assert result["competitors"] == 2 and set(result["workloads"]) == {"tiny"}
    assert tiny["nnctl_over_yardstick"] == tiny["slowdown_nnctl"] / tiny["slowdown_python"]
    for condition in ("quiet", "loaded"):
        side = tiny[condition]["nnctl"]
        assert side["mean_s"] > 0 and len(side["times_s"]) >= 2
        assert side["threads"]["setting"] == "auto" and side["threads"]["threads"] == 1  # a tiny model: one thread
    assert tiny["slowdown_nnctl"] == tiny["loaded"]["nnctl"]["mean_s"] / tiny["quiet"]["nnctl"]["mean_s"]
    assert "torch" not in tiny["quiet"] and "slowdown_torch" not in tiny  # --no-torch
    pids = tiny["loaded"]["competitor_pids"]
    leaked = [pid for pid in pids if _alive(pid)]
    for pid in leaked:  # do not leave busy loops behind, even when failing
        os.kill(pid, signal.SIGKILL)
    assert len(pids) == 2 and not leaked
