"""Real processes, real signals (slow): SIGINT/SIGTERM at random moments, SIGKILL at 20 random moments,
a file-size limit (`ulimit -f`) during a checkpoint write, and two resumes of one run at once. Every
interrupted run resumes to the same files as an uninterrupted one (issue 12, items 5 and 7).

    pytest -m slow tests/reliability/test_processes.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnctl.runs.checkpoint import Checkpoint
from tests.reliability.harness import TALLY, Outcome, record

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="POSIX signals and ulimit")]
ROOT = Path(__file__).resolve().parents[2]

# About 2 s of training in 400 short epochs, checkpointing every epoch (so kills land in writes too)
# and with the default throttle in the signal tests (so interrupts land between saves).
CONFIG = """\
name: proc
seed: 2
data: {source: {type: spiral, samples: 1000, noise: 10}}
model:
  layers:
    - {type: dense, units: 32, activation: tanh}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 32, activation: tanh}
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 400, batch_size: 16}
"""
EVERY_EPOCH = "output: {checkpoint_min_seconds: 0, keep_last: 2}\n"


def nnctl(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nnctl.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> Outcome:
    out, err = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, out + err, "Traceback (most recent call last)" in err)


def final_files(run_dir: Path) -> dict:
    out = {}
    for name in ("last", "best"):
        ckpt = Checkpoint.load(run_dir / "checkpoints" / f"{name}.npz")
        out[name] = (ckpt.epoch, {k: v.tobytes() for k, v in ckpt.arrays().items()})
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    out["epochs in metrics.csv"] = [r.split(",")[0] for r in rows[1:]]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs of both configs, in a subprocess like the others."""
    folder = tmp_path_factory.mktemp("ref")
    refs = {}
    for key, text in (("throttled", CONFIG), ("every-epoch", CONFIG + EVERY_EPOCH)):
        (folder / f"{key}.yaml").write_text(text)
        outcome = finish(nnctl("train", folder / f"{key}.yaml", "--runs-dir", folder / key, "--quiet"))
        assert outcome.code == 0, outcome.output
        refs[key] = (folder / f"{key}.yaml", final_files(next((folder / key).rglob("summary.json")).parent))
    return refs


def wait_for(path_glob, root: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.rglob(path_glob)) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", [0.1, 0.8, 1.6])
def test_sigint_sigterm_then_resume_equals_uninterrupted(reference, tmp_path, signum, code, moment):
    config, want = reference["throttled"]
    proc = nnctl("train", config, "--runs-dir", tmp_path, "--quiet")
    wait_for("metrics.csv", tmp_path)
    time.sleep(moment)
    proc.send_signal(signum)
    outcome = finish(proc)
    run_dir = next(tmp_path.rglob("config.yaml")).parent
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    # -signum: the signal came after the run had completed, while Python was shutting down (it restores
    # the default handlers then); the shell sees 128 + signum all the same.
    assert record("processes: SIGINT/SIGTERM", outcome, (code, 0, -signum), rejected=False), outcome.describe()
    assert status == ("interrupted" if outcome.code == code else "completed")
    resumed = finish(nnctl("train", "--resume", run_dir, "--quiet"))
    assert record("processes: SIGINT/SIGTERM", resumed, (0,), rejected=False), resumed.describe()
    same = final_files(run_dir) == want
    TALLY["processes: SIGINT/SIGTERM"]["resume mismatches"] += not same
    assert same


def test_sigkill_at_20_random_moments(reference, tmp_path):
    """20 kills anywhere (in a step, an evaluation, a checkpoint write, after the end): each run resumes
    to the uninterrupted run's files, or is reported as already completed."""
    config, want = reference["every-epoch"]
    rng = np.random.default_rng(20)
    tally = TALLY["processes: SIGKILL, 20 random moments"]
    results = []
    for attempt in range(20):
        runs = tmp_path / f"k{attempt}"
        proc = nnctl("train", config, "--runs-dir", runs, "--quiet")
        wait_for("config.yaml", runs)
        time.sleep(float(rng.uniform(0, 2.8)))  # anywhere, up to past the end of the run
        proc.kill()
        proc.communicate(timeout=30)
        run_dir = next(runs.rglob("config.yaml")).parent
        summary = run_dir / "summary.json"
        finished = summary.is_file() and '"completed"' in summary.read_text()
        tally["killed after completing" if finished else "killed mid-run"] += 1
        resumed = finish(nnctl("train", "--resume", run_dir, "--quiet"))
        ok = record("processes: SIGKILL, 20 random moments", resumed, (0,), rejected=False)
        same = ok and final_files(run_dir) == want
        tally["resume mismatches"] += ok and not same
        tally["resumable or already completed"] += same
        results.append((attempt, resumed.code, "already completed" in resumed.output, same))
        assert ok and same, (attempt, resumed.describe())
    assert sum(r[3] for r in results) == 20


def test_file_size_limit_during_a_checkpoint_write(tmp_path):
    """`ulimit -f` smaller than a checkpoint: exit 2 naming the file, summary failed, no traceback."""
    text = CONFIG.replace("units: 32", "units: 256").replace("epochs: 400", "epochs: 3")  # ~0.8 MB checkpoints
    (tmp_path / "big.yaml").write_text(text)
    command = f"ulimit -f 256; exec {sys.executable} -m nnctl.cli train {tmp_path / 'big.yaml'} --runs-dir {tmp_path / 'runs'} --quiet"
    outcome = finish(_shell(command))
    assert record("processes: ulimit -f", outcome, (2,), rejected=False), outcome.describe()
    text = " ".join(outcome.output.split())  # the message may be wrapped
    assert "File too large" in text and ".npz" in text
    run_dir = next((tmp_path / "runs").rglob("summary.json")).parent
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    assert not list(run_dir.rglob(".*.tmp"))  # the half-written temporary file is removed


def _shell(command: str) -> subprocess.Popen:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1"}
    return subprocess.Popen(
        ["bash", "-c", command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_resumes_of_one_run_at_once(reference, tmp_path):
    """Both start together: one trains, the other is refused (exit 2, naming the holder); metrics.csv has
    each epoch once and the result equals the uninterrupted run."""
    config, want = reference["throttled"]
    proc = nnctl("train", config, "--runs-dir", tmp_path, "--quiet")
    wait_for("metrics.csv", tmp_path)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert finish(proc).code == 130
    run_dir = next(tmp_path.rglob("config.yaml")).parent
    first, second = nnctl("train", "--resume", run_dir, "--quiet"), nnctl("train", "--resume", run_dir, "--quiet")
    outcomes = sorted([finish(first), finish(second)], key=lambda o: o.code)
    for o in outcomes:
        assert record("processes: concurrent resume", o, (0, 2), rejected=False), o.describe()
    if [o.code for o in outcomes] == [0, 0]:  # the second started after the first had finished: a no-op
        assert any("already completed" in o.output for o in outcomes)
    else:
        assert [o.code for o in outcomes] == [0, 2] and "in use by another nnctl session" in outcomes[1].output
    assert final_files(run_dir) == want  # no duplicated epochs, same weights


KILL_PLUGIN = '''
import os, signal
from pathlib import Path
from pydantic import Field
from nnctl.registry import CALLBACKS, Params
from nnctl.train.callbacks import Callback


@CALLBACKS.register("kill_worker_once")
class KillWorkerOnce(Callback):
    """SIGKILLs its own (worker) process the first time a trial with `lr` starts."""

    class Params(Params):
        marker: str = Field(...)
        lr: float = Field(...)

    def on_train_start(self, loop):
        if loop.experiment.config.optimizer.lr == self.lr and not Path(self.marker).exists():
            Path(self.marker).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_trial_whose_worker_was_killed_runs_again_with_retry_failed(tmp_path):
    from tests.sweep.conftest import BASE

    (tmp_path / "kill_worker_plugin.py").write_text(KILL_PLUGIN)
    base = (
        BASE
        + f"plugins: [kill_worker_plugin]\ncallbacks: [{{type: kill_worker_once, marker: '{tmp_path / 'killed'}', lr: 0.05}}]\n"
    )
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "s.yaml").write_text("name: s\nbase: base.yaml\nspace:\n  optimizer.lr: [0.01, 0.05]\n")
    first = finish(nnctl("sweep", tmp_path / "s.yaml", "--runs-dir", tmp_path / "runs", "--quiet", "--json"))
    assert record("processes: sweep worker killed", first, (4,), rejected=False), first.describe()
    folder = next((tmp_path / "runs" / "sweeps" / "s").iterdir())
    killed = json.loads((folder / "trials.json").read_text())["trials"][1]
    assert (tmp_path / "killed").exists() and killed["status"] == "failed" and "died" in killed["error"]
    again = finish(nnctl("sweep", "--resume", folder, "--allow-plugins", "--quiet"))
    assert record("processes: sweep worker killed", again, (4,), rejected=False), again.describe()  # final
    retried = finish(nnctl("sweep", "--resume", folder, "--allow-plugins", "--retry-failed", "--quiet"))
    assert record("processes: sweep worker killed", retried, (0,), rejected=False), retried.describe()
    trials = json.loads((folder / "trials.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["completed", "completed"]
