"""The sequence examples learn their tasks (scored like `nnctl eval`), and `nnctl gradcheck` handles them.

The full adding-problem examples (configs/lstm_adding.yaml, configs/gru_adding.yaml: 10,000
sequences of length 50) take tens of seconds each; here the GRU runs a shortened version of the
same T = 50 task, and the README records the full runs' figures.
"""

import pytest

from nnctl.session import gradcheck_config, run_training
from nnctl.train.evaluate import evaluate_run
from tests.conftest import CONFIGS

TARGETS = {
    "gru_order": ("accuracy", 0.95),
    "embedding_gru": ("accuracy", 0.95),
    "lstm_sine": ("r2", 0.95),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_sequence_example_reaches_target(name, tmp_path):
    metric, target = TARGETS[name]
    result = run_training(CONFIGS / f"{name}.yaml", runs_dir=tmp_path)
    assert result.status == "completed"
    scores = evaluate_run(result.run_dir, "test", "best")["metrics"]
    assert scores[metric] >= target, scores


def test_gru_solves_a_short_adding_problem_run(tmp_path):
    overrides = ["data.source.samples=3000", "train.epochs=6", "optimizer.lr=0.01"]
    result = run_training(CONFIGS / "gru_adding.yaml", overrides, runs_dir=tmp_path)
    scores = evaluate_run(result.run_dir, "test", "best")["metrics"]
    assert scores["mse"] < 0.05, scores  # always predicting 1 scores 0.167


@pytest.mark.parametrize("name", ["embedding_gru", "lstm_sine"])
def test_gradcheck_of_sequence_configs(name):
    overrides = (
        ["data.source.samples=40", "model.layers[0].units=3"] if name == "lstm_sine" else ["data.source.samples=40"]
    )
    _, ok = gradcheck_config(CONFIGS / f"{name}.yaml", overrides, samples=3)
    assert ok
