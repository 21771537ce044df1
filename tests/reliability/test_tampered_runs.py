"""Tampered run directories, finished and interrupted: every command that reopens one (eval, predict,
train --resume, runs, report) answers exit 2 with a message naming the file, or carries on where the
damage does not matter; never a traceback, never NaN predictions with exit 0 (issue 12, items 6-8)."""

from __future__ import annotations

import io
import json
import shutil
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnctl.session import run_training
from tests.reliability.harness import cli, expect

CONFIG = """\
name: tamper
seed: 3
data:
  source: {type: circle, samples: 120, noise: 5}
  normalize: standard
model:
  layers:
    - {type: dense, units: 6, activation: tanh}
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
train: {epochs: 6, batch_size: 16}
output: {checkpoint_min_seconds: 0}
"""


class _StopAfter:
    """A reporter that sends the run a SIGINT-like stop after `epochs` epochs (an interrupted run)."""

    def __init__(self, stop, epochs):
        self.stop, self.epochs = stop, epochs

    def on_start(self, experiment, run_dir):
        pass

    def on_epoch(self, row):
        if row["epoch"] >= self.epochs:
            self.stop.signum = signal.SIGINT

    def on_end(self, result):
        pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nnctl.train.trainer import StopFlag

    root = tmp_path_factory.mktemp("runs")
    config = root / "tamper.yaml"
    config.write_text(CONFIG)
    finished = run_training(config, runs_dir=root / "finished")
    stop = StopFlag()
    interrupted = run_training(config, runs_dir=root / "interrupted", reporter=_StopAfter(stop, 3), stop=stop)
    assert (finished.status, interrupted.status, interrupted.epochs) == ("completed", "interrupted", 3)
    points = root / "points.csv"
    points.write_text("x1,x2\n0.1,0.2\n-1.5,2.0\n")
    return {"finished": Path(finished.run_dir), "interrupted": Path(interrupted.run_dir), "points": points}


def copy_run(trained, which, tmp_path) -> Path:
    run = tmp_path / "runs" / "tamper" / which
    shutil.copytree(trained[which], run)
    return run


def rewrite_npz(path: Path, change) -> None:
    """Load a checkpoint's entries (no pickle), let `change(entries)` edit them, write them back."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    change(entries)
    np.savez(path, **entries)


def meta_of(entries):
    return json.loads(str(entries["meta"]))


def set_meta(entries, meta):
    entries["meta"] = np.array(json.dumps(meta))


def edit_state(**changes):
    def change(entries):
        meta = meta_of(entries)
        meta["train_state"].update(changes)
        set_meta(entries, meta)

    return change


def bomb_header(path: Path) -> None:
    """A 1 KB archive whose x.npy header declares a (100000, 1000000) float64 array (745 GiB)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (100000, 1000000)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("param/0.weight.npy", np.lib.format.MAGIC_PREFIX + b"\x01\x00" + buf.getvalue()[8:] + b"\0" * 64)


# (id, which run, how to damage it (run dir -> None), command (after the run dir), message fragments)
FINISHED = [
    ("best-zero-bytes", lambda r: (r / "checkpoints/best.npz").write_bytes(b""), ["eval"], ["best.npz"]),
    (
        "best-garbage",
        lambda r: (r / "checkpoints/best.npz").write_bytes(b"PK\x03\x04junk" * 50),
        ["eval"],
        ["best.npz"],
    ),
    (
        "best-truncated",
        lambda r: (r / "checkpoints/best.npz").write_bytes((r / "checkpoints/best.npz").read_bytes()[:700]),
        ["eval"],
        ["best.npz"],
    ),
    (
        "best-is-folder",
        lambda r: ((r / "checkpoints/best.npz").unlink(), (r / "checkpoints/best.npz").mkdir()),
        ["eval"],
        ["best.npz"],
    ),
    (
        "best-fifo",
        lambda r: ((r / "checkpoints/best.npz").unlink(), __import__("os").mkfifo(r / "checkpoints/best.npz")),
        ["eval"],
        ["not a regular file"],
    ),
    ("best-header-bomb", lambda r: bomb_header(r / "checkpoints/best.npz"), ["eval"], ["745", "GiB"]),
    (
        "meta-list",
        lambda r: rewrite_npz(r / "checkpoints/best.npz", lambda e: e.update(meta=np.array("[1, 2]"))),
        ["eval"],
        ["not a JSON object"],
    ),
    (
        "meta-not-json",
        lambda r: rewrite_npz(r / "checkpoints/best.npz", lambda e: e.update(meta=np.array("{oops"))),
        ["eval"],
        ["not JSON"],
    ),
    (
        "meta-missing",
        lambda r: rewrite_npz(r / "checkpoints/best.npz", lambda e: e.pop("meta")),
        ["eval"],
        ["no metadata"],
    ),
    (
        "param-nan",
        lambda r: rewrite_npz(r / "checkpoints/best.npz", lambda e: e["param/0.weight"].__setitem__((0, 0), np.nan)),
        ["predict", "{points}"],
        ["param", "NaN"],
    ),
    (
        "param-shape",
        lambda r: rewrite_npz(
            r / "checkpoints/best.npz", lambda e: e.update({"param/0.weight": np.zeros((3, 3), np.float32)})
        ),
        ["eval"],
        ["0.weight"],
    ),
    (
        "norm-scale-zero",
        lambda r: rewrite_npz(
            r / "checkpoints/best.npz", lambda e: e.update({"norm/scale": np.zeros_like(e["norm/scale"])})
        ),
        ["predict", "{points}"],
        ["scale", "zeros"],
    ),
    (
        "object-array",
        lambda r: rewrite_npz(
            r / "checkpoints/best.npz", lambda e: e.update({"param/0.bias": np.array([{"a": 1}], dtype=object)})
        ),
        ["eval"],
        ["best.npz"],
    ),
    ("config-list", lambda r: (r / "config.yaml").write_text("- 1\n- 2\n"), ["eval"], ["config.yaml", "top level"]),
    (
        "config-garbage",
        lambda r: (r / "config.yaml").write_text("model: [\n"),
        ["eval"],
        ["config.yaml", "not valid YAML"],
    ),
    ("config-missing", lambda r: (r / "config.yaml").unlink(), ["eval"], ["config.yaml"]),
    (
        "config-bomb",
        lambda r: (r / "config.yaml").write_text((r / "config.yaml").read_text() + "x: &x [*x]\n"),
        ["eval"],
        ["recursive alias"],
    ),
    ("checkpoints-gone", lambda r: shutil.rmtree(r / "checkpoints"), ["eval"], ["no checkpoint"]),
    (
        "plugin-named",
        lambda r: (r / "config.yaml").write_text(
            (r / "config.yaml").read_text().replace("plugins: []", "plugins: [os]")
        ),
        ["eval"],
        ["--allow-plugins"],
    ),
    ("predict-overflow", lambda r: None, ["predict", "{huge}"], ["row", "overflow"]),
]

INTERRUPTED = [
    (
        "state-missing",
        lambda r: rewrite_npz(
            r / "checkpoints/last.npz",
            lambda e: set_meta(e, {k: v for k, v in meta_of(e).items() if k != "train_state"}),
        ),
        ["no training state"],
    ),
    (
        "state-list",
        lambda r: rewrite_npz(r / "checkpoints/last.npz", lambda e: set_meta(e, {**meta_of(e), "train_state": [1]})),
        ["train_state"],
    ),
    ("state-epoch-text", lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(epoch="3")), ["epoch"]),
    ("state-epoch-negative", lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(epoch=-1)), ["epoch"]),
    ("state-best-number", lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(best=5)), ["train_state.best"]),
    (
        "state-best-no-epoch",
        lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(best={"x": 1})),
        ["train_state.best"],
    ),
    ("state-wait-text", lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(early_wait="x")), ["early_wait"]),
    ("state-schedule-list", lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(schedule=[1])), ["schedule"]),
    (
        "state-callbacks-list",
        lambda r: rewrite_npz(r / "checkpoints/last.npz", edit_state(callbacks=[1])),
        ["callbacks"],
    ),
    (
        "optimizer-shape",
        lambda r: rewrite_npz(
            r / "checkpoints/last.npz",
            lambda e: e.update({k: np.zeros(1, v.dtype) for k, v in e.items() if k.startswith("optim/") and v.ndim}),
        ),
        ["optimizer state"],
    ),
    (
        "optimizer-missing",
        lambda r: rewrite_npz(
            r / "checkpoints/last.npz", lambda e: [e.pop(k) for k in [k for k in e if k.startswith("optim/")]]
        ),
        ["optimizer state"],
    ),
    (
        "best-shape",
        lambda r: rewrite_npz(
            r / "checkpoints/best.npz", lambda e: e.update({"param/0.weight": np.zeros((3, 3), np.float32)})
        ),
        ["best.npz", "0.weight"],
    ),
    ("best-zero-bytes", lambda r: (r / "checkpoints/best.npz").write_bytes(b""), ["best.npz"]),
    (
        "last-nan",
        lambda r: rewrite_npz(r / "checkpoints/last.npz", lambda e: e["param/1.bias"].__setitem__(0, np.inf)),
        ["NaN or infinite"],
    ),
    (
        "config-edited",
        lambda r: (r / "config.yaml").write_text((r / "config.yaml").read_text().replace("lr: 0.02", "lr: 0.5")),
        ["optimizer.lr"],
    ),
    (
        "metrics-garbage",
        lambda r: (r / "metrics.csv").write_bytes(b"epoch,step\n\x00\xff,zz\n1,2,3,4\n"),
        ["metrics.csv"],
    ),
    ("metrics-binary", lambda r: (r / "metrics.csv").write_bytes(bytes(range(256)) * 4), ["metrics.csv"]),
    ("summary-garbage", lambda r: (r / "summary.json").write_text("{not json"), ["summary.json"]),
    ("summary-list", lambda r: (r / "summary.json").write_text("[1, 2]"), ["summary.json"]),
    ("lock-held", lambda r: _hold_lock(r), ["in use by another nnctl session"]),
]

_HELD = []


def _hold_lock(run: Path) -> None:
    """Another live session holds the run: a child process keeps the lock until the test ends."""
    import subprocess
    import sys

    code = "import sys, time; from nnctl.runs.lock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    _HELD.append(proc)


@pytest.fixture(autouse=True)
def _release_held():
    yield
    while _HELD:
        proc = _HELD.pop()
        proc.kill()
        proc.wait()


def _args(command, trained, tmp_path):
    huge = tmp_path / "huge.csv"
    huge.write_text("x1,x2\n0.1,0.2\n1e308,-1e308\n")
    return [a.format(points=trained["points"], huge=huge) for a in command]


@pytest.mark.parametrize("damage,command,fragments", [c[1:] for c in FINISHED], ids=[c[0] for c in FINISHED])
def test_finished_run_tampered(trained, tmp_path, damage, command, fragments):
    run = copy_run(trained, "finished", tmp_path)
    damage(run)
    args = _args(command, trained, tmp_path)
    outcome = cli(args[0], run, *args[1:])
    expect("run dirs: tampered, finished", outcome, *fragments)


@pytest.mark.parametrize("damage,fragments", [c[1:] for c in INTERRUPTED], ids=[c[0] for c in INTERRUPTED])
def test_interrupted_run_tampered(trained, tmp_path, damage, fragments):
    run = copy_run(trained, "interrupted", tmp_path)
    before = (run / "metrics.csv").read_bytes() if (run / "metrics.csv").is_file() else None
    damage(run)
    damaged_metrics = (run / "metrics.csv").read_bytes() if (run / "metrics.csv").is_file() else None
    outcome = cli("train", "--resume", run, "--quiet")
    expect("run dirs: tampered, interrupted", outcome, *fragments)
    # Nothing already written is lost: a refused resume leaves metrics.csv as it found it.
    assert ((run / "metrics.csv").read_bytes() if (run / "metrics.csv").is_file() else None) == damaged_metrics
    assert before is not None


def test_runs_listing_survives_garbage(trained, tmp_path):
    root = tmp_path / "runs"
    good = copy_run(trained, "finished", tmp_path)
    for i, text in enumerate(["{not json", "[1, 2]", '{"best": 5, "final": [1], "status": 3, "epochs": "x"}', ""]):
        bad = root / "tamper" / f"bad{i}"
        shutil.copytree(good, bad)
        (bad / "summary.json").write_text(text)
    for args in ([], ["--sort", "val_accuracy"], ["--sort", "best"], ["--sort", "epochs"], ["--json"]):
        outcome = cli("runs", root, *args)
        expect("run dirs: listing", outcome, codes=(0,))
        assert "unreadable" in outcome.output and good.name in outcome.output


def test_report_and_plot_survive_garbage_metrics(trained, tmp_path):
    run = copy_run(trained, "finished", tmp_path)
    (run / "metrics.csv").write_bytes(b"epoch,step\n\x00\xff,zz\n1,2,3,4\n")
    outcome = cli("report", run)
    expect("run dirs: tampered, finished", outcome, codes=(0, 2))
    outcome = cli("plot", run, "--kind", "curves")
    expect("run dirs: tampered, finished", outcome, "metrics.csv", codes=(2,))


def test_resume_of_a_completed_run_says_so(trained, tmp_path):
    run = copy_run(trained, "finished", tmp_path)
    outcome = cli("train", "--resume", run, "--json")
    expect("run dirs: tampered, finished", outcome, "already completed", '"status": "completed"', codes=(0,))


def test_resume_killed_after_its_final_checkpoint_completes_the_summary(trained, tmp_path):
    run = copy_run(trained, "finished", tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    outcome = cli("train", "--resume", run, "--quiet")
    expect("run dirs: tampered, finished", outcome, "already completed", codes=(0,))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_a_stale_lock_does_not_block(trained, tmp_path):
    run = copy_run(trained, "interrupted", tmp_path)
    (run / "run.lock").write_text(json.dumps({"host": "elsewhere", "pid": 1}))  # left by a killed session
    outcome = cli("train", "--resume", run, "--quiet")
    expect("run dirs: tampered, interrupted", outcome, codes=(0,))
    assert not (run / "run.lock").exists()


def test_a_metrics_row_torn_by_a_kill_does_not_block_resume(trained, tmp_path):
    """A SIGKILL in the middle of appending a row leaves a partial last line: resume drops it."""
    run = copy_run(trained, "interrupted", tmp_path)
    with open(run / "metrics.csv", "a") as fh:
        fh.write("1")  # a torn "12,..." reads as epoch 1, out of order
    outcome = cli("train", "--resume", run, "--quiet")
    expect("run dirs: tampered, interrupted", outcome, codes=(0,))
    epochs = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 7)]
