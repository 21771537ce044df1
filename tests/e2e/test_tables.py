"""Tables end to end: bad column declarations exit 2; the fitted table travels to eval, predict and the API."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nnctl
import nnctl.data.tabular
from nnctl.cli import app

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PENGUIN_COLUMNS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


def penguins(tmp_path, columns: str, extra: str = "", target: str = "species") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"""\
name: p
data:
  source:
    type: penguins
    target: {target}
    columns: {columns}
{extra}  normalize: standard
model:
  layers: [{{type: dense, units: 8, activation: relu}}, {{type: dense, units: 3}}]
loss: cross_entropy
train: {{epochs: 2}}
"""
    )
    return path


def assert_user_error(result, runs: Path, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not runs.exists() or not any(runs.rglob("summary.json"))


@pytest.mark.parametrize(
    "columns, fragments",
    [
        (
            "{islnd: {type: category}}",
            ["p.yaml: line 6: data.source.columns.islnd: there is no column 'islnd'", "Did you mean 'island'"],
        ),
        (
            "{island: {type: numeric}}",
            [
                "p.yaml: line 6: data.source.columns.island.type: 'island' is declared numeric, but CSV file",
                "line 2, column 'island' holds 'Torgersen', which is not a number",
            ],
        ),
        (  # row 4 of the data (line 5): no measurements; the key to add goes under columns (line 6)
            "{}",
            [
                "p.yaml: line 6: data.source.columns.bill_length_mm: CSV file",
                "line 5, column 'bill_length_mm' is empty",
            ],
        ),
    ],
    ids=["unknown-column", "category-declared-numeric", "blank-without-impute"],
)
def test_bad_column_declarations_exit_2(tmp_path, columns, fragments):
    result = runner.invoke(app, ["train", str(penguins(tmp_path, columns)), "--runs-dir", str(tmp_path / "r"), "-q"])
    assert_user_error(result, tmp_path / "r", *fragments)


def test_a_target_with_blanks_exits_2_naming_the_row(tmp_path):
    columns = "{island: {impute: most_frequent}, bill_length_mm: {impute: mean}, bill_depth_mm: {impute: mean}}"
    config = penguins(tmp_path, columns, target="sex")
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q"])
    assert_user_error(result, tmp_path / "r", "p.yaml: line 5: data.source.target: target 'sex' is empty at line 5 of")
    overridden = runner.invoke(
        app,
        [
            "train",
            str(config),
            "--runs-dir",
            str(tmp_path / "r"),
            "-q",
            "--set",
            "data.source.columns.sex.type=numeric",
            "--set",
            "data.source.target=species",
        ],
    )
    assert_user_error(overridden, tmp_path / "r", "--set data.source.columns.sex.type=numeric: data.source.columns.sex")
    for command in (["validate", str(config)], ["cv", str(config), "--folds", "2", "--runs-dir", str(tmp_path / "r")]):
        again = runner.invoke(app, command)
        assert_user_error(again, tmp_path / "r", "p.yaml: line 5: data.source.target: target 'sex' is empty at line 5")


def test_validate_prints_the_inferred_schema():
    result = runner.invoke(app, ["validate", str(CONFIGS / "titanic.yaml")])
    assert result.exit_code == 0, result.output
    assert "  deck: {type: category, impute: constant, fill_value: unknown}" in result.output
    assert "adult_male: {type: binary}" in result.output
    assert "  fare: {type: numeric}" in result.output  # not declared: inferred
    assert "alive" not in result.output.split("columns:")[-1]  # dropped


def test_checkpoint_carries_the_table_to_eval_predict_and_the_api(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        ["train", str(CONFIGS / "penguins.yaml"), "--runs-dir", str(runs), "-q", "--json", "--set", "train.epochs=30"],
    )
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    with np.load(run_dir / "checkpoints" / "best.npz", allow_pickle=False) as npz:
        schema = json.loads(str(npz["table/schema"]))
    assert [c["name"] for c in schema] == PENGUIN_COLUMNS

    run = nnctl.load_run(run_dir)
    raw, labels = run.data("test")
    assert (run.predict(raw) == labels).mean() >= 0.9
    evaluated = json.loads(runner.invoke(app, ["eval", str(run_dir), "--json"]).stdout)
    assert evaluated["metrics"]["accuracy"] == pytest.approx((run.predict(raw) == labels).mean())

    rows = [",".join(PENGUIN_COLUMNS), "Atlantis,39.1,18.7,181,3750,MALE", "Biscoe,,,,,", "Dream,46,17,190,3500,"]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "[yellow]" not in result.output  # a style, not markup printed
    assert "categories not seen in training were encoded as 'other': 'island': 1 row(s)" in result.output
    assert result.stdout.splitlines()[0] == "prediction" and len(result.stdout.splitlines()) == 4
    with pytest.warns(nnctl.data.tabular.UnknownCategoryWarning):
        by_api = run.predict(
            {c: [v or None for v in rows[1].split(",")][i : i + 1] for i, c in enumerate(PENGUIN_COLUMNS)}
        )
    assert by_api[0] == result.stdout.splitlines()[1]


def test_weights_change_the_loss_not_the_metrics(tmp_path):
    from nnctl.build import build_experiment
    from nnctl.config import config_from_dict

    rows = ["a,b,w,label"] + [f"{i % 7},{(i * 3) % 5},{1 + i % 3},{'xyz'[i % 3] if i % 4 else 'x'}" for i in range(90)]
    (tmp_path / "w.csv").write_text("\n".join(rows) + "\n")

    def experiment(**weights):
        source = {"type": "csv", "path": str(tmp_path / "w.csv"), "target": "label"}
        loss = {"type": "cross_entropy"}
        if "sample_weight" in weights:
            source["sample_weight"] = weights["sample_weight"]
        if "class_weight" in weights:
            loss["class_weight"] = weights["class_weight"]
        raw = {"data": {"source": source}, "model": {"layers": [{"type": "dense", "units": 3}]}, "loss": loss}
        if "sample_weight" not in weights:
            raw["data"]["source"]["drop"] = ["w"]
        return build_experiment(config_from_dict(raw))

    plain = experiment()
    for weighted in (experiment(class_weight="balanced"), experiment(sample_weight="w", class_weight={"y": 2.0})):
        assert weighted.feature_names == plain.feature_names  # w is a weight, not a feature
        a, b = plain.evaluate("val"), weighted.evaluate("val")
        assert a["accuracy"] == b["accuracy"] and a["loss"] != pytest.approx(b["loss"])


def test_a_negative_sample_weight_names_the_row(tmp_path):
    (tmp_path / "w.csv").write_text("a,w,label\n1,1,x\n2,-1,y\n")
    from nnctl.data.sources import Csv
    from nnctl.errors import DataError

    with pytest.raises(DataError, match=r"line 3, column 'w' \(sample_weight\) is -1"):
        Csv(path=str(tmp_path / "w.csv"), target="label", sample_weight="w").load(None)


def multilabel_config(tmp_path) -> Path:
    """Two label columns (tall from a, warm from the colour or b) over numbers and a category."""
    rng = np.random.default_rng(0)
    lines = ["a,b,colour,tall,warm"]
    for _ in range(400):
        a, b, c = rng.normal(), rng.normal(), rng.choice(["red", "green", "blue"])
        lines.append(f"{a:.4f},{b:.4f},{c},{int(a > 0)},{'yes' if c == 'red' or b > 1 else 'no'}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "ml.yaml"
    config.write_text(
        f"""\
name: ml
data:
  source: {{type: csv, path: '{tmp_path / "labels.csv"}', target: [tall, warm], task: multilabel}}
  normalize: standard
model:
  layers: [{{type: dense, units: 16, activation: relu}}, {{type: dense, units: 2}}]
loss: binary_cross_entropy
optimizer: {{type: adam, lr: 0.01}}
train: {{epochs: 20}}
"""
    )
    return config


def test_multilabel_targets_train_and_predict_one_column_per_label(tmp_path):
    config = multilabel_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q", "--json"])
    assert result.exit_code == 0, result.output
    run_dir = json.loads(result.stdout)["run_dir"]
    scores = json.loads(runner.invoke(app, ["eval", run_dir, "--json"]).stdout)["metrics"]
    assert scores["label_accuracy"] >= 0.9 and scores["subset_accuracy"] >= 0.8
    (tmp_path / "new.csv").write_text("a,b,colour\n2.0,0.0,red\n-2.0,0.0,blue\n")
    out = runner.invoke(app, ["predict", run_dir, str(tmp_path / "new.csv"), "--proba"]).stdout.splitlines()
    assert out[0] == "prediction_tall,prediction_warm,proba_tall,proba_warm"
    assert out[1].startswith("1,1,") and out[2].startswith("0,0,")


def test_a_multilabel_target_that_is_not_0_1_names_the_row(tmp_path):
    from nnctl.data.sources import Csv
    from nnctl.errors import DataError

    (tmp_path / "m.csv").write_text("a,p,q\n1,0,1\n2,1,maybe\n")
    with pytest.raises(DataError, match=r"target 'p, q' holds 'maybe' at line 3 of .*m.csv' \(label 2\)"):
        Csv(path=str(tmp_path / "m.csv"), target=["p", "q"], task="multilabel").load(None)


def titanic_embedding(tmp_path, first_layer: str = "- category_embedding") -> Path:
    """titanic.yaml with deck's levels embedded (3 numbers each) instead of one-hot."""
    text = (CONFIGS / "titanic.yaml").read_text()
    text = text.replace(
        "deck: {type: category, impute: constant, fill_value: unknown}",
        "deck: {type: category, impute: constant, fill_value: unknown, encoding: embedding, dim: 3}",
    ).replace("  layers:\n", f"  layers:\n    {first_layer}\n")
    path = tmp_path / "titanic_embedding.yaml"
    path.write_text(text)
    return path


def test_an_embedded_category_trains_evaluates_and_predicts(tmp_path):
    runs = tmp_path / "runs"
    config = titanic_embedding(tmp_path)
    result = runner.invoke(
        app, ["train", str(config), "--runs-dir", str(runs), "-q", "--json", "--set", "train.epochs=15"]
    )
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    assert "category_embedding(9 -> 3)" in (run_dir / "model.txt").read_text()  # A..G, unknown + other
    with np.load(run_dir / "checkpoints" / "best.npz", allow_pickle=False) as npz:
        assert npz["param/0.weight_0"].shape == (9, 3)
        assert npz["norm/shift"][-1] == 0 and npz["norm/scale"][-1] == 1  # the id column is not normalized

    run = nnctl.load_run(run_dir)
    raw, labels = run.data("test")
    accuracy = (run.predict(raw) == labels).mean()
    assert accuracy >= 0.75
    evaluated = json.loads(runner.invoke(app, ["eval", str(run_dir), "--json"]).stdout)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(accuracy)

    lines = (CONFIGS.parent / "datasets" / "titanic.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:6]]
    rows[0][header.index("deck")] = "Z"  # a deck never seen in training: 'other'
    (tmp_path / "new.csv").write_text("\n".join([lines[0]] + [",".join(r) for r in rows]) + "\n")
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "new.csv"), "--proba"])
    assert result.exit_code == 0, result.output
    assert "'deck': 1 row(s), level(s) 'Z'" in result.output
    printed = [line.split(",") for line in result.stdout.splitlines()[1:]]
    columns = {name: [r[j] or None for r in rows] for j, name in enumerate(header)}
    with pytest.warns(nnctl.data.tabular.UnknownCategoryWarning):
        proba = run.predict_proba(columns)
    np.testing.assert_allclose([[float(v) for v in r[1:]] for r in printed], proba, atol=1e-6)


@pytest.mark.parametrize(
    "first_layer, fragment",
    [
        ("- {type: dense, units: 4}", "line {layers}: model.layers: deck is declared encoding: embedding"),
        (
            "- {type: category_embedding, dims: [5]}",
            "line {first}: model.layers[0].dims is [5], but the table's embedded",
        ),
    ],
    ids=["layer-missing", "dims-differ"],
)
def test_an_embedding_the_network_does_not_fit_exits_2(tmp_path, first_layer, fragment):
    config = titanic_embedding(tmp_path, first_layer)
    layers = config.read_text().splitlines().index("  layers:") + 1
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r"), "-q"])
    assert_user_error(result, tmp_path / "r", fragment.format(layers=layers, first=layers + 1))
