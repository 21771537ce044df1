"""One component convention across every registry kind, and a test case for every registered component.

(a) Parameters are declared once: no registered component defines its own ``__init__`` (only the bases
    `Component` and `Layer` do), except the training loop's own callbacks (``listable = False``),
    which the loop builds from Python objects rather than from YAML values.
(b) The registry hands the component its validated values: ``settings`` is the validated Params model
    and every field of it is an attribute of the instance.
(c) Every registered component has a case, per kind, keyed by registered name; a name without a case
    fails `test_every_registered_component_has_a_case`. Layers, losses and regularizers use the cases
    of the float64 gradient-check harness (tests/nn/test_gradients.py) and augmentations those of
    tests/data/test_augment.py (shape kept, p = 0 is the identity); the other kinds' cases are here:
    optimizers take one step on a quadratic (hand-computed), schedules give the rate at a chosen time,
    data sources load with small parameters, metrics score perfect predictions best, and callbacks
    each run in a short training where their effect shows.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl import registry
from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.nn.layer import Layer
from nnctl.registry import Component
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.rundir import RunDir, create_run_dir
from nnctl.train.trainer import train
from tests.data.test_augment import CASES as AUGMENT_CASES
from tests.nn.test_gradients import LAYER_CASES, LOSS_CASES, REGULARIZER_CASES

# The test plugins register a layer (scaled_tanh) and a listable callback (stop_at): a user's
# components follow the same convention and need cases too.
sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))
import nnctl_test_callback  # noqa: E402, F401
import nnctl_test_plugin  # noqa: E402, F401

# The loop's own callbacks: built by the loop from config sections, with Python objects.
LOOP_OWNED = {
    "best_weights",
    "checkpoint",
    "early_stopping",
    "metrics_log",
    "progress",
    "reduce_on_plateau",
    "summary",
    "threads",
    "time_limit",
}

# --- optimizers: one step on f(p) = 0.5 * (p0^2 + 3 p1^2) from p = (1, -2), gradient (1, -6) -----------

P0 = np.array([1.0, -2.0])
CURVATURE = np.array([1.0, 3.0])

OPTIMIZER_CASES = {
    "sgd": ({"lr": 0.1}, [0.9, -1.4]),  # p - lr g
    "adam": ({"lr": 0.1}, [0.9, -1.9]),  # first step: lr * g / |g| (bias-corrected moments)
    "adamw": ({"lr": 0.1, "weight_decay": 0.5}, [0.85, -1.8]),  # p (1 - lr wd), then the Adam step
    "rmsprop": ({"lr": 0.01, "rho": 0.9}, [1 - 0.01 / np.sqrt(0.1), -2 + 0.01 / np.sqrt(0.1)]),  # g / sqrt(0.1 g^2)
    "adagrad": ({"lr": 0.1}, [0.9, -1.9]),  # g / sqrt(g^2)
    # p - lr g - lr rate p (the derivative of L2 taken before the step)
    "playground_sgd": ({"lr": 0.1, "regularization": "l2", "regularization_rate": 0.1}, [0.89, -1.38]),
}

# --- schedules: lr(base 0.1, t, 10 epochs), after feeding reduce_on_plateau the epoch-end values ------

SCHEDULE_CASES = {
    "constant": ({"warmup_epochs": 2}, 1.0, [], 0.05),
    "step": ({"every": 2, "factor": 0.5}, 4.5, [], 0.025),
    "multistep": ({"milestones": [1, 3]}, 3.5, [], 0.001),
    "exponential": ({"factor": 0.5}, 3.0, [], 0.0125),
    "cosine": ({"period": 4}, 2.0, [], 0.05),
    # best 1.0, then no improvement for more than `patience` (0) epochs: the rate is halved
    "reduce_on_plateau": ({"patience": 0, "factor": 0.5}, 3.0, [1.0, 1.0], 0.05),
}

# --- data sources: small parameters; (params given the folder of test files, task, sample shape) ------


def _files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(8)]
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    np.savez(folder / "flat.npz", x=rng.random((8, 3)), y=np.arange(8) % 2)
    np.savez(folder / "images.npz", x=rng.random((8, 1, 4, 4)), y=np.arange(8) % 2)
    np.savez(folder / "seq.npz", x=rng.random((8, 5, 2)), y=rng.random(8))
    np.save(folder / "x.npy", rng.random((8, 1, 4, 4)).astype(np.float32))
    np.save(folder / "y.npy", np.arange(8) % 2)
    from nnctl.data.convert import convert_csv

    convert_csv(folder / "table.csv", folder / "shards", "y")
    pixels = ["p0,p1,p2,p3,label"] + [f"{i},{i + 1},{i + 2},{i + 3},{i % 2}" for i in range(8)]
    (folder / "pixels.csv").write_text("\n".join(pixels) + "\n")
    try:
        from PIL import Image
    except ImportError:
        return
    for label, value in (("dark", 20), ("light", 230)):
        (folder / "img" / label).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.new("L", (3, 2), value + i).save(folder / "img" / label / f"{i}.png")


PENGUIN_BLANKS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
SOURCE_CASES = {
    "circle": (lambda d: {"samples": 20}, "classification", (2,)),
    "xor": (lambda d: {"samples": 20, "features": ["x1", "x2", "x1_x2"]}, "classification", (3,)),
    "gauss": (lambda d: {"samples": 20, "noise": 10}, "classification", (2,)),
    "spiral": (lambda d: {"samples": 20}, "classification", (2,)),
    "plane": (lambda d: {"samples": 20}, "regression", (2,)),
    "multi_gauss": (lambda d: {"samples": 20}, "regression", (2,)),
    "function": (lambda d: {"target": "sine", "samples": 20}, "regression", (1,)),
    "adding_problem": (lambda d: {"samples": 20, "length": 6}, "regression", (6, 2)),
    "sine_wave": (lambda d: {"samples": 20, "length": 6}, "regression", (6, 1)),
    "temporal_order": (lambda d: {"samples": 20, "length": 6, "distractors": 2}, "classification", (6, 4)),
    "signal_shapes": (lambda d: {"samples": 8, "length": 32}, "classification", (1, 32)),
    "iris": (lambda d: {}, "classification", (4,)),
    "wine": (lambda d: {}, "classification", (13,)),
    "breast_cancer": (lambda d: {}, "classification", (30,)),
    "digits": (lambda d: {}, "classification", (64,)),
    "digits_images": (lambda d: {}, "classification", (1, 8, 8)),
    "diabetes": (lambda d: {}, "regression", (10,)),
    "csv": (lambda d: {"path": str(d / "table.csv"), "target": "y"}, "classification", (2,)),
    "npz": (lambda d: {"path": str(d / "flat.npz")}, "classification", (3,)),
    "image_npz": (lambda d: {"path": str(d / "images.npz")}, "classification", (1, 4, 4)),
    "npy": (lambda d: {"x": str(d / "x.npy"), "y": str(d / "y.npy")}, "classification", (1, 4, 4)),
    "shards": (lambda d: {"path": str(d / "shards")}, "classification", (2,)),
    "image_csv": (lambda d: {"path": str(d / "pixels.csv"), "target": "label", "shape": [1, 2, 2]}, "classification", (1, 2, 2)),
    "image_folder": (lambda d: {"path": str(d / "img"), "color": "grayscale"}, "classification", (1, 2, 3)),
    "sequence_npz": (lambda d: {"path": str(d / "seq.npz")}, "regression", (5, 2)),
    "sequence_csv": (lambda d: {"path": str(d / "pixels.csv"), "target": "label", "shape": [2, 2]}, "classification", (2, 2)),
    # tables: x stays (N, 0) until the build fits the columns on the training split (tests/data/test_tabular.py)
    "penguins": (lambda d: {"columns": {c: {"impute": "most_frequent"} for c in PENGUIN_BLANKS}}, "classification", (0,)),
    "titanic": (lambda d: {"drop": ["alive", "deck", "embarked", "embark_town"], "columns": {"age": {"impute": "median"}}}, "classification", (0,)),
}  # fmt: skip

# --- metrics: perfect predictions (y, pred, proba) give the best value; a wrong one scores worse -------

Y_CLASSES = np.array([0, 1, 2, 1])
ONE_HOT = np.eye(3)[Y_CLASSES]
Y_VALUES = np.array([[0.5], [1.5], [-2.0], [3.0]])
Y_LABELS = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])  # multilabel: one 0/1 column per label
METRIC_CASES = {
    "accuracy": ({}, 1.0),
    "precision": ({}, 1.0),
    "recall": ({}, 1.0),
    "f1": ({}, 1.0),
    "top_k_accuracy": ({"k": 2}, 1.0),
    "log_loss": ({}, 0.0),
    "mse": ({}, 0.0),
    "rmse": ({}, 0.0),
    "mae": ({}, 0.0),
    "r2": ({}, 1.0),
    "label_accuracy": ({}, 1.0),
    "subset_accuracy": ({}, 1.0),
}

# --- callbacks: each runs in a short training (4 epochs, a run directory) where its effect shows -------

TINY = """
name: cb
seed: 0
plugins: [nnctl_test_callback]
data: {source: {type: circle, samples: 60}, normalize: standard}
model: {layers: [{type: dense, units: 4, activation: tanh}, {type: dense, units: 2}]}
loss: cross_entropy
optimizer: {type: adam, lr: 0.05}
train: {epochs: 4, batch_size: 20}
metrics: [accuracy]
output: {checkpoint_min_seconds: 0}
"""


def _lrs(out):
    return [row["lr"] for row in out["result"].history]


CALLBACK_CASES = {  # name -> (overrides, check of {"result", "run", "epochs_seen"})
    "best_weights": ([], lambda out: out["result"].best["epoch"] in (1, 2, 3, 4) and out["run"].has_checkpoint("best")),
    "checkpoint": ([], lambda out: Checkpoint.load(out["run"].checkpoint_path("last")).epoch == 4),
    "metrics_log": ([], lambda out: [int(r["epoch"]) for r in out["run"].read_metrics()] == [1, 2, 3, 4]),
    "summary": ([], lambda out: out["run"].read_summary()["status"] == "completed"),
    "progress": ([], lambda out: out["epochs_seen"] == [1, 2, 3, 4]),
    "early_stopping": (
        ["train.early_stopping={patience: 0, min_delta: 100}"],
        lambda out: out["result"].stop_reason == "early_stopping" and out["result"].epochs == 2,
    ),
    "reduce_on_plateau": (
        ["schedule={type: reduce_on_plateau, patience: 0, factor: 0.5, min_delta: 100}"],
        lambda out: _lrs(out) == pytest.approx([0.05, 0.05, 0.025, 0.0125]),
    ),
    "threads": (["train.threads=1"], lambda out: out["run"].read_summary()["threads"]["threads"] == 1),
    "time_limit": (
        ["train.max_seconds=1.0e-6"],
        lambda out: out["result"].stop_reason == "time_limit" and out["result"].epochs == 1,
    ),
    # the logging callbacks (extras tensorboard and mlflow, in dev); tests/train/test_logging.py reads their logs back
    "tensorboard": (
        ["callbacks=[{type: tensorboard}]"],
        lambda out: any((out["run"].path / "tensorboard").glob("events.out.tfevents.*")),
    ),
    "mlflow": (
        ["callbacks=[{type: mlflow, artifacts: false}]"],
        lambda out: any((out["run"].path.parent.parent / "mlruns").glob("*/*/metrics/train_loss")),
    ),
    "stop_at": (  # tests/plugins/nnctl_test_callback.py, listed in the config's callbacks:
        ["callbacks=[{type: stop_at, column: train_loss, target: 100.0, patience: 2}]"],
        lambda out: out["result"].stop_reason == "target_reached" and out["result"].epochs == 2,
    ),
}  # fmt: skip

CASES = {
    "layers": LAYER_CASES,
    "losses": LOSS_CASES,
    "regularizers": REGULARIZER_CASES,
    "augmentations": {spec["type"]: spec for spec in AUGMENT_CASES},
    "optimizers": OPTIMIZER_CASES,
    "schedules": SCHEDULE_CASES,
    "datasets": SOURCE_CASES,
    "metrics": METRIC_CASES,
    "callbacks": CALLBACK_CASES,
}


def construction_params(kind: str, name: str) -> dict:
    """Valid constructor values for one registered component, from its first case."""
    case = CASES[kind][name]
    if kind == "layers":
        return {k: v for k, v in case[0][0].items() if not k.startswith("_")}
    if kind == "losses":
        return case[0]
    if kind == "regularizers":
        return case
    if kind == "augmentations":
        return {k: v for k, v in case.items() if k != "type"}
    if kind == "datasets":
        return case[0](Path("unused"))  # constructing a source reads no file
    if kind == "callbacks":
        return {"target": 1.0} if name == "stop_at" else {}
    return case[0]


def registered():
    """(kind, name) of every registered component built from config values (not the loop's own callbacks)."""
    for kind, reg in registry.ALL.items():
        for name in reg.names():
            if not (kind == "callbacks" and name in LOOP_OWNED):
                yield pytest.param(kind, name, id=f"{kind}-{name}")


def test_every_kind_has_a_table():
    assert set(CASES) == set(registry.ALL)


@pytest.mark.parametrize("kind", sorted(registry.ALL))
def test_every_registered_component_has_a_case(kind):
    missing = sorted(set(registry.ALL[kind].names()) - set(CASES[kind]))
    assert not missing, f"registered {kind} without a test case: {missing}"
    assert set(CASES[kind]) <= set(registry.ALL[kind].names()), "a case for a name that is not registered"


def test_loop_owned_callbacks_are_exactly_the_unlistable_ones():
    unlistable = {e.name for e in registry.CALLBACKS.entries() if not e.component.listable}
    assert unlistable == LOOP_OWNED


@pytest.mark.parametrize("kind, name", list(registered()))
def test_parameters_are_declared_once(kind, name):
    """(a) No __init__ of its own: the Params model is the one place that names the parameters."""
    cls = registry.ALL[kind].get(name).component
    assert issubclass(cls, Component)
    own = [k.__qualname__ for k in cls.__mro__ if "__init__" in vars(k) and k not in (Component, Layer, object)]
    assert not own, f"{name}: {own} define __init__; declare parameters in Params, derive state in setup()"


# Attributes that setup() replaces by the form the component works with (tuples, child components).
SET_UP = {
    "dense": {"activation"},
    "time_distributed_dense": {"activation"},
    "conv1d": {"stride", "dilation", "activation"},
    "conv2d": {"stride", "dilation", "activation"},
    "max_pool1d": {"stride"},
    "max_pool2d": {"stride"},
    "avg_pool1d": {"stride"},
    "avg_pool2d": {"stride"},
    "residual": {"layers"},
}


@pytest.mark.parametrize("kind, name", list(registered()))
def test_every_params_field_reaches_the_instance(kind, name):
    """(b) The registry's validated values arrive as `settings` and as attributes."""
    entry = registry.ALL[kind].get(name)
    values = construction_params(kind, name)
    obj = registry.ALL[kind].create({"type": name, **values})
    assert type(obj.settings) is entry.params
    assert obj.settings == entry.params(**values)
    for field in entry.params.model_fields:
        assert hasattr(obj, field), f"{name}.{field} is not an attribute"
        if field not in SET_UP.get(name, ()):
            assert getattr(obj, field) == getattr(obj.settings, field), f"{name}.{field} was changed after validation"


# --- (c) the cases of the kinds not covered elsewhere ------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_optimizer_step_on_a_quadratic(name):
    params, expected = OPTIMIZER_CASES[name]
    p = P0.copy()
    g = CURVATURE * p
    opt = registry.OPTIMIZERS.create({"type": name, **params}).bind(p, g)
    opt.step()
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    assert opt.t == 1
    assert 0.5 * (CURVATURE * p * p).sum() < 0.5 * (CURVATURE * P0 * P0).sum()  # downhill


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedule_rate_at_a_chosen_time(name):
    params, t, epoch_values, expected = SCHEDULE_CASES[name]
    schedule = registry.SCHEDULES.create({"type": name, **params})
    for value in epoch_values:
        schedule.on_epoch_end(value)
    assert schedule.lr(0.1, t, 10) == pytest.approx(expected)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    _files(folder)
    return folder


@pytest.mark.parametrize("name", sorted(SOURCE_CASES))
def test_data_source_loads(name, data_files):
    params, task, sample_shape = SOURCE_CASES[name]
    if name == "image_folder":
        pytest.importorskip("PIL")
    data = registry.DATA_SOURCES.create({"type": name, **params(data_files)}).load(np.random.default_rng(0))
    assert data.task == task and data.x.shape[1:] == sample_shape
    assert len(data.y) == len(data.x) > 0


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_metric_perfect_predictions_score_best(name):
    params, best = METRIC_CASES[name]
    metric = registry.METRICS.create({"type": name, **params})
    if metric.task == "classification":
        perfect = metric(Y_CLASSES, Y_CLASSES, ONE_HOT)
        # every other class more probable than the true one: wrong for top-2 too
        worse = metric(Y_CLASSES, (Y_CLASSES + 1) % 3, (1 - ONE_HOT) / 2)
    elif metric.task == "multilabel":
        perfect = metric(Y_LABELS, Y_LABELS)
        worse = metric(Y_LABELS, 1 - Y_LABELS)
    else:
        perfect = metric(Y_VALUES, Y_VALUES)
        worse = metric(Y_VALUES, Y_VALUES + 1.0)
    assert perfect == pytest.approx(best, abs=1e-12)
    assert (worse < perfect) if metric.higher_is_better else (worse > perfect)


class _Seen:
    """A reporter (what the `progress` callback hands the loop's progress to) that records epochs."""

    def __init__(self):
        self.epochs = []

    def on_start(self, *args):
        pass

    def on_epoch(self, row):
        self.epochs.append(row["epoch"])

    def on_end(self, result):
        pass


@pytest.mark.parametrize("name", sorted(CALLBACK_CASES))
def test_callback_runs_in_a_short_training(name, tmp_path):
    overrides, check = CALLBACK_CASES[name]
    config = tmp_path / "cb.yaml"
    config.write_text(TINY)
    experiment = build_experiment(load_config(config, overrides))
    run = RunDir(create_run_dir(tmp_path, "cb"))
    seen = _Seen()
    result = train(experiment, run, seen)
    assert check({"result": result, "run": run, "epochs_seen": seen.epochs}), result
