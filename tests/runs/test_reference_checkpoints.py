"""The redesigned run/loop code writes the same bytes as the commit before it (see reference_runs.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs.reference_runs import ROOT

REFERENCE = json.loads((Path(__file__).parent / "reference_hashes.json").read_text())


@pytest.fixture(scope="module")
def current():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "tests.runs.reference_runs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    now = json.loads(out)
    if now["fingerprint"] != REFERENCE["fingerprint"]:
        pytest.skip(f"reference hashes were recorded on {REFERENCE['fingerprint']}, this is {now['fingerprint']}")
    return now["cases"]


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_checkpoints_and_metrics_are_byte_identical(current, case):
    assert current[case] == REFERENCE["cases"][case]
