"""The CLI from the outside: train / eval / validate / list / schema / gradcheck, JSON output, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.session import gradcheck_config
from tests.conftest import CONFIGS, ROOT

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def train_json(config, runs_dir, *extra):
    result = invoke("train", config, "--runs-dir", runs_dir, "--json", "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_then_eval(tmp_path):
    out = train_json(CONFIGS / "xor.yaml", tmp_path, "--set", "train.epochs=5")
    run = Path(out["run_dir"])
    assert out["status"] == "completed" and out["epochs"] == 5
    for name in (
        "config.yaml",
        "model.txt",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.npz",
        "checkpoints/best.npz",
    ):
        assert (run / name).is_file(), name
    assert run.parent == tmp_path / "xor"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["seed"] == 0 and "numpy" in summary["versions"]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,lr,train_loss,val_loss,val_accuracy,seconds" and len(rows) == 6

    result = invoke("eval", run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["split"] == "test" and 0 <= scores["metrics"]["accuracy"] <= 1

    table = invoke("eval", run, "--split", "val", "--checkpoint", "last")
    assert table.exit_code == 0 and "accuracy" in table.stdout


def test_resolved_config_reproduces_the_run(tmp_path):
    first = Path(train_json(CONFIGS / "iris.yaml", tmp_path / "a", "--set", "train.epochs=3")["run_dir"])
    second = Path(train_json(first / "config.yaml", tmp_path / "b")["run_dir"])
    assert (first / "checkpoints/last.npz").read_bytes() == (second / "checkpoints/last.npz").read_bytes()


def test_same_seed_gives_identical_checkpoints_and_metrics(tmp_path):
    runs = [Path(train_json(CONFIGS / "spiral.yaml", tmp_path, "--set", "train.epochs=4")["run_dir"]) for _ in range(2)]
    assert runs[0] != runs[1]
    for name in ("last.npz", "best.npz"):
        assert (runs[0] / "checkpoints" / name).read_bytes() == (runs[1] / "checkpoints" / name).read_bytes()

    def without_time(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        return [line.rsplit(",", 1)[0] for line in lines]  # drop the seconds column

    assert without_time(runs[0]) == without_time(runs[1])


def test_checkpoint_loads_without_pickle(tmp_path):
    run = Path(train_json(CONFIGS / "circle.yaml", tmp_path, "--set", "train.epochs=2")["run_dir"])
    with np.load(run / "checkpoints/last.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        assert "param/0.weight" in npz.files and "norm/shift" in npz.files and "optim/m" in npz.files
    assert meta["config"]["name"] == "circle" and meta["epoch"] == 2 and meta["class_names"]


def test_validate_prints_config_and_summary():
    result = invoke("validate", CONFIGS / "spiral.yaml", "--set", "model.layers[0].units=5")
    assert result.exit_code == 0, result.output
    assert "units: 5" in result.stdout and "dense(5, tanh)" in result.stdout and "total parameters" in result.stdout


def test_validate_explain():
    result = invoke("validate", CONFIGS / "spiral.yaml", "--explain", "--set", "optimizer.lr=0.5")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert lines["optimizer.lr"].endswith("# --set")
    assert lines["optimizer.beta1"].endswith("# default")
    assert lines["data.source.samples"].endswith("# file")


@pytest.mark.parametrize(
    "kind, name",
    [
        ("layers", "dense"),
        ("losses", "cross_entropy"),
        ("optimizers", "adam"),
        ("datasets", "spiral"),
        ("metrics", "r2"),
    ],
)
def test_list_reads_the_registry(kind, name):
    result = invoke("list", kind)
    assert result.exit_code == 0, result.output
    assert name in result.stdout


def test_list_unknown_kind():
    result = invoke("list", "layer")
    assert result.exit_code == 2 and "Did you mean 'layers'?" in result.output


def test_schema_is_json_schema():
    result = invoke("schema")
    schema = json.loads(result.stdout)
    assert "properties" in schema and "model" in schema["properties"]
    assert "DenseLayerSpec" in json.dumps(schema)


def test_gradcheck_command():
    result = invoke("gradcheck", CONFIGS / "spiral.yaml")
    assert result.exit_code == 0, result.output
    assert "network + loss" in result.stdout and "NO" not in result.stdout


def test_plugin_registers_a_layer(tmp_path):
    config = ROOT / "tests/plugins/plugin.yaml"
    assert invoke("validate", config).exit_code == 0
    check = invoke("gradcheck", config)
    assert check.exit_code == 0 and "scaled_tanh" not in check.stdout or "NO" not in check.stdout
    out = train_json(config, tmp_path)
    assert out["status"] == "completed"
    # A run dir never imports a plugin by itself:
    refused = invoke("eval", out["run_dir"])
    assert refused.exit_code == 2 and "--allow-plugins" in refused.output
    assert invoke("eval", out["run_dir"], "--allow-plugins").exit_code == 0


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("nnctl ")


def test_real_process_json_has_one_document_on_stdout(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnctl.cli",
            "train",
            str(CONFIGS / "plane.yaml"),
            "--runs-dir",
            str(tmp_path),
            "--json",
            "--set",
            "train.epochs=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document; progress went to stderr
    assert doc["status"] == "completed" and "r2" in " ".join(doc["final"])
    assert "epoch" in proc.stderr


def test_help_is_fast():
    # Nothing heavy may be imported to print help; time is not asserted (machines vary), imports are.
    code = "import sys; from nnctl import cli; print(sorted(m for m in ('numpy', 'pydantic', 'nnctl.registry') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_gradcheck_checks_a_relu_conv_before_a_max_pool_with_its_own_mask(tmp_path):
    # In the network the max pool applies the conv's relu mask (pool.fuse_relu_masks); checked alone, the conv
    # must apply it itself, or its analytic gradients miss the mask that the finite differences see.
    config = tmp_path / "cnn.yaml"
    config.write_text(
        "seed: 0\n"
        "data: {source: digits_images, split: {train: 0.7, val: 0.15, test: 0.15}}\n"
        "model:\n"
        "  layers:\n"
        "    - {type: conv2d, filters: 3, kernel_size: 3, padding: same, activation: relu}\n"
        "    - {type: max_pool2d, pool_size: 2}\n"
        "    - {type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu}\n"
        "    - {type: max_pool2d, pool_size: 2}\n"
        "    - {type: flatten}\n"
        "    - {type: dense, units: 10}\n"
        "loss: cross_entropy\n"
        "optimizer: {type: adam}\n"
        "train: {epochs: 1, batch_size: 32}\n"
    )
    table, _ = gradcheck_config(config, [], samples=3)
    components, verdicts = (list(column.cells) for column in (table.columns[0], table.columns[3]))
    conv_rows = [str(v) for c, v in zip(components, verdicts, strict=True) if "conv2d" in c]
    assert len(conv_rows) == 6 and set(conv_rows) == {"yes"}
    assert str(verdicts[-1]) == "yes"  # the whole network, wired as it trains
