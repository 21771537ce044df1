"""The device seam (nnctl/device.py) without a GPU.

Every registered layer (forward, backward, eval), loss, optimizer, regularizer and metric runs on a strict
stand-in device (tests/strict_device.py: arrays that numpy itself refuses) and must give exactly the NumPy
results; a component without a case fails. Whole trainings run on the stand-in too, so the trainer, the
evaluation and the checkpoint boundary are held to the seam. Asking for cuda without CuPy or without a
GPU is a user error (exit 2) that says which is missing.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl import devicecheck
from nnctl.build import build_experiment
from nnctl.cli import app
from nnctl.config import dump_config, load_config
from nnctl.device import CPU, Device, resolve_device
from nnctl.errors import ConfigError
from nnctl.nn.activations import Tanh
from nnctl.optim.optimizers import FLUSH_EVERY
from nnctl.runs.checkpoint import Checkpoint
from nnctl.train.trainer import train
from tests.device_cases import TABLES, device_cases
from tests.strict_device import STRICT, STRICT_XP, StrictArray, StrictError

CASES = device_cases()


def _params():
    for kind, items in CASES.items():
        for name, case_id, args in items:
            yield pytest.param(kind, name, args, id=f"{kind}-{case_id}")


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_every_registered_component_has_a_device_case(kind):
    assert devicecheck.missing_cases(kind, TABLES[kind]) == [], f"registered {kind} without a device case"
    assert {name for name, _, _ in CASES[kind]} == set(TABLES[kind])


@pytest.mark.parametrize("kind, name, args", list(_params()))
def test_component_on_the_strict_device_equals_numpy(kind, name, args):
    runner = devicecheck.RUNNERS[kind]
    extra = {"steps": FLUSH_EVERY + 1} if kind == "optimizers" else {}  # through the denormal flush once
    expected = runner(name, *args, device=CPU, **extra)
    got = runner(name, *args, device=STRICT, **extra)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert isinstance(got[key], np.ndarray) and not isinstance(got[key], StrictArray)
        np.testing.assert_array_equal(got[key], value, err_msg=f"{name}: {key}")


def test_the_harness_reports_every_case_as_equal_between_two_cpus():
    records = devicecheck.check_all({k: v[:2] for k, v in CASES.items()}, CPU, CPU)
    assert len(records) == sum(min(2, len(v)) for v in CASES.values())
    assert all(r["max"] == 0.0 and r["errors"] for r in records)


def test_the_strict_device_refuses_numpy_on_device_arrays():
    x = STRICT.to_device(np.arange(3.0))
    host = np.ones(3)
    refused = {
        "ufunc": lambda: np.tanh(x),
        "function": lambda: np.sum(x),
        "conversion": lambda: np.asarray(x),
        "host operand": lambda: x + host,
        "host on the left": lambda: host * x,
        "host index": lambda: x[np.arange(2)],
        "host value": lambda: x.__setitem__(slice(None), host),
        "host argument to xp": lambda: STRICT_XP.dot(x, host),
        "ufunc method": lambda: np.add.reduce(x),
    }
    for what, call in refused.items():
        with pytest.raises(StrictError):
            call()
            pytest.fail(f"{what} was not refused")
    # ... while the stand-in xp, operators and methods work, giving device arrays
    y = STRICT_XP.exp(x) * 2 + x.sum()
    assert isinstance(y, StrictArray) and float(y[0]) == 2 + 3
    assert float(STRICT_XP.add.reduceat(x, STRICT_XP.asarray([0, 2]))[0]) == 1.0


def test_a_layer_that_calls_numpy_directly_fails_on_the_strict_device(monkeypatch):
    """What the seam test exists for: a direct np call in a layer is caught."""
    devicecheck.run_layer("tanh", {}, (5,), device=STRICT)  # the real layer passes

    def direct(self, x, *, training):  # Tanh.forward calling numpy itself
        self._cache = y = np.tanh(x)
        return y

    monkeypatch.setattr(Tanh, "forward", direct)
    devicecheck.run_layer("tanh", {}, (5,), device=CPU)  # NumPy alone cannot tell
    with pytest.raises(StrictError, match="numpy.tanh"):
        devicecheck.run_layer("tanh", {}, (5,), device=STRICT)


# --- whole trainings on the stand-in: trainer, evaluation, checkpoints --------------------------------

CLASSIFY = """
name: strict_classify
seed: 3
data: {source: {type: circle, samples: 90}, normalize: standard}
model:
  layers:
    - {type: dense, units: 8, activation: tanh, regularizers: [{type: max_norm, max: 2.0}]}
    - {type: batch_norm}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 2}
loss: {type: cross_entropy, class_weight: balanced}
regularizers: [{type: l1_l2, l1: 0.001, l2: 0.01}]
optimizer: {type: adam, lr: 0.05, clip_norm: 5.0}
schedule: {type: cosine}
train: {epochs: 3, batch_size: 16}
metrics: [accuracy, f1, precision, recall, log_loss]
"""

REGRESS = """
name: strict_regress
seed: 4
data: {source: {type: function, target: sine, samples: 60}, normalize: standard, target_normalize: standard}
model: {layers: [{type: dense, units: 6, activation: gelu}, {type: layer_norm}, {type: gaussian_noise, std: 0.1}, {type: dense, units: 1}]}
loss: huber
optimizer: {type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.001}
train: {epochs: 3, batch_size: 10}
metrics: [mse, mae, rmse, r2]
"""

IMAGES = """
name: strict_images
seed: 5
data:
  source: {type: digits_images}
  split: {train: 0.2, val: 0.1, test: 0.7}
  normalize: {method: minmax, per: all}
  augment: [{type: flip, p: 0.5}]
model:
  layers:
    - {type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu}
    - {type: max_pool2d, pool_size: 2}
    - {type: residual, layers: [{type: conv2d, filters: 6, kernel_size: 3, stride: 2, padding: same}]}
    - {type: avg_pool2d, pool_size: 2}
    - {type: flatten}
    - {type: dense, units: 10}
loss: cross_entropy
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 2, batch_size: 32}
metrics: [accuracy, top_k_accuracy]
"""

SEQUENCES = """
name: strict_sequences
seed: 6
data: {source: {type: temporal_order, samples: 60, length: 8, distractors: 3}}
model:
  layers:
    - {type: lstm, units: 5, return_sequences: true, bidirectional: true}
    - {type: gru, units: 4, return_sequences: true}
    - {type: simple_rnn, units: 3}
    - {type: dense, units: 4}
loss: cross_entropy
optimizer: {type: rmsprop, lr: 0.01}
train: {epochs: 2, batch_size: 16}
"""


def _train_on(device: Device, text: str, tmp_path):
    path = tmp_path / "strict.yaml"
    path.write_text(text)
    experiment = build_experiment(load_config(path), device=device)
    result = train(experiment)
    ckpt = Checkpoint.capture(
        experiment.network, experiment.normalizer, experiment.target_normalizer, {}, experiment.optimizer
    )
    return experiment, result, ckpt


@pytest.mark.parametrize("resident", [True, False], ids=["split-moved-once", "batches-moved"])
@pytest.mark.parametrize(
    "text", [CLASSIFY, REGRESS, IMAGES, SEQUENCES], ids=["classification", "regression", "images", "sequences"]
)
def test_a_training_on_the_strict_device_equals_the_cpu_one(text, resident, tmp_path, monkeypatch):
    from nnctl import build
    from nnctl.train.evaluate import score_split

    if not resident:  # every split too big to keep on the device: each batch moves
        monkeypatch.setattr(build, "RESIDENT_BYTES", 0)
    cpu, cpu_result, cpu_ckpt = _train_on(CPU, text, tmp_path)
    strict, result, ckpt = _train_on(STRICT, text, tmp_path)
    assert strict.device is STRICT and isinstance(strict.network.flat_params, StrictArray)
    augmented = bool(strict.augmentations)  # augmentation runs on the host: its batches always move
    assert (strict.resident("train", training=True) is not None) == (resident and not augmented)
    assert (strict.resident("val") is not None) == resident and cpu.resident("train") is None
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in result.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in cpu_result.history
    ]
    for part in ("params", "buffers", "optimizer"):  # the checkpoint holds NumPy arrays, equal to the CPU's
        mine, theirs = getattr(ckpt, part), getattr(cpu_ckpt, part)
        assert sorted(mine) == sorted(theirs)
        for key in mine:
            assert type(mine[key]) is np.ndarray
            np.testing.assert_array_equal(mine[key], theirs[key])
    assert score_split(strict, "test") == score_split(cpu, "test")
    x = strict.splits["test"].x
    np.testing.assert_array_equal(strict.network.predict(x), cpu.network.predict(x))  # host in, host out


def test_a_checkpoint_from_the_strict_device_loads_on_the_cpu_and_back(tmp_path):
    strict, _, ckpt = _train_on(STRICT, CLASSIFY, tmp_path)
    ckpt.save(tmp_path / "last.npz")
    loaded = Checkpoint.load(tmp_path / "last.npz")
    path = tmp_path / "strict.yaml"
    for device in (CPU, STRICT):
        again = build_experiment(load_config(path), device=device)
        loaded.apply(again.network, again.optimizer)
        np.testing.assert_array_equal(again.network.host_params(), strict.network.host_params())
        np.testing.assert_array_equal(
            device.to_host(again.optimizer.state["m"]), STRICT.to_host(strict.optimizer.state["m"])
        )


# --- asking for a GPU that is not there ---------------------------------------------------------------


def _fake_cupy(count):
    """A module standing in for CuPy whose runtime reports `count` GPUs (an int) or raises (an exception)."""

    def get_count():
        if isinstance(count, Exception):
            raise count
        return count

    runtime = types.SimpleNamespace(getDeviceCount=get_count)
    device = types.SimpleNamespace(use=lambda: None, synchronize=lambda: None)
    cuda = types.SimpleNamespace(runtime=runtime, Device=lambda index: device)
    return types.SimpleNamespace(cuda=cuda, asarray=np.asarray, asnumpy=np.asarray)


def test_cuda_without_cupy_says_cupy_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(ConfigError, match=r"needs CuPy, which is not installed.*nnctl\[gpu\]"):
        resolve_device("cuda")


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice")], ids=["no-gpu", "no-driver"])
def test_cuda_with_cupy_but_no_gpu_says_the_gpu_is_missing(monkeypatch, count):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    with pytest.raises(ConfigError, match="CuPy is installed but finds no GPU"):
        resolve_device("cuda:0")


def test_a_gpu_index_beyond_the_machine_names_the_ones_there(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(2))
    assert resolve_device("cuda:1").name == "cuda:1"
    with pytest.raises(ConfigError, match=r"2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_device_in_the_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: d\ndata: {source: xor}\nmodel: {layers: [{type: dense, units: 2}]}\nloss: cross_entropy\n")
    assert "device" not in dump_config(load_config(path))["train"]  # CPU runs resolve as before the key
    assert dump_config(load_config(path, ["train.device=cuda:1"]))["train"]["device"] == "cuda:1"
    with pytest.raises(ConfigError, match="train.device"):
        load_config(path, ["train.device=gpu"])


TINY = "name: tiny\ndata: {source: {type: xor, samples: 40}}\nmodel: {layers: [{type: dense, units: 2}]}\nloss: cross_entropy\ntrain: {epochs: 1}\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("device_cli")
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "in.csv").write_text("x1,x2\n0.5,-0.5\n")
    result = CliRunner().invoke(app, ["train", "--quiet", str(folder / "tiny.yaml"), "--runs-dir", str(folder / "r")])
    assert result.exit_code == 0, result.output
    return folder, next((folder / "r").glob("*/*"))


@pytest.mark.parametrize("missing", ["cupy", "gpu"])
def test_every_command_with_device_cuda_is_an_exit_2_error(monkeypatch, missing, tiny_run):
    folder, run = tiny_run
    monkeypatch.setitem(sys.modules, "cupy", None if missing == "cupy" else _fake_cupy(0))
    expected = "not installed" if missing == "cupy" else "finds no GPU"
    config, runs = str(folder / "tiny.yaml"), str(folder / "r")
    for args in (
        ["train", "--quiet", config, "--device", "cuda", "--runs-dir", runs],
        ["train", "--quiet", config, "--set", "train.device=cuda:0", "--runs-dir", runs],
        ["train", "--quiet", "--resume", str(run), "--device", "cuda"],
        ["eval", str(run), "--device", "cuda"],
        ["predict", str(run), str(folder / "in.csv"), "--device", "cuda:0"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output and "Traceback" not in result.output, result.output
    assert len(list((folder / "r").glob("*/*"))) == 1  # no run directory left behind by the refused trainings


def test_eval_and_predict_take_device_cpu(tiny_run):
    folder, run = tiny_run
    for args in (
        ["eval", str(run), "--device", "cpu"],
        ["predict", str(run), str(folder / "in.csv"), "--device", "cpu"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output


def test_rel_error_tells_nan_from_infinity():
    from nnctl.devicecheck import rel_error

    assert rel_error(np.array([1.0, np.nan]), np.array([1.0, np.nan])) == 0.0
    assert rel_error(np.array([1.0, np.inf]), np.array([1.0, np.inf])) == 0.0
    assert rel_error(np.array([1.0, np.inf]), np.array([1.0, np.nan])) == float("inf")
    assert rel_error(np.array([np.inf]), np.array([-np.inf])) == float("inf")
