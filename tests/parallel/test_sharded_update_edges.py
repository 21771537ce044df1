"""Edge cases of the sharded update (ZeRO stage 1) and its shared-memory exchange.

1. After a sharded epoch, rank 0's flat gradient buffer (what the tensorboard callback's gradient
   histograms read) held the summed gradient only in rank 0's part; the rest was rank 0's own local
   (unscaled, on the shared-memory path) gradient.
2. The shared-memory window lives in /dev/shm (MPICH): where that is smaller than the window (Docker's
   default is 64 MB: a 3M-parameter float32 model on 2 ranks), the first write killed a rank with
   SIGBUS, where MPI's collectives (NNCTL_SHARED_MEMORY=0) train fine.

`python -m tests.parallel.test_sharded_update_edges OUT` (under mpiexec or alone) trains the digits MLP for
one epoch and saves rank 0's flat gradients to OUT/grads<size>.npy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.parallel import find_mpiexec
from tests.parallel.cases import ROOT

OVERRIDES = ["dtype=float64", "train.epochs=1", "train.batch_size=37", "optimizer={type: adam, lr: 0.003}"]


def _probe(out: Path) -> None:
    import nnctl.session as session
    from nnctl.parallel import world

    comm = world()
    captured = {}
    train = session.train

    def spy(experiment, *args, **kwargs):
        result = train(experiment, *args, **kwargs)
        captured["grads"] = np.array(experiment.network.flat_grads)
        return result

    session.train = spy
    session.run_training(ROOT / "configs" / "digits.yaml", OVERRIDES, runs_dir=out / f"runs{comm.size}", comm=comm)
    if comm.rank == 0:
        np.save(out / f"grads{comm.size}.npy", captured["grads"])


def _env(**extra) -> dict:
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


needs_mpi = pytest.mark.skipif(find_mpiexec() is None, reason="no mpiexec (pip install 'nnctl[mpi]')")


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize("shared", ["1", "0"], ids=["shared-memory", "mpi-collectives"])
def test_rank_0_gradients_after_a_sharded_epoch_are_the_one_process_ones(tmp_path, shared):
    pytest.importorskip("mpi4py")
    module = [sys.executable, "-m", "tests.parallel.test_sharded_update_edges", str(tmp_path)]
    subprocess.run(module, cwd=ROOT, env=_env(), check=True, timeout=300)
    subprocess.run(
        [find_mpiexec(), "-n", "2", *module], cwd=ROOT, env=_env(NNCTL_SHARED_MEMORY=shared), check=True, timeout=300
    )
    one, two = np.load(tmp_path / "grads1.npy"), np.load(tmp_path / "grads2.npy")
    assert one.size > 2048  # sharded (above parallel.PACK_LIMIT)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-10)


def _can_mount_private_tmpfs() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /dev/shm"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow
@needs_mpi
@pytest.mark.skipif(not _can_mount_private_tmpfs(), reason="needs root and unshare to give the job a small /dev/shm")
def test_a_dev_shm_too_small_for_the_window_falls_back_to_mpi_collectives(tmp_path):
    """8 MB of /dev/shm (in a private mount namespace) against a ~10 MB window: 197k float64 parameters."""
    pytest.importorskip("mpi4py")
    layers = "model.layers=[{type: dense, units: 1024, activation: relu}, {type: dense, units: 128, activation: relu}, {type: dense, units: 10}]"  # noqa: E501
    args = [
        sys.executable, "-m", "nnctl", "train", str(ROOT / "configs" / "digits.yaml"), "-q", "--workers", "2",
        "--runs-dir", str(tmp_path), "--set", "dtype=float64", "--set", "train.epochs=1",
        "--set", "train.batch_size=64", "--set", layers,
    ]  # fmt: skip
    script = 'mount -t tmpfs -o size=8m tmpfs /dev/shm && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(next(tmp_path.glob("digits/*/summary.json")).read_text())
    assert summary["status"] == "completed" and summary["update"] == "sharded"


if __name__ == "__main__":
    _probe(Path(sys.argv[1]))


@pytest.mark.slow
@needs_mpi
@pytest.mark.parametrize("var", ["NNCTL_SHARED_MEMORY", "NNCTL_SHARD_UPDATE"])
def test_ranks_that_see_different_settings_still_train_together(tmp_path, var):
    """A setting in one rank's environment only (Open MPI forwards no variables without -x; or MPMD
    -env): the ranks must agree on one way to exchange, not mix Reduce_scatter and shared memory
    (NNCTL_SHARED_MEMORY: every rank spun in mismatched collectives for good, SIGTERM ignored;
    NNCTL_SHARD_UPDATE: an MPI 'Message truncated' abort)."""
    pytest.importorskip("mpi4py")
    train = [sys.executable, "-m", "nnctl", "train", str(ROOT / "configs" / "digits.yaml"), "-q",
             "--runs-dir", str(tmp_path), "--set", "train.epochs=1"]  # fmt: skip
    proc = subprocess.Popen(
        [find_mpiexec(), "-n", "1", "-env", var, "0", *train, ":", "-n", "1", *train],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the ranks hung")
    assert proc.returncode == 0, err


def test_close_frees_the_shared_window_once():
    from nnctl.parallel import MPIComm, SingleProcess

    freed = []

    class Window:
        def free(self):
            freed.append(True)

    comm = object.__new__(MPIComm)  # no MPI world needed: close() only touches the exchange
    comm._shared = Window()
    comm.close()
    comm.close()  # a second call (or a run that never sharded) has nothing left to free
    assert freed == [True] and comm._shared is None
    SingleProcess().close()
