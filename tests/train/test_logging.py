"""The tensorboard and mlflow callbacks: read back with TensorBoard's own reader and MlflowClient, they hold
exactly what metrics.csv and the resolved config say."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner()

CONFIG = """\
name: logged
seed: 0
data: {{source: {{type: xor, samples: 120}}}}
model:
  layers:
    - {{type: dense, units: 6, activation: tanh}}
    - {{type: dense, units: 2}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.02}}
train: {{epochs: 4, batch_size: 16}}
metrics: [accuracy, f1]
callbacks: [{callbacks}]
"""


def train(tmp_path, callbacks, *extra):
    path = tmp_path / "logged.yaml"
    path.write_text(CONFIG.format(callbacks=callbacks))
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs"), "--json", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def metrics_csv(run_dir):
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_flat_config_names_every_scalar():
    from nnctl.train.logging_tb import flat_config

    flat = flat_config({"optimizer": {"lr": 0.1}, "model": {"layers": [{"units": 4, "activation": None}]}})
    assert flat == {"optimizer.lr": 0.1, "model.layers[0].units": 4, "model.layers[0].activation": "null"}


def test_tensorboard_events_equal_metrics_csv(tmp_path):
    pytest.importorskip(
        "tensorboardX", reason="the tensorboard extra is not installed (pip install 'nnctl[tensorboard]')"
    )
    pytest.importorskip("tensorboard", reason="TensorBoard (in dev) is needed to read the events back")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = train(tmp_path, "{type: tensorboard, histograms: true, hparams: [optimizer.lr, 'model.layers[0].units']}")
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    rows = metrics_csv(run_dir)
    columns = [c for c in rows[0] if c != "epoch"]
    assert set(columns) <= set(events.Tags()["scalars"])
    for column in columns:
        logged = events.Scalars(column)
        assert [e.step for e in logged] == [int(r["epoch"]) for r in rows]
        # TensorBoard stores scalars as float32: equal after the same rounding
        assert [e.value for e in logged] == [float(np.float32(float(r[column]))) for r in rows], column
    histograms = events.Tags()["histograms"]
    assert "weights/0.weight" in histograms and "gradients/1.bias" in histograms
    assert len(events.Histograms("weights/0.weight")) == len(rows)
    (config_text,) = events.Tensors("config/text_summary")
    assert b"lr: 0.02" in config_text.tensor_proto.string_val[0]
    # the hparams entry (HPARAMS view): the listed keys and the final metrics
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugin = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    assert dict(session.hparams)["optimizer.lr"].number_value == 0.02
    assert dict(session.hparams)["model.layers[0].units"].number_value == 6
    final = events.Scalars("hparam/final_val_accuracy")
    assert final[0].value == pytest.approx(float(rows[-1]["val_accuracy"]), abs=1e-7)


def test_tensorboard_writer_standalone(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    pytest.importorskip("tensorboard", reason="TensorBoard (in dev) is needed to read the events back")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nnctl.errors import NnctlError
    from nnctl.train.logging_tb import TensorBoardWriter

    writer = TensorBoardWriter(hparams=["optimizer.lr"])
    writer.start(tmp_path, {"name": "x", "optimizer": {"lr": 0.5}})
    for epoch in (1, 2, 3):
        writer.log_epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "note": "text is skipped"})
    writer.end({"epochs": 3, "final": {"train_loss": 1 / 3}, "best": {"epoch": 3, "train_loss": 1 / 3}})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [
        (k, float(np.float32(1.0 / k))) for k in (1, 2, 3)
    ]
    assert "note" not in events.Tags()["scalars"]
    bad = TensorBoardWriter(hparams=["optimizer.momentum"])
    bad.start(tmp_path / "b", {"optimizer": {"lr": 0.5}})
    with pytest.raises(NnctlError, match="no value at optimizer.momentum"):
        bad.end({"final": {"train_loss": 1.0}})


def test_mlflow_run_equals_metrics_csv_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the reader's client, like the callback's
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'nnctl[mlflow]')")
    from mlflow.tracking import MlflowClient

    from nnctl.train.logging_tb import flat_config
    from nnctl.yamlio import read_yaml

    run_dir = train(tmp_path, "{type: mlflow}")
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("logged")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == run_dir.name
    config, _ = read_yaml(run_dir / "config.yaml")
    assert run.data.params == {k: str(v) for k, v in flat_config(config, index=".{}").items()}
    assert run.data.params["optimizer.lr"] == "0.02" and run.data.params["model.layers.0.units"] == "6"
    rows = metrics_csv(run_dir)
    for column in (c for c in rows[0] if c != "epoch"):
        history = sorted(client.get_metric_history(run.info.run_id, column), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r[column])) for r in rows], column
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/metrics.csv", "run/config.yaml", "run/checkpoints", "run/summary.json"} <= artifacts
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "run/summary.json", str(tmp_path))).read_text()
    )
    assert summary["status"] == "completed" and summary["epochs"] == 4


def test_missing_package_fails_training_not_reopening(tmp_path, monkeypatch):
    """Without tensorboardX, training with the callback is a user error naming the extra; a run that logged to
    TensorBoard still validates, predicts and exports on a machine without it."""
    import importlib.util

    run_dir = train(tmp_path, "{type: tensorboard}")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboardX" else real(name, *a)
    )
    path = tmp_path / "logged.yaml"
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs2")])
    assert result.exit_code == 2 and "pip install 'nnctl[tensorboard]'" in result.output
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    import nnctl

    assert nnctl.load_run(run_dir).predict([[1.0, -2.0]]).shape == (1,)


def test_mlflow_resumed_run_continues_the_same_mlflow_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'nnctl[mlflow]')")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    from nnctl.session import resume_training, run_training
    from tests.train.test_resume import StopAfter

    path = tmp_path / "logged.yaml"
    path.write_text(CONFIG.format(callbacks="{type: mlflow, artifacts: false}"))
    part = run_training(path, runs_dir=tmp_path / "runs", stop=StopAfter(15))
    assert part.status == "interrupted" and 0 < part.epochs < 4
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    experiment_id = client.get_experiment_by_name("logged").experiment_id
    (run,) = client.search_runs([experiment_id])
    assert run.info.status == "KILLED"
    assert resume_training(part.run_dir).status == "completed"
    (run,) = client.search_runs([experiment_id])  # the same MLflow run, finished
    assert run.info.status == "FINISHED"
    rows = metrics_csv(part.run_dir)
    history = sorted(client.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r["val_loss"])) for r in rows]


def test_sweep_trials_line_up_in_the_hparams_view(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    pytest.importorskip("tensorboard", reason="TensorBoard (in dev) is needed to read the events back")
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    from tests.conftest import CONFIGS

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"""\
name: tb_grid
base: {CONFIGS / "xor.yaml"}
set: ["train.epochs=3", "callbacks=[{{type: tensorboard, hparams: [optimizer.lr, 'model.layers[0].units']}}]"]
seed: 0
objective: {{metric: accuracy, split: val, goal: max}}
strategy: grid
space:
  optimizer.lr: {{values: [0.003, 0.03]}}
  model.layers[0].units: {{values: [2, 8]}}
"""
    )
    result = runner.invoke(app, ["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs"), "--parallel", "1"])
    assert result.exit_code == 0, result.output
    (root,) = (tmp_path / "runs" / "sweeps" / "tb_grid").iterdir()
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(root))
    events.Reload()
    seen = set()
    for run, content in events.PluginRunToTagToContent("hparams").items():
        info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        values = {k: v.number_value for k, v in info.session_start_info.hparams.items()}
        seen.add((values["optimizer.lr"], values["model.layers[0].units"]))
        assert events.Scalars(run, "hparam/final_val_accuracy")
    assert seen == {(0.003, 2), (0.003, 8), (0.03, 2), (0.03, 8)}
