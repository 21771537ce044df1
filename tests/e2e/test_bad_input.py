"""Bad input: a one-paragraph message, exit code 2, no traceback, and no run directory left behind."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from tests.conftest import MINIMAL

runner = CliRunner()


def train(config, runs_dir, *extra):
    return runner.invoke(app, ["train", str(config), "--runs-dir", str(runs_dir), "--quiet", *map(str, extra)])


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def assert_no_run(runs_dir: Path):
    assert not runs_dir.exists() or not any(runs_dir.rglob("summary.json"))


def csv_config(tmp_path, csv_text, target="label", extra=""):
    data = tmp_path / "data.csv"
    data.write_text(csv_text)
    text = MINIMAL.replace(
        "source: {type: xor, samples: 100}", f"source: {{type: csv, path: '{data}', target: {target}}}{extra}"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_missing_config_file(tmp_path):
    assert_user_error(train(tmp_path / "nope.yaml", tmp_path / "runs"), "config file not found", "nope.yaml")
    assert_no_run(tmp_path / "runs")


def test_missing_data_file(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("{type: xor, samples: 100}", "{type: csv, path: missing.csv, target: y}"))
    assert_user_error(train(path, tmp_path / "runs"), "missing.csv")
    assert_no_run(tmp_path / "runs")


def test_unknown_type_with_suggestion(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("loss: cross_entropy", "loss: cross_entropyy"))
    assert_user_error(
        train(path, tmp_path / "runs"), "unknown loss 'cross_entropyy'", "Did you mean 'cross_entropy'?", "line 9"
    )
    assert_no_run(tmp_path / "runs")


def test_misspelt_key(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("epochs: 2", "epoch: 2"))
    assert_user_error(train(path, tmp_path / "runs"), "train.epoch", "Did you mean 'epochs'?")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.layers[0].units=0", "greater than 0"),
        ("optimizer.lr=0", "greater than 0"),
        ("data.split.train=0.9", "must sum to 1"),
    ],
)
def test_out_of_range(tmp_path, write_yaml, override, fragment):
    assert_user_error(train(write_yaml(MINIMAL), tmp_path / "runs", "--set", override), fragment)
    assert_no_run(tmp_path / "runs")


def test_nan_in_data(tmp_path):
    path = csv_config(tmp_path, "a,b,label\n1,2,0\n3,nan,1\n5,6,0\n")
    assert_user_error(train(path, tmp_path / "runs"), "line 3", "column 'b'")
    assert_no_run(tmp_path / "runs")


def test_ragged_rows(tmp_path):
    path = csv_config(tmp_path, "a,b,label\n1,2,0\n3,4\n5,6,1\n")
    assert_user_error(train(path, tmp_path / "runs"), "line 3", "2 fields")


def test_unknown_target_column(tmp_path):
    path = csv_config(tmp_path, "a,b,label\n1,2,0\n3,4,1\n", target="labl")
    assert_user_error(train(path, tmp_path / "runs"), "labl", "Did you mean 'label'?")


def test_cross_entropy_on_real_targets(tmp_path):
    rows = "".join(f"{i},{i * 2},{i * 0.37:.2f}\n" for i in range(30))
    path = csv_config(tmp_path, "a,b,label\n" + rows)
    assert_user_error(train(path, tmp_path / "runs"), "needs class labels", "regression")
    assert_no_run(tmp_path / "runs")


def test_regression_loss_on_labels(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("loss: cross_entropy", "loss: mse"))
    assert_user_error(train(path, tmp_path / "runs"), "regression loss", "cross_entropy")


def test_output_size_does_not_match_classes(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("- {type: dense, units: 2}", "- {type: dense, units: 3}"))
    assert_user_error(train(path, tmp_path / "runs"), "2 classes", "units: 2")
    assert_no_run(tmp_path / "runs")


def test_softmax_before_cross_entropy(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("- {type: dense, units: 2}", "- {type: dense, units: 2}\n    - softmax"))
    assert_user_error(train(path, tmp_path / "runs"), "Remove the final softmax")


def test_duplicate_key(tmp_path, write_yaml):
    assert_user_error(train(write_yaml(MINIMAL + "name: again\n"), tmp_path / "runs"), "duplicate key 'name'")


def test_bad_npz(tmp_path, write_yaml):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    path = write_yaml(MINIMAL.replace("{type: xor, samples: 100}", f"{{type: npz, path: '{bad}'}}"))
    assert_user_error(train(path, tmp_path / "runs"), "bad.npz")


def test_eval_of_missing_run(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nothing")])
    assert_user_error(result, "run directory not found")


def test_eval_of_damaged_checkpoint(tmp_path, write_yaml):
    result = runner.invoke(app, ["train", str(write_yaml(MINIMAL)), "--runs-dir", str(tmp_path), "--json", "--quiet"])
    run = Path(json.loads(result.stdout)["run_dir"])
    (run / "checkpoints/best.npz").write_bytes(b"not a zip file")
    assert_user_error(runner.invoke(app, ["eval", str(run)]), "damaged")


def test_debug_shows_traceback(tmp_path, write_yaml):
    path = write_yaml(MINIMAL.replace("loss: cross_entropy", "loss: nope"))
    result = runner.invoke(app, ["validate", str(path), "--debug"])
    assert result.exit_code != 0 and result.exception is not None


def test_diverging_training_exits_3_and_keeps_last_good_checkpoint(tmp_path):
    text = (
        MINIMAL.replace("{type: xor, samples: 100}", "{type: plane, samples: 100}")
        .replace("- {type: dense, units: 2}", "- {type: dense, units: 1}")
        .replace("loss: cross_entropy", "loss: mse")
        .replace("optimizer: {type: adam, lr: 0.01}", "optimizer: {type: sgd, lr: 1.0e+6}")
        .replace("epochs: 2", "epochs: 30")
    )
    path = tmp_path / "diverge.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", "--json"])
    assert result.exit_code == 3, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    with np.load(run / "checkpoints/last.npz", allow_pickle=False) as npz:
        assert all(np.all(np.isfinite(npz[k])) for k in npz.files if k.startswith("param/"))
    assert summary["epochs"] == 0  # diverged in its first epoch
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,lr,train_loss")
