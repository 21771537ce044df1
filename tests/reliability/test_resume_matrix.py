"""Exact resume across 42 (config, interrupt point) pairs, with the default checkpoint throttle
(output.checkpoint_min_seconds: 2, so most epochs of these short runs are never written and an interrupt
saves the in-memory state of the last epoch boundary): stop at a seeded random step, resume, and compare
last.npz, best.npz, metrics.csv and summary.json with an uninterrupted run (issue 12, "What it must show").

Slow (about 15 s on 2 cores): `pytest -m slow tests/reliability/test_resume_matrix.py`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnctl.runs.checkpoint import Checkpoint
from nnctl.session import resume_training, run_training
from tests.conftest import StopAfter
from tests.reliability.harness import TALLY

pytestmark = pytest.mark.slow

OVERFIT = """
name: m_overfit
seed: 3
data:
  source: {type: function, target: sine, samples: 240, x_range: [0, 1], noise: 0.2}
  split: {train: 0.05, val: 0.15, test: 0.8}
  normalize: {method: minmax, range: [-1, 1]}
model:
  layers:
    - {type: polynomial, degree: 9}
    - {type: dense, units: 64, activation: tanh}
    - {type: dense, units: 64, activation: tanh}
    - {type: dense, units: 1}
loss: mse
optimizer: {type: adam, lr: 0.003}
"""
CONFIGS = {
    # issue 12 item 1's reproduction: the best val_loss comes early and is never beaten
    "overfit-val-loss": OVERFIT + "train: {epochs: 160, batch_size: 12, monitor: val_loss}\n",
    "overfit-early-restore-plateau": OVERFIT
    + "schedule: {type: reduce_on_plateau, patience: 15, factor: 0.5}\n"
    + "train: {epochs: 160, batch_size: 12, monitor: val_loss, early_stopping: {patience: 40, restore_best: true}}\n",
    "spiral-dropout-batchnorm-sgd": """
name: m_dropout
seed: 4
data: {source: {type: spiral, samples: 300, noise: 10}}
model:
  layers:
    - {type: dense, units: 16, activation: tanh}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 16}
    - batch_norm
    - relu
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 25, batch_size: 16}
""",
    "iris-adam-cosine-warmup": """
name: m_iris
seed: 5
data: {source: iris, normalize: standard}
model:
  layers: [{type: dense, units: 12, activation: relu}, {type: dense, units: 3}]
loss: cross_entropy
optimizer: {type: adamw, lr: 0.01, weight_decay: 0.01}
schedule: {type: cosine, warmup_epochs: 3, min_lr: 1.0e-4}
train: {epochs: 30, batch_size: 16, monitor: val_accuracy}
metrics: [accuracy]
""",
    "circle-early-stop-max-restore": """
name: m_circle
seed: 6
data: {source: {type: circle, samples: 300, noise: 25}}
model:
  layers: [{type: dense, units: 8, activation: tanh}, {type: dense, units: 2}]
loss: cross_entropy
optimizer: {type: adam, lr: 0.03}
schedule: {type: reduce_on_plateau, monitor: val_loss, patience: 3, factor: 0.3}
train: {epochs: 80, batch_size: 20, monitor: val_accuracy, early_stopping: {patience: 6, restore_best: true}}
metrics: [accuracy]
""",
    "xor-noise-l2-keep-last": """
name: m_xor
seed: 7
data: {source: {type: xor, samples: 200, noise: 10}}
model:
  layers:
    - {type: gaussian_noise, std: 0.1}
    - {type: dense, units: 8, activation: relu, regularizers: [{type: l2, rate: 0.001}]}
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: rmsprop, lr: 0.01}
train: {epochs: 30, batch_size: 10}
output: {checkpoint_every: 3, keep_last: 2}
""",
}
STOPS = 7  # interrupt points per config: 6 x 7 = 42 pairs


def _reads(text: str, tmp_path) -> int:
    """How many times an uninterrupted run reads its stop flag (the range interrupts are drawn from)."""
    counter = StopAfter(10**9)
    path = tmp_path / "count.yaml"
    path.write_text(text)
    run_training(path, runs_dir=tmp_path / "count", stop=counter)
    return 10**9 - counter.left


def _pairs():
    rng = np.random.default_rng(12)
    return [(name, int(i), float(rng.uniform(0.02, 0.98))) for name in CONFIGS for i in range(STOPS)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = {}
    for name, text in CONFIGS.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "c.yaml").write_text(text)
        whole = run_training(folder / "c.yaml", runs_dir=folder / "whole")
        out[name] = (folder / "c.yaml", whole.run_dir, _reads(text, folder))
    return out


def _snapshot(run_dir) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    keep = [i for i, c in enumerate(header) if c != "seconds"]
    state = {
        "metrics": [[r.split(",")[i] for i in keep] for r in rows],
        "summary": {k: summary.get(k) for k in ("status", "epochs", "steps", "best", "final", "stop_reason")},
    }
    for name in ("last", "best"):
        path = run_dir / "checkpoints" / f"{name}.npz"
        if path.exists():
            ckpt = Checkpoint.load(path)
            state[name] = (ckpt.epoch, ckpt.meta.get("value"), {k: v.tobytes() for k, v in ckpt.arrays().items()})
    state["epoch files"] = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch-*.npz"))
    return state


@pytest.mark.parametrize("name,index,fraction", _pairs(), ids=[f"{n}-{i}" for n, i, _ in _pairs()])
def test_stop_anywhere_then_resume_equals_uninterrupted(uninterrupted, tmp_path, name, index, fraction):
    config, whole_dir, reads = uninterrupted[name]
    stop_at = max(1, math.floor(reads * fraction))
    part = run_training(config, runs_dir=tmp_path / "part", stop=StopAfter(stop_at))
    tally = TALLY["resume: stop at step k, resume"]
    tally["cases"] += 1
    if part.status == "interrupted":
        resumed = resume_training(part.run_dir)
        assert resumed.status == "completed"
    want, got = _snapshot(whole_dir), _snapshot(part.run_dir)
    differing = sorted(k for k in {*want, *got} if want.get(k) != got.get(k))
    tally["resume mismatches"] += bool(differing)
    assert not differing, f"stopped after {stop_at} of {reads} flag reads: {differing} differ"
