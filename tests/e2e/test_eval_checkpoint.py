"""`nnctl eval` / `predict` without --checkpoint: best only when 'best' was judged on a validation split."""

import json

from typer.testing import CliRunner

from nnctl.cli import app
from tests.conftest import CONFIGS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def train(config, tmp_path, epochs):
    result = invoke("train", config, "--runs-dir", tmp_path, "--set", f"train.epochs={epochs}", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_dir"]


def test_a_playground_run_is_scored_on_its_test_data_with_the_last_weights(tmp_path):
    run = train(CONFIGS / "playground_circle.yaml", tmp_path, 3)  # monitors train_loss, as the Playground
    result = invoke("eval", run, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (
        doc["checkpoint"] == "last" and "using the last checkpoint" in result.stderr and "train_loss" in result.stderr
    )
    # the Playground's test data is the validation split (scored live); there is no test split
    assert doc["split"] == "val" and doc["samples"] == 250 and "no test split" in result.stderr
    assert invoke("eval", run, "--split", "test").exit_code == 2
    explicit = invoke("eval", run, "--checkpoint", "best", "--json")
    assert json.loads(explicit.stdout)["checkpoint"] == "best" and "using the last" not in explicit.stderr
    table = invoke("eval", run)
    assert "last checkpoint)" in table.output


def test_with_a_validation_split_eval_uses_best(tmp_path):
    run = train(CONFIGS / "xor.yaml", tmp_path, 2)
    result = invoke("eval", run, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["checkpoint"] == "best"
    assert "note:" not in result.stderr
    assert invoke("eval", run, "--checkpoint", "first").exit_code == 2
