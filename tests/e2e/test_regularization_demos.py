"""The overfitting and vanishing-gradient demos show what they claim, measured from their own runs."""

import csv

import pytest

from nnctl.session import run_training
from nnctl.train.evaluate import evaluate_run
from tests.conftest import CONFIGS


def run(tmp_path, name):
    result = run_training(CONFIGS / f"{name}.yaml", runs_dir=tmp_path)
    assert result.status == "completed"
    with open(result.run_dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    test = evaluate_run(result.run_dir, "test", "last")["metrics"]
    return rows, test


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overfit")
    return {name: run(tmp, name) for name in ("overfit_sine", "overfit_sine_dropout", "overfit_sine_l2")}


@pytest.mark.parametrize("twin", ["overfit_sine_dropout", "overfit_sine_l2"])
def test_regularized_twin_generalizes_better(overfit, twin):
    plain_rows, plain_test = overfit["overfit_sine"]
    twin_rows, twin_test = overfit[twin]
    # The unregularized model fits its 12 training points better ...
    assert float(plain_rows[-1]["train_loss"]) < float(twin_rows[-1]["train_loss"])
    # ... and does clearly worse on fresh points of the same curve (measured ratio about 4x).
    assert plain_test["mse"] > 2.5 * twin_test["mse"], (plain_test, twin_test)


def test_l2_penalty_is_reported_apart(overfit):
    rows, _ = overfit["overfit_sine_l2"]
    assert float(rows[-1]["train_penalty"]) > 0
    assert "train_penalty" not in overfit["overfit_sine"][0][-1]


def test_batch_norm_cures_the_deep_sigmoid_network(tmp_path):
    final = {
        name: float(run(tmp_path, name)[0][-1]["train_loss"])
        for name in ("deep_sigmoid", "deep_sigmoid_batchnorm", "deep_relu")
    }
    assert final["deep_sigmoid_batchnorm"] < 0.5 * final["deep_sigmoid"], final
    assert final["deep_relu"] < 0.5 * final["deep_sigmoid"], final


def test_universality(tmp_path):
    _, test = run(tmp_path, "universality")
    assert test["r2"] >= 0.98
