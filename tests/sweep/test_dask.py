"""The Dask executor: a sweep on a LocalCluster gives the same trial results as local worker processes."""

import pytest

from tests.sweep.test_runner import results, run


def test_dask_local_cluster_matches_the_local_executor(sweep_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    from nnctl.sweep.executors import DaskExecutor

    path = sweep_file("space:\n  optimizer.lr: [0.01, 0.05]\n  model.layers[0].units: [3, 5]\n")
    local = run(path, tmp_path, parallel=2)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = run(path, tmp_path, executor=DaskExecutor(client=client))
    assert on_dask.exit_code == 0 and on_dask.path != local.path
    assert [r["status"] for r in on_dask.records] == ["completed"] * 4
    assert results(on_dask) == results(local)
