"""Every example config, trained as shipped, reaches its stated test score (scored like `nnctl eval`)."""

import pytest

from nnctl.session import run_training
from nnctl.train.evaluate import evaluate_run
from tests.conftest import CONFIGS

TARGETS = {
    "xor": ("accuracy", 0.98),
    "circle": ("accuracy", 0.98),
    "spiral": ("accuracy", 0.95),
    "iris": ("accuracy", 0.93),
    "wine": ("accuracy", 0.95),
    "breast_cancer": ("accuracy", 0.95),
    "digits": ("accuracy", 0.95),
    "diabetes": ("r2", 0.40),
    "plane": ("r2", 0.95),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_example_reaches_target(name, tmp_path):
    metric, target = TARGETS[name]
    result = run_training(CONFIGS / f"{name}.yaml", runs_dir=tmp_path)
    assert result.status == "completed"
    scores = evaluate_run(result.run_dir, "test", "best")["metrics"]
    assert scores[metric] >= target, scores


def test_spiral_network_is_playground_sized():
    from nnctl.config import load_config

    layers = load_config(CONFIGS / "spiral.yaml").model.layers
    hidden = layers[:-1]
    assert len(hidden) <= 2 and all(layer.units <= 8 for layer in hidden)


# issue 17: 5-fold cv accuracy of the table examples (titanic_embedding: titanic.yaml with deck embedded)
CV_TARGETS = {"penguins": 0.97, "titanic": 0.80, "titanic_embedding": 0.80}


@pytest.mark.parametrize("name", sorted(CV_TARGETS))
def test_table_example_reaches_its_cv_accuracy(name, tmp_path):
    from nnctl.cv import run_cv
    from tests.e2e.test_tables import titanic_embedding

    config = titanic_embedding(tmp_path) if name == "titanic_embedding" else CONFIGS / f"{name}.yaml"
    result = run_cv(config, folds=5, runs_dir=tmp_path)
    assert all(f["status"] == "completed" for f in result.folds)
    assert result.mean["val_accuracy"] >= CV_TARGETS[name], result.mean
