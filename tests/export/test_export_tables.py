"""Table runs in ONNX: one input per raw column, the fitted encoding in the graph, the same answers as
`nnctl predict` on the same CSV (max |difference| <= 1e-5 in float32, the same classes)."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.data.tabular import ColumnSpec, RawTable, TablePreprocessor
from tests.conftest import CONFIGS
from tests.e2e.test_tables import multilabel_config, titanic_embedding

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'nnctl[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'nnctl[onnx]')")

from nnctl.export.graph import DEFAULT_OPSET, Graph  # noqa: E402
from nnctl.export.table import ML_DOMAIN, ML_OPSET, table_features, table_feed  # noqa: E402

runner = CliRunner()
TOLERANCE = 1e-5
DATASETS = CONFIGS.parent / "datasets"


def encoding_model(prep: TablePreprocessor):
    """The table part of an export alone: raw columns in, `features` (float64) out."""
    g = Graph(DEFAULT_OPSET)
    g.scope = "input."  # as build_model names them
    inputs, features = table_features(g, prep)
    g.nodes.append(onnx.helper.make_node("Identity", [features], ["features"]))
    out = onnx.helper.make_tensor_value_info("features", onnx.TensorProto.DOUBLE, ["batch", len(prep.feature_names)])
    graph = onnx.helper.make_graph(g.nodes, "table", inputs, [out], initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", DEFAULT_OPSET), onnx.helper.make_opsetid(ML_DOMAIN, ML_OPSET)]
    model = onnx.helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_encoding_graph_equals_the_preprocessor_cell_for_cell():
    train = {
        "n": ["1.5", "", "3", "nan", "7", "2"],
        "b": ["yes", "No", "", "TRUE", "0", "f"],
        "c": ["a", "a", "b", "", "z", "b"],
        "e": ["p", "q", "q", "r", "", "p"],
        "u": ["x", "x", "y", "y", "x", "y"],
        "skip": ["1", "2", "3", "4", "5", "6"],
    }
    specs = {
        "n": ColumnSpec(impute="mean", indicator=True),
        "b": ColumnSpec(type="binary", impute="most_frequent", indicator=True),
        "c": ColumnSpec(max_levels=2, impute="constant", fill_value="z", indicator=True),  # the fill is a rare level
        "e": ColumnSpec(encoding="embedding", impute="most_frequent"),
        "skip": ColumnSpec(type="ignore"),
    }
    t = RawTable.from_columns(train)
    prep = TablePreprocessor(specs).fit(RawTable(t.names, t.cells, specs=specs))
    new = RawTable.from_columns(
        {
            "n": ["", "inf", "-2.25", "1e3"],
            "b": ["Yes", "", "n", "T"],
            "c": ["b", "", "never", "a"],  # an unseen level: other
            "e": ["r", "", "s", "q"],
            "u": ["y", "x", "y", "x"],
            "skip": ["", "", "", ""],
        }
    )
    with pytest.warns(UserWarning):
        want = prep.encode(new)
    session = encoding_model(prep)
    for rows in (t, new):
        expected = want if rows is new else prep.encode(t)
        got = session.run(["features"], table_feed(prep, rows.cells, rows.names))[0]
        np.testing.assert_array_equal(got, expected)
    assert [i.name for i in session.get_inputs()] == ["n", "b", "c", "e", "u"]  # ignore: no input


def _predict_csv(run_dir: Path, csv_path: Path) -> tuple[list[str], np.ndarray]:
    result = runner.invoke(app, ["predict", str(run_dir), str(csv_path), "--proba"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return [r[0] for r in rows[1:]], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


@pytest.mark.parametrize("name", ["penguins", "titanic", "titanic_embedding"])
def test_an_exported_table_run_answers_as_nnctl_predict_on_the_same_csv(name, tmp_path):
    config = titanic_embedding(tmp_path) if name == "titanic_embedding" else CONFIGS / f"{name}.yaml"
    trained = runner.invoke(
        app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q", "--json", "--set", "train.epochs=5"]
    )
    assert trained.exit_code == 0, trained.output
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    exported = runner.invoke(app, ["export", str(run_dir), "--check"])
    assert exported.exit_code == 0, exported.output
    assert "class_disagreements 0" in exported.output

    source = DATASETS / ("penguins.csv" if name == "penguins" else "titanic.csv")
    classes, proba = _predict_csv(run_dir, source)
    with open(source, newline="") as f:
        header, *cells = list(csv.reader(f))
    session = ort.InferenceSession(str(run_dir / "export" / "model-best.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    prep = TablePreprocessor.from_state(_table_state(run_dir))
    feed = table_feed(prep, np.array(cells, dtype=str), header)
    assert [i.name for i in session.get_inputs()] == json.loads(meta["input_names"]) == list(feed)
    assert json.loads(meta["columns"]) == prep.input_columns()
    types = {i.name: i.type for i in session.get_inputs()}
    assert (
        types["sex"] == "tensor(string)"
        and types["bill_length_mm" if name == "penguins" else "age"] == "tensor(double)"
    )
    got_proba, got_class = session.run(["probabilities", "class_index"], feed)
    assert len(got_proba) == len(cells) == len(proba)
    assert np.max(np.abs(got_proba - proba)) <= TOLERANCE
    names = json.loads(meta["class_names"])
    assert [names[k] for k in got_class] == classes
    if name != "penguins":  # titanic's csv has blank ages and decks: the fill in the graph was used
        assert np.isnan(feed["age"]).any() and (feed["deck"] == "").any()


def _table_state(run_dir: Path) -> dict:
    with np.load(run_dir / "checkpoints" / "best.npz", allow_pickle=False) as npz:
        return {"schema": npz["table/schema"], "fill": npz["table/fill"]}


def test_a_multilabel_table_run_exports_each_labels_probability(tmp_path):
    config = multilabel_config(tmp_path)
    trained = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q", "--json"])
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    exported = runner.invoke(app, ["export", str(run_dir), "--check"])
    assert exported.exit_code == 0, exported.output
    assert "label_disagreements 0" in exported.output
    (tmp_path / "new.csv").write_text("a,b,colour\n2.0,0.0,red\n-2.0,0.5,blue\n0.1,1.5,never\n")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "new.csv"), "--proba"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["prediction_tall", "prediction_warm", "proba_tall", "proba_warm"]
    printed = np.array([[float(v) for v in r] for r in rows[1:]])
    session = ort.InferenceSession(str(run_dir / "export" / "model-best.onnx"), providers=["CPUExecutionProvider"])
    prep = TablePreprocessor.from_state(_table_state(run_dir))
    with open(tmp_path / "new.csv", newline="") as f:
        header, *cells = list(csv.reader(f))
    labels, proba = session.run(["labels", "probabilities"], table_feed(prep, np.array(cells, dtype=str), header))
    np.testing.assert_array_equal(labels, printed[:, :2])
    assert np.max(np.abs(proba - printed[:, 2:])) <= TOLERANCE


def test_a_table_regression_with_two_targets_exports_its_values(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["size,kind,y1,y2"]
    for i in range(120):
        size, kind = rng.uniform(0, 10), rng.choice(["a", "b", "c"])
        cell = "" if i % 9 == 0 else f"{size:.3f}"  # blanks, imputed by the median
        lines.append(f"{cell},{kind},{size * 3 + (kind == 'a') * 5:.3f},{100 - size:.3f}")
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    source = {"type": "csv", "path": str(tmp_path / "r.csv"), "target": ["y1", "y2"]}
    experiment = {
        "name": "reg",
        "data": {
            "source": source | {"columns": {"size": {"impute": "median"}}},
            "normalize": "standard",
            "target_normalize": "standard",
        },
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 2}]},
        "loss": "mse",
        "train": {"epochs": 5},
    }
    config = tmp_path / "r.yaml"
    config.write_text(yaml.safe_dump(experiment))
    trained = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q", "--json"])
    run_dir = json.loads(trained.stdout)["run_dir"]
    exported = runner.invoke(app, ["export", run_dir, "--check", "--json"])
    assert exported.exit_code == 0, exported.output
    check = json.loads(exported.stdout)["check"]
    assert check["task"] == "regression" and check["max_abs_values"] > 50  # in the data's units
    assert check["max_abs_diff_values"] <= TOLERANCE * check["max_abs_values"]


def _names_table_run(tmp_path, columns: list[str]) -> Path:
    """A small classification table run whose feature columns have these names (the first numeric, the second text)."""
    rng = np.random.default_rng(3)
    lines = [",".join([*columns, "label"])]
    for _ in range(80):
        v, kind = rng.uniform(0, 10), rng.choice(["a", "b"])
        lines.append(f"{v:.3f},{kind},{int(v > 5)}")
    (tmp_path / "n.csv").write_text("\n".join(lines) + "\n")
    config = {
        "name": "names",
        "seed": 1,
        "data": {"source": {"type": "csv", "path": str(tmp_path / "n.csv"), "target": "label"}},
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 2}]},
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 16},
    }
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(config))
    trained = runner.invoke(app, ["train", str(tmp_path / "n.yaml"), "--runs-dir", str(tmp_path / "r"), "-q", "--json"])
    assert trained.exit_code == 0, trained.output
    return Path(json.loads(trained.stdout)["run_dir"])


def test_a_column_named_like_an_output_is_refused_with_exit_2(tmp_path):
    run_dir = _names_table_run(tmp_path, ["logits", "kind"])
    exported = runner.invoke(app, ["export", str(run_dir)])
    assert exported.exit_code == 2, exported.output
    assert "'logits'" in exported.output and "rename" in exported.output


def test_a_column_named_like_an_inner_tensor_exports(tmp_path):
    """Graph names made for the encoding never take a column's name (the graph must stay in SSA form)."""
    run_dir = _names_table_run(tmp_path, ["size", "input.size.missing"])
    exported = runner.invoke(app, ["export", str(run_dir), "--check"])
    assert exported.exit_code == 0, exported.output
    assert "class_disagreements 0" in exported.output
