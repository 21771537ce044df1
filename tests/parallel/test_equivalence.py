"""2 MPI ranks train exactly what one process trains (float64, same global batch), up to rounding."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.parallel import find_mpiexec
from tests.parallel.cases import CASES, ROOT, train_all

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install 'nnctl[mpi]')")

RTOL = 1e-10


def _last(root: Path, case: str) -> Path:
    (path,) = (root / case).glob("*/*/checkpoints/last.npz")
    return path


def _metrics(checkpoint: Path) -> list[dict[str, str]]:
    with open(checkpoint.parents[1] / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every case on one process (here) and on 2 ranks (one mpiexec for all of them)."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    train_all(one)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run(
        [find_mpiexec(), "-n", "2", sys.executable, "-m", "tests.parallel.cases", str(two)],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    return one, two


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_train_the_one_process_parameters(trained, case):
    one, two = (np.load(_last(root, case)) for root in trained)
    assert sorted(one.files) == sorted(two.files)
    compared = 0
    for key in one.files:
        if not key.startswith(("param/", "buffer/", "optim/", "norm/")):  # norm/: the streaming fit on shards
            continue
        a, b = one[key].astype(np.float64), two[key].astype(np.float64)
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        # Relative to the array's size; an array that is rounding noise (a bias before batch norm, whose
        # gradient is 0 in exact arithmetic, stays ~1e-16) must stay at that noise.
        tolerance = RTOL * scale if scale > 1e-12 else 1e-12
        assert np.max(np.abs(a - b), initial=0.0) <= tolerance, (key, np.max(np.abs(a - b)), scale)
        compared += 1
    assert compared >= 4
    assert int(one["optim/t"]) == int(two["optim/t"]) > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_report_the_one_process_metrics(trained, case):
    one, two = (_metrics(_last(root, case)) for root in trained)
    assert len(one) == len(two) == 3
    for row_one, row_two in zip(one, two, strict=True):
        assert list(row_one) == list(row_two)
        for column in row_one:
            if column == "seconds":
                continue
            if column.endswith(("accuracy", "f1", "epoch", "step", "lr")):
                assert row_one[column] == row_two[column], column  # counts: exactly equal
            else:
                assert float(row_two[column]) == pytest.approx(float(row_one[column]), rel=1e-12), column


def test_only_rank_0_wrote_a_run_and_its_summary_names_the_workers(trained):
    import json

    _, two = trained
    for case in CASES:
        runs = list((two / case).glob("*/*/summary.json"))
        assert len(runs) == 1, case
        summary = json.loads(runs[0].read_text())
        assert summary["workers"] == 2 and sum(summary["hosts"].values()) == 2
        assert summary["allreduce_seconds"] >= 0
    one, _ = trained
    summary = json.loads(next((one / "mlp_adam").glob("*/*/summary.json")).read_text())
    assert summary["workers"] == 1 and "allreduce_seconds" not in summary


# Adam and SGD with momentum over buffers larger than parallel.PACK_LIMIT: updated in parts (update_part).
SHARDED = ("cnn_adam", "mlp_adam", "mlp_sgd_momentum")


@pytest.mark.parametrize(
    ("setting", "mode"),
    [("NNCTL_SHARD_UPDATE=0", "replicated"), ("NNCTL_SHARED_MEMORY=0", "sharded")],
    ids=["against-allreduce", "against-mpi-collectives"],
)
def test_the_sharded_update_is_bit_for_bit_the_replicated_one(trained, tmp_path, setting, mode):
    """Each rank stepping its part of the buffers (the default on one machine: exchanged through shared
    memory) trains exactly what every rank stepping all of them after one Allreduce trains, and what
    the sharded update through Reduce_scatter / Allgatherv trains: with 2 ranks the sums are the same
    additions, and the optimizers are elementwise."""
    import json

    _, two = trained
    var, _, value = setting.partition("=")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", var: value}
    subprocess.run(
        [find_mpiexec(), "-n", "2", sys.executable, "-m", "tests.parallel.cases", str(tmp_path), *SHARDED],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    for case in SHARDED:
        default, other = np.load(_last(two, case)), np.load(_last(tmp_path, case))
        keys = [k for k in default.files if k.startswith(("param/", "optim/"))]
        assert len(keys) >= 4 and sorted(default.files) == sorted(other.files)
        for key in keys:
            assert np.array_equal(default[key], other[key]), (case, key)
        summary = json.loads((_last(two, case).parents[1] / "summary.json").read_text())
        assert summary["update"] == "sharded, shared memory", case
        summary = json.loads((_last(tmp_path, case).parents[1] / "summary.json").read_text())
        assert summary["update"] == mode, case
