"""`nnctl init`: shipped examples copied into a folder, then trained and used for predictions there."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from tests.conftest import CONFIGS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_without_a_name_lists_every_example():
    result = invoke("init")
    assert result.exit_code == 0, result.output
    names = [p.stem for p in CONFIGS.glob("*.yaml")] + [p.stem for p in (CONFIGS / "sweeps").glob("*.yaml")]
    missing = [n for n in names if f"│ {n} " not in result.output]
    assert not missing and "iris (shipped)" in result.output


@pytest.mark.parametrize(("example", "columns"), [("iris", 4), ("playground_circle", 2)])
def test_init_then_train_then_predict_in_an_empty_folder(tmp_path, monkeypatch, example, columns):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", example)
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{example}.yaml").read_bytes() == (CONFIGS / f"{example}.yaml").read_bytes()
    with open(tmp_path / f"{example}_new.csv", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert len(header) == columns and len(rows) >= 5
    trained = invoke("train", f"{example}.yaml", "--set", "train.epochs=3", "--quiet", "--json")
    assert trained.exit_code == 0, trained.output
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    assert run_dir.parent == Path("runs") / example  # relative to the folder it was run in
    predicted = invoke("predict", run_dir, f"{example}_new.csv", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["samples"] == len(rows)


def test_into_a_new_folder_and_never_over_a_file(tmp_path):
    target = tmp_path / "a" / "b"
    assert invoke("init", "wine", target).exit_code == 0
    assert sorted(p.name for p in target.iterdir()) == ["wine.yaml", "wine_new.csv"]
    (target / "wine.yaml").write_text("mine\n")
    again = invoke("init", "wine", target)
    assert again.exit_code == 2 and "already exist" in again.output and "--force" in again.output
    assert (target / "wine.yaml").read_text() == "mine\n"
    assert invoke("init", "wine", target, "--force").exit_code == 0
    assert (target / "wine.yaml").read_bytes() == (CONFIGS / "wine.yaml").read_bytes()


def test_a_sweep_comes_with_its_base_config(tmp_path):
    result = invoke("init", "xor_grid", tmp_path)
    assert result.exit_code == 0 and "nnctl sweep" in result.output
    assert "\nbase: xor.yaml" in (tmp_path / "xor_grid.yaml").read_text()
    assert (tmp_path / "xor.yaml").read_bytes() == (CONFIGS / "xor.yaml").read_bytes()
    from nnctl.sweep.runner import prepare_sweep  # resolves base: relative to the sweep file

    plan = prepare_sweep(tmp_path / "xor_grid.yaml", tmp_path / "runs")
    assert plan.base["name"] == "xor" and plan.path.is_dir()


def test_unknown_example_is_a_usage_error(tmp_path):
    result = invoke("init", "iri", tmp_path)
    assert result.exit_code == 2 and "Did you mean 'iris'?" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
