"""Ctrl-C / SIGTERM: the run saves its last checkpoint, says `interrupted`, and exits 130 / 143."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CONFIGS


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits(tmp_path, signum, code):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nnctl.cli",
            "train",
            str(CONFIGS / "spiral.yaml"),
            "--runs-dir",
            str(tmp_path),
            "--set",
            "train.epochs=100000",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(len(p.read_text().splitlines()) > 1 for p in tmp_path.rglob("metrics.csv")):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)  # wait until training is under way (a first epoch row below metrics.csv's header)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    run = next(tmp_path.rglob("summary.json")).parent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    with np.load(Path(run) / "checkpoints/last.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    assert meta["step"] > 0
