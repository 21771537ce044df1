"""`nnctl export` on trained runs, one per layer family: onnx.checker, then onnxruntime on the raw test split
against the `nnctl predict` path (outputs within 1e-5, identical classes); metadata, errors, plugins."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.runs.rundir import RunDir
from tests.conftest import CONFIGS

onnx = pytest.importorskip(
    "onnx", reason="the onnx extra is not installed (pip install 'nnctl[onnx]'): export tests skipped"
)
ort = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed (pip install 'nnctl[onnx]'): export tests skipped"
)

from nnctl.export.verify import compare_run  # noqa: E402

runner = CliRunner()
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
TOLERANCE = 1e-5

# Families no shipped example covers, as small configs: residual blocks and the three per-sample norms on
# images; every recurrent cell with time_distributed_dense on a regression with normalized targets.
NORM_RESIDUAL = """\
name: export_norms
seed: 0
data: {source: digits_images, normalize: {method: minmax, per: all}}
model:
  layers:
    - {type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu}
    - {type: group_norm, groups: 2}
    - {type: residual, layers: [{type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: elu}, {type: layer_norm}]}
    - {type: residual, layers: [{type: conv2d, filters: 6, kernel_size: 3, stride: 2, padding: same}]}
    - {type: instance_norm}
    - {type: avg_pool2d, pool_size: 2}
    - {type: flatten}
    - {type: dense, units: 16, activation: gelu}
    - {type: batch_renorm, warmup_steps: 5}
    - {type: gaussian_noise, std: 0.1}
    - {type: dense, units: 10}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 64}
"""

RECURRENT_REGRESSION = """\
name: export_rnn
seed: 0
data:
  source: {type: sine_wave, samples: 300, length: 12, noise: 0.05}
  target_normalize: standard
model:
  layers:
    - {type: simple_rnn, units: 6, return_sequences: true, bidirectional: true}
    - {type: time_distributed_dense, units: 5, activation: tanh}
    - {type: gru, units: 5, return_sequences: true}
    - {type: lstm, units: 4, bidirectional: true}
    - {type: dense, units: 1}
loss: mse
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 32}
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def train(config, runs_dir, *extra):
    result = invoke("train", config, "--runs-dir", runs_dir, "--json", "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


FAMILIES = {
    # family: (config, --set overrides)
    "dense + Playground features + binary_cross_entropy": (CONFIGS / "circle.yaml", ["train.epochs=3"]),
    "Playground compat (playground_mse tanh)": (CONFIGS / "playground_spiral.yaml", ["train.epochs=3"]),
    "polynomial + dropout, regression": (CONFIGS / "overfit_sine_dropout.yaml", ["train.epochs=20"]),
    "batch_norm": (CONFIGS / "deep_sigmoid_batchnorm.yaml", ["train.epochs=2"]),
    "conv2d + pooling + dropout": (CONFIGS / "digits_cnn.yaml", ["train.epochs=1"]),
    "conv1d (same, dilation) + global pooling": (CONFIGS / "signals_conv1d.yaml", ["train.epochs=1"]),
    "embedding + bidirectional gru": (CONFIGS / "embedding_gru.yaml", ["train.epochs=1"]),
    "tabular regression, normalized targets": (CONFIGS / "diabetes.yaml", ["train.epochs=5"]),
    "residual + group/layer/instance norm + batch_renorm": (NORM_RESIDUAL, []),
    "simple_rnn / gru / lstm, both directions, sequences": (RECURRENT_REGRESSION, []),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_trained_run_exports_like_predict(family, runs, tmp_path):
    config, overrides = FAMILIES[family]
    if isinstance(config, str):
        path = tmp_path / "config.yaml"
        path.write_text(config)
        config = path
    run_dir = train(config, runs, *[a for o in overrides for a in ("--set", o)])
    result = invoke("export", run_dir, "--json")
    assert result.exit_code == 0, result.output
    model_path = Path(json.loads(result.stdout)["output"])
    # the default checkpoint: best, or last for a run that monitors no validation value
    checkpoint = RunDir(run_dir).default_checkpoint()[0]
    assert model_path == run_dir / "export" / f"model-{checkpoint}.onnx"
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    held_out = "val" if "Playground compat" in family else "test"  # a converted link's test data is its val split
    check = compare_run(run_dir, model_path, held_out, checkpoint)
    if check["task"] == "classification":
        assert check["max_abs_diff_logits"] <= TOLERANCE, check
        assert check["max_abs_diff_probabilities"] <= TOLERANCE, check
        assert check["class_disagreements"] == 0, check
    else:
        assert check["max_abs_diff_output"] <= TOLERANCE, check
        # values are in the data's units (target normalization undone): the same bound, relative to their size
        assert check["max_abs_diff_values"] <= TOLERANCE * max(1.0, check["max_abs_values"]), check


@pytest.fixture(scope="module")
def iris_run(runs):
    return train(CONFIGS / "iris.yaml", runs, "--set", "train.epochs=5")


def test_model_metadata_inputs_and_outputs(iris_run, tmp_path):
    out = tmp_path / "iris.onnx"
    result = invoke("export", iris_run, "-o", out, "--checkpoint", "last", "--opset", "18", "--check")
    assert result.exit_code == 0, result.output
    assert "class_disagreements 0" in result.output
    model = onnx.load(out)
    assert model.opset_import[0].version == 18
    meta = {p.key: p.value for p in model.metadata_props}
    from nnctl import __version__

    assert meta["nnctl_version"] == __version__ and meta["task"] == "classification" and meta["checkpoint"] == "last"
    assert json.loads(meta["class_names"]) == ["setosa", "versicolor", "virginica"]
    features = json.loads(meta["feature_names"])
    assert len(features) == 4 and json.loads(meta["input_names"]) == features
    assert json.loads(meta["config"])["name"] == "iris"
    (inp,) = model.graph.input
    assert inp.name == "input" and [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 4]
    assert [o.name for o in model.graph.output] == ["logits", "probabilities", "class_index"]

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    import nnctl

    run = nnctl.load_run(iris_run, checkpoint="last")
    raw, labels = run.data("test")
    for rows in (raw[:1], raw):  # one sample and the whole split through the same model
        logits, proba, cls = session.run(None, {"input": rows.astype(np.float32)})
        assert cls.dtype == np.int64 and cls.shape == (len(rows),)
        assert list(np.asarray(run.classes)[cls]) == list(run.predict(rows))
        assert np.allclose(proba, run.predict_proba(rows), atol=TOLERANCE, rtol=0)


def test_playground_model_takes_raw_points(runs):
    run_dir = train(CONFIGS / "circle.yaml", runs, "--set", "train.epochs=2")
    assert invoke("export", run_dir).exit_code == 0
    session = ort.InferenceSession(str(run_dir / "export" / "model-best.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 2]  # (x1, x2), not features
    import nnctl

    points = np.array([[0.0, 0.5], [4.5, -1.0], [-2.0, 3.0]])
    _, proba, cls = session.run(None, {"input": points.astype(np.float32)})
    run = nnctl.load_run(run_dir)
    assert np.allclose(proba, run.predict_proba(points), atol=TOLERANCE, rtol=0)
    assert list(np.asarray(run.classes)[cls]) == list(run.predict(points))


def test_user_errors_exit_2(iris_run, tmp_path):
    result = invoke("export", tmp_path / "nope")
    assert result.exit_code == 2 and "run directory not found" in result.output
    result = invoke("export", iris_run, "--checkpoint", "newest")
    assert result.exit_code == 2 and "best or last" in result.output
    result = invoke("export", iris_run, "--opset", "9")
    assert result.exit_code == 2 and "--opset must be between" in result.output
    result = invoke("export", iris_run, "-o", tmp_path / "missing" / "m.onnx")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_without_the_extra_the_message_says_what_to_install(iris_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    result = invoke("export", iris_run)
    assert result.exit_code == 2 and "pip install 'nnctl[onnx]'" in result.output


def test_plugin_layers_need_allow_plugins_and_an_exporter(runs, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    run_dir = train(PLUGINS / "plugin.yaml", runs, "--set", "train.epochs=2")
    result = invoke("export", run_dir)
    assert result.exit_code == 2 and "--allow-plugins" in result.output
    # The plugin registers an exporter for its layer (tests/plugins/nnctl_test_plugin.py): the export works...
    result = invoke("export", run_dir, "--allow-plugins", "--check")
    assert result.exit_code == 0, result.output
    assert "class_disagreements 0" in result.output
    # ...and without one, the error names the layer and where it is, exit 2.
    from nnctl.export import registry

    monkeypatch.delitem(registry._EXPORTERS, "scaled_tanh")
    result = invoke("export", run_dir, "--allow-plugins")
    assert result.exit_code == 2
    assert "model.layers[1] (scaled_tanh)" in result.output and "register_exporter" in result.output
