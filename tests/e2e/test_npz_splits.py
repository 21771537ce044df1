"""Predefined splits in an .npz: data.split cannot apply, and validate shows the sizes used."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner()
CONFIG = """\
name: npz_splits
data:
  source: {{type: npz, path: {path}}}
{split}model:
  layers: [{{type: dense, units: 2}}]
loss: cross_entropy
train: {{epochs: 2}}
metrics: [accuracy]
"""


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in (("train", 40), ("val", 10), ("test", 20)):
        arrays[f"x_{name}"] = rng.normal(size=(n, 3))
        arrays[f"y_{name}"] = np.arange(n) % 2
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def write(tmp_path, npz, split=""):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(path=npz, split=split))
    return path


def test_validate_prints_the_split_sizes_actually_used(tmp_path, npz):
    result = runner.invoke(app, ["validate", str(write(tmp_path, npz))])
    assert result.exit_code == 0, result.output
    assert "split: train 40, val 10, test 20 (predefined in the data file)" in result.output


def test_validate_prints_fraction_split_sizes(write_yaml):
    from tests.conftest import MINIMAL

    result = runner.invoke(app, ["validate", str(write_yaml(MINIMAL))])
    assert result.exit_code == 0, result.output
    assert "split: train " in result.output and "(data.split)" in result.output


def test_a_split_that_cannot_apply_is_refused(tmp_path, npz):
    config = write(tmp_path, npz, "  split: {train: 0.5, val: 0.25, test: 0.25}\n")
    for command in (["validate", str(config)], ["train", str(config), "--runs-dir", str(tmp_path / "runs")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "data.split" in result.output and "predefined splits (train 40, val 10, test 20)" in result.output
    assert not (tmp_path / "runs").exists()
    overridden = runner.invoke(app, ["validate", str(write(tmp_path, npz)), "--set", "data.split.train=0.4"])
    assert overridden.exit_code == 2


def test_a_runs_resolved_config_still_reruns(tmp_path, npz):
    trained = runner.invoke(app, ["train", str(write(tmp_path, npz)), "--runs-dir", str(tmp_path), "--json"])
    assert trained.exit_code == 0, trained.output
    resolved = f"{json.loads(trained.stdout)['run_dir']}/config.yaml"  # lists the default data.split
    again = runner.invoke(app, ["validate", resolved])
    assert again.exit_code == 0, again.output
    assert "split: train 40, val 10, test 20" in again.output
