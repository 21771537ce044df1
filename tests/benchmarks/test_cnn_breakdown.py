"""benchmarks/cnn_breakdown.py runs and accounts for every layer of the benchmark CNN.

Slow: it times products and trains a few steps of the benchmark CNN. Tests never assert on time.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_breakdown_lists_each_product_and_every_layer_in_both_directions():
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cnn_breakdown.py"), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BENCH_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "yardstick 1024x1024x1024" in out and out.count("GFLOP/s") == 9
    assert "products of one step alone" in out
    for layer in ("conv2d(32", "conv2d(64", "max_pool2d", "flatten", "dense(128", "dense(10)"):
        for direction in ("forward", "backward"):
            assert any(layer in line and direction in line for line in out.splitlines()), (layer, direction)
