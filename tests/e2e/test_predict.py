"""`nnctl predict`, `nnctl eval`'s per-class outputs and `nnctl.load_run` on real trained runs."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nnctl
from nnctl.cli import app
from tests.conftest import CONFIGS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def train(config, runs_dir, *extra):
    result = invoke("train", config, "--runs-dir", runs_dir, "--json", "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    return train(CONFIGS / "iris.yaml", tmp_path_factory.mktemp("runs"))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path_or_text):
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def iris_test_csv(iris_run, tmp_path_factory):
    """The run's test split as a CSV with the feature columns by name, plus the (ignored) target column."""
    run = nnctl.load_run(iris_run)
    x, y = run.data("test")
    path = tmp_path_factory.mktemp("inputs") / "iris_test.csv"
    # The target column first and the features shuffled: columns are found by name, not position.
    header = ["species", *reversed(run.input_names)]
    rows = [[label, *(repr(float(v)) for v in reversed(row))] for row, label in zip(x, y, strict=True)]
    return write_csv(path, header, rows), y


def test_predict_on_iris_reproduces_eval_accuracy(iris_run, iris_test_csv, tmp_path):
    path, truth = iris_test_csv
    out = tmp_path / "pred.csv"
    result = invoke("predict", iris_run, path, "-o", out)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(out)
    assert header == ["prediction"] and len(rows) == len(truth)
    predicted = np.array([r[0] for r in rows])
    assert set(predicted) <= {"setosa", "versicolor", "virginica"}  # class names, not indices

    scores = json.loads(invoke("eval", iris_run, "--json").stdout)
    assert np.mean(predicted == truth) == pytest.approx(scores["metrics"]["accuracy"], abs=1e-12)
    assert scores["metrics"]["accuracy"] >= 0.9


def test_predict_to_stdout_with_probabilities(iris_run, iris_test_csv):
    path, truth = iris_test_csv
    result = invoke("predict", iris_run, path, "--proba")
    assert result.exit_code == 0, result.output
    header, rows = read_csv(result.stdout)
    assert header == ["prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]
    proba = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    names = np.array(header[1:])
    assert [r[0] for r in rows] == [n.removeprefix("proba_") for n in names[proba.argmax(axis=1)]]


def test_predict_json_and_npz_input(iris_run, iris_test_csv, tmp_path):
    run = nnctl.load_run(iris_run)
    x, truth = run.data("test")
    np.savez(tmp_path / "x.npz", x=x)
    result = invoke("predict", iris_run, tmp_path / "x.npz", "--json", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["samples"] == len(x) and document["classes"] == ["setosa", "versicolor", "virginica"]
    from_npz = [row[0] for row in document["rows"]]
    last = nnctl.load_run(iris_run, checkpoint="last")
    assert from_npz == last.predict(x).tolist()


def test_predict_missing_column_is_a_clear_error(iris_run, iris_test_csv, tmp_path):
    path, _ = iris_test_csv
    header, rows = read_csv(path)
    keep = [i for i, name in enumerate(header) if name != "petal_width"]
    bad = write_csv(tmp_path / "bad.csv", [header[i] for i in keep], [[r[i] for i in keep] for r in rows])
    result = invoke("predict", iris_run, bad)
    assert result.exit_code == 2
    assert "lacks the column(s) petal_width" in result.output and "Traceback" not in result.output


def test_predict_bad_cell_names_line_and_column(iris_run, tmp_path):
    bad = write_csv(
        tmp_path / "cell.csv",
        ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        [["5.1", "3.5", "1.4", "0.2"], ["5.0", "oops", "1.4", "0.2"]],
    )
    result = invoke("predict", iris_run, bad)
    assert result.exit_code == 2 and "line 3, column 'sepal_width'" in result.output


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"inputs": np.zeros((2, 4))}, "has no array 'x' (it holds: inputs)"),
        ({"x": np.zeros((2, 3))}, "expected inputs of shape (N, 4), got shape (2, 3)"),
        ({"x": np.array([["a", "b", "c", "d"]])}, "inputs must be numbers"),
    ],
    ids=["no-x", "wrong-width", "text"],
)
def test_predict_wrong_npz(iris_run, tmp_path, arrays, fragment):
    np.savez(tmp_path / "bad.npz", **arrays)
    result = invoke("predict", iris_run, tmp_path / "bad.npz")
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_predict_other_input_errors(iris_run, tmp_path):
    (tmp_path / "x.txt").write_text("1 2 3 4\n")
    assert "expected a .csv, .csv.gz or .npz" in invoke("predict", iris_run, tmp_path / "x.txt").output
    result = invoke("predict", iris_run, tmp_path / "none.csv")
    assert result.exit_code == 2 and "cannot read CSV file" in result.output
    result = invoke("predict", tmp_path, tmp_path / "none.csv")
    assert result.exit_code == 2 and "is not a run directory" in result.output


def test_eval_writes_confusion_matrix_and_per_class_scores(iris_run):
    result = invoke("eval", iris_run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    matrix = np.array(scores["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == scores["samples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(scores["metrics"]["accuracy"])
    per_class = scores["per_class"]
    assert list(per_class) == scores["classes"] == ["setosa", "versicolor", "virginica"]
    assert [per_class[c]["support"] for c in scores["classes"]] == matrix.sum(axis=1).tolist()
    assert per_class["setosa"]["recall"] == pytest.approx(matrix[0, 0] / matrix[0].sum())

    saved = json.loads((iris_run / "eval" / "test-best.json").read_text())
    assert saved["confusion_matrix"] == scores["confusion_matrix"] and saved["checkpoint"] == "best"
    lines = (iris_run / "eval" / "test-best-confusion.csv").read_text().splitlines()
    assert lines[0] == "true\\predicted,setosa,versicolor,virginica" and len(lines) == 4
    assert sorted(scores["files"]) == sorted(
        str(iris_run / "eval" / n) for n in ("test-best.json", "test-best-confusion.csv")
    )

    table = invoke("eval", iris_run, "--split", "val")
    assert table.exit_code == 0 and "per class" in table.stdout and "macro avg" in table.stdout
    assert (iris_run / "eval" / "val-best.json").is_file()


def test_load_run_api(iris_run):
    run = nnctl.load_run(iris_run)
    assert run.config.name == "iris" and run.summary["status"] == "completed"
    assert run.classes == ["setosa", "versicolor", "virginica"]
    metrics = run.metrics
    if isinstance(metrics, list):
        assert metrics[0]["epoch"] == 1 and isinstance(metrics[0]["val_loss"], float)
        assert len(metrics) == run.summary["epochs"]
    else:  # pandas installed
        assert list(metrics["epoch"])[0] == 1 and len(metrics) == run.summary["epochs"]

    x, truth = run.data("test")
    proba = run.predict_proba(x)
    assert proba.shape == (len(x), 3)
    predicted = run.predict(x)
    assert predicted.tolist() == np.array(run.classes)[proba.argmax(axis=1)].tolist()
    scores = run.evaluate("test")
    assert scores["metrics"]["accuracy"] == pytest.approx(np.mean(predicted == truth))
    # By name, in any column order, extra columns ignored.
    named = {name: x[:, j] for j, name in enumerate(run.input_names)} | {"species": truth}
    assert run.predict(dict(reversed(named.items()))).tolist() == predicted.tolist()


def test_load_run_errors(tmp_path):
    from nnctl.errors import NnctlError

    with pytest.raises(NnctlError, match="run directory not found"):
        nnctl.load_run(tmp_path / "missing")
    with pytest.raises(NnctlError, match="is not a run directory"):
        nnctl.load_run(tmp_path)
    (tmp_path / "config.yaml").write_text("name: x\n")
    with pytest.raises(NnctlError, match="has no checkpoint 'best'"):
        nnctl.load_run(tmp_path)


def test_import_nnctl_stays_light():
    code = "import sys, nnctl; print('numpy' in sys.modules, callable(nnctl.load_run), 'numpy' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "True", "True"], proc.stderr


def test_predict_playground_run_computes_features(tmp_path):
    # circle.yaml trains on [x1, x2, x1_squared, x2_squared]; predict reads the raw points x1, x2.
    run_dir = train(CONFIGS / "circle.yaml", tmp_path, "--set", "train.epochs=3")
    run = nnctl.load_run(run_dir)
    points, truth = run.data("test")
    assert points.shape[1] == 2 and run.input_names == ["x1", "x2"]
    path = write_csv(tmp_path / "points.csv", ["x2", "x1"], [[repr(float(b)), repr(float(a))] for a, b in points])
    result = invoke("predict", run_dir, path)
    assert result.exit_code == 0, result.output
    _, rows = read_csv(result.stdout)
    predicted = np.array([r[0] for r in rows])
    assert predicted.tolist() == run.predict(points).tolist()
    assert np.mean(predicted == truth) == pytest.approx(run.evaluate("test")["metrics"]["accuracy"])


def test_predict_regression_run(tmp_path):
    run_dir = train(CONFIGS / "plane.yaml", tmp_path, "--set", "train.epochs=2")
    run = nnctl.load_run(run_dir)
    points, truth = run.data("test")
    np.savez(tmp_path / "points.npz", x=points)
    result = invoke("predict", run_dir, tmp_path / "points.npz")
    assert result.exit_code == 0, result.output
    header, rows = read_csv(result.stdout)
    values = np.array([float(r[0]) for r in rows])
    assert header == ["prediction"] and values.tolist() == run.predict(points).tolist()
    mse = float(np.mean((values - truth[:, 0]) ** 2))
    assert mse == pytest.approx(run.evaluate("test")["metrics"]["mse"], rel=1e-9)
    result = invoke("predict", run_dir, tmp_path / "points.npz", "--proba")
    assert result.exit_code == 2 and "--proba needs a classification run" in result.output
