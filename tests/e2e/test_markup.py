"""Text in square brackets prints as it is: nothing nnctl prints is read as rich markup (issue 13)."""

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from nnctl.cli import app
from tests.conftest import CONFIGS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_a_path_with_brackets(tmp_path):
    runs_dir = tmp_path / "out[bold]"
    result = invoke("train", CONFIGS / "xor.yaml", "--runs-dir", runs_dir, "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("run directory: "))
    printed = Path(line.removeprefix("run directory: "))
    assert str(runs_dir) in line and printed.is_dir()


def test_a_run_name_with_brackets(tmp_path):
    bad = invoke("validate", CONFIGS / "xor.yaml", "--set", "name=x[bold]y")
    assert bad.exit_code == 2 and "x[bold]y" in bad.output
    trained = invoke("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--set", "train.epochs=1", "--json")
    run = Path(json.loads(trained.stdout)["run_dir"])
    copy = tmp_path / "a[bold]b" / run.name  # a run renamed by hand (or written by another tool)
    shutil.copytree(run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "name": "a[bold]b"}))
    listed = invoke("runs", tmp_path)
    assert listed.exit_code == 0 and "a[bold]b" in listed.output


def test_class_labels_with_brackets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i % 7},{(i * 3) % 5},{'[bold]yes' if i % 2 else '[red]no'}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows)
    (tmp_path / "c.yaml").write_text(
        "name: brackets\ndata:\n  source: {type: csv, path: d.csv, target: label}\n"
        "model:\n  layers: [{type: dense, units: 2}]\nloss: cross_entropy\ntrain: {epochs: 2}\nmetrics: [accuracy]\n"
    )
    trained = invoke("train", "c.yaml", "--json", "--quiet")
    assert trained.exit_code == 0, trained.output
    result = invoke("eval", json.loads(trained.stdout)["run_dir"])
    assert result.exit_code == 0, result.output
    assert "[bold]yes" in result.output and "[red]no" in result.output


def test_a_note_with_brackets(tmp_path, monkeypatch):
    from nnctl.errors import NnctlError
    from nnctl.viz import plots

    trained = invoke("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--set", "train.epochs=1", "--json")
    run = json.loads(trained.stdout)["run_dir"]

    def no_matplotlib():
        raise NnctlError(plots.MISSING_MATPLOTLIB)

    monkeypatch.setattr(plots, "pyplot", no_matplotlib)  # as if matplotlib were not installed
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    assert "pip install 'nnctl[plot]'" in result.output and 'pip install -e ".[plot]"' in result.output
