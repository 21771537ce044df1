"""Metrics: hand-computed values for every registered metric, streaming equals whole arrays, config specs."""

import math

import numpy as np
import pytest

from nnctl import registry
from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.errors import ConfigError
from nnctl.metrics import (
    ConfusionMatrix,
    build_metrics,
    higher_is_better,
    per_class,
)
from nnctl.train.report import class_report, confusion_csv


def metric(name, **params):
    return registry.METRICS.create({"type": name, **params})


# Three classes. Confusion matrix (rows true, columns predicted):
#   [[1, 1, 0],      precision = [1/2, 2/3, 2/2]   recall = [1/2, 2/2, 2/3]
#    [0, 2, 0],      f1 = [1/2, 4/5, 4/5]          accuracy = 5/7
#    [1, 0, 2]]
Y = np.array([0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 1, 1, 1, 2, 0, 2])


def test_confusion_matrix_and_per_class_values():
    cm = ConfusionMatrix(3)
    cm.update(Y, PRED)
    assert cm.result().tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    scores = per_class(cm.result())
    np.testing.assert_allclose(scores["precision"], [1 / 2, 2 / 3, 1])
    np.testing.assert_allclose(scores["recall"], [1 / 2, 1, 2 / 3])
    np.testing.assert_allclose(scores["f1"], [1 / 2, 4 / 5, 4 / 5])
    assert scores["support"].tolist() == [2, 2, 3]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("accuracy", 5 / 7),
        ("precision", (1 / 2 + 2 / 3 + 1) / 3),
        ("recall", (1 / 2 + 1 + 2 / 3) / 3),
        ("f1", (1 / 2 + 4 / 5 + 4 / 5) / 3),
    ],
)
def test_classification_metrics_by_hand(name, expected):
    assert metric(name)(Y, PRED) == pytest.approx(expected, rel=1e-12)
    # A fourth class that neither the labels nor the predictions contain does not dilute the macro average.
    assert metric(name).prepare("classification", 4)(Y, PRED) == pytest.approx(expected, rel=1e-12)


def test_macro_average_counts_a_predicted_but_absent_class_as_zero():
    # Class 1 is predicted once but never true: precision 0, recall 0 (no support), f1 0 (scikit-learn's values).
    y, pred = np.array([0, 0]), np.array([0, 1])
    assert metric("precision")(y, pred) == pytest.approx((1 + 0) / 2)
    assert metric("recall")(y, pred) == pytest.approx((1 / 2 + 0) / 2)
    assert metric("f1")(y, pred) == pytest.approx((2 / 3 + 0) / 2)


PROBA = np.array(
    [
        [0.5, 0.3, 0.2],  # true 1: one class above it -> top-2 hit, top-1 miss
        [0.1, 0.2, 0.7],  # true 0: two above -> miss for k = 1, 2
        [0.2, 0.5, 0.3],  # true 1: top -> hit
        [0.4, 0.4, 0.2],  # true 1: tied for the top -> hit (ties count for the true class)
    ]
)
Y_PROBA = np.array([1, 0, 1, 1])


@pytest.mark.parametrize("k, expected", [(1, 2 / 4), (2, 3 / 4)])
def test_top_k_accuracy_by_hand(k, expected):
    m = metric("top_k_accuracy", k=k)
    assert m.column == f"top{k}_accuracy"
    assert m(Y_PROBA, PROBA.argmax(axis=1), PROBA) == pytest.approx(expected)


def test_log_loss_by_hand():
    expected = -(math.log(0.3) + math.log(0.1) + math.log(0.5) + math.log(0.4)) / 4
    assert metric("log_loss")(Y_PROBA, PROBA.argmax(axis=1), PROBA) == pytest.approx(expected, rel=1e-12)
    # A zero probability for the true class is clipped at 1e-15 instead of giving inf.
    certain_wrong = np.array([[1.0, 0.0]])
    assert metric("log_loss")(np.array([1]), np.array([0]), certain_wrong) == pytest.approx(-math.log(1e-15))


# Two targets: residuals (0.5, 0, -1, 1) and (0, 1, 0, 0).
Y_REG = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 2.0], [4.0, 2.0]])
PRED_REG = np.array([[1.5, 0.0], [2.0, 1.0], [2.0, 2.0], [5.0, 2.0]])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mse", (0.25 + 0 + 1 + 1 + 1) / 8),
        ("rmse", math.sqrt((0.25 + 0 + 1 + 1 + 1) / 8)),
        ("mae", (0.5 + 0 + 1 + 1 + 1) / 8),
        # per target 1 - SS_res / SS_tot: 1 - 2.25 / 5 and 1 - 1 / 4, averaged
        ("r2", ((1 - 2.25 / 5) + (1 - 1 / 4)) / 2),
    ],
)
def test_regression_metrics_by_hand(name, expected):
    assert metric(name)(Y_REG, PRED_REG) == pytest.approx(expected, rel=1e-12)


def test_r2_of_a_constant_target_is_zero_and_of_one_sample_nan():
    y = np.array([[1.0], [1.0], [1.0]])
    assert metric("r2")(y, y + 1) == 0.0
    assert math.isnan(metric("r2")(y[:1], y[:1]))


def test_every_registered_metric_has_a_hand_computed_case():
    covered = {"accuracy", "precision", "recall", "f1", "top_k_accuracy", "log_loss", "mse", "rmse", "mae", "r2"}
    covered |= {"label_accuracy", "subset_accuracy"}  # test_multilabel_metrics_by_hand
    assert set(registry.METRICS.names()) <= covered, "add a hand-computed test for the new metric"


def _stream(m, arrays, cuts):
    m.reset()
    start = 0
    for stop in [*cuts, len(arrays[0])]:
        m.update(*(a[start:stop] for a in arrays))
        start = stop
    return m.result()


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1", "top_k_accuracy", "log_loss"])
def test_classification_streaming_equals_whole_arrays(name):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 203)
    logits = rng.standard_normal((203, 5)) + 2 * np.eye(5)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    m = metric(name, **({"k": 2} if name == "top_k_accuracy" else {})).prepare("classification", 5)
    whole = m(y, pred, proba)
    assert _stream(m, (y, pred, proba), [1, 50, 51, 130]) == pytest.approx(whole, rel=1e-12)
    if name == "accuracy":
        assert whole == pytest.approx(np.mean(pred == y))
    if name == "log_loss":
        assert whole == pytest.approx(-np.mean(np.log(proba[np.arange(203), y])))


@pytest.mark.parametrize("name", ["mse", "rmse", "mae", "r2"])
def test_regression_streaming_equals_whole_arrays(name):
    rng = np.random.default_rng(1)
    y = 1e6 + rng.standard_normal((157, 3))  # a large offset: a naive sum(y^2) - n mean^2 would cancel
    pred = y + 0.3 * rng.standard_normal((157, 3))
    m = metric(name)
    whole = m(y, pred)
    assert _stream(m, (y, pred), [2, 3, 90]) == pytest.approx(whole, rel=1e-9)
    if name == "r2":  # the two-pass textbook formula
        ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        assert whole == pytest.approx(np.mean(1 - ((y - pred) ** 2).sum(axis=0) / ss_tot), rel=1e-9)


def test_direction_of_columns():
    assert higher_is_better("val_accuracy") is True
    assert higher_is_better("val_top3_accuracy") is True
    assert higher_is_better("r2") is True
    assert higher_is_better("val_loss") is False
    assert higher_is_better("val_log_loss") is False
    assert higher_is_better("test_rmse") is False
    assert higher_is_better("something_else") is None


def test_build_metrics_checks_the_task_and_k():
    metrics = build_metrics(["accuracy", {"type": "top_k_accuracy", "k": 2}], "classification", 3)
    assert list(metrics) == ["accuracy", "top2_accuracy"]
    assert list(build_metrics([], "regression", None)) == ["mse", "mae", "r2"]
    with pytest.raises(ConfigError, match="'r2' is a regression metric"):
        build_metrics(["r2"], "classification", 3)
    with pytest.raises(ConfigError, match="k=3 is always 1 for 3 classes"):
        build_metrics([{"type": "top_k_accuracy", "k": 3}], "classification", 3)


def test_class_report_and_confusion_csv():
    report = class_report(np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]]), ["a", "b", "c"])
    assert report["per_class"]["b"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert report["macro_avg"]["f1"] == pytest.approx(0.7)
    text = confusion_csv(report["classes"], report["confusion_matrix"])
    assert text.splitlines() == ["true\\predicted,a,b,c", "a,1,1,0", "b,0,2,0", "c,1,0,2"]


# --- config and Experiment.evaluate ------------------------------------------------------------


def test_metric_specs_in_config(write_yaml, minimal_text):
    text = minimal_text + "metrics: [accuracy, {type: top_k_accuracy, k: 1}, log_loss, f1]\n"
    config = load_config(write_yaml(text))
    experiment = build_experiment(config)
    assert list(experiment.metrics) == ["accuracy", "top1_accuracy", "log_loss", "f1"]
    scores = experiment.evaluate("val")
    assert scores["top1_accuracy"] == pytest.approx(scores["accuracy"])
    assert scores["log_loss"] == pytest.approx(scores["loss"], rel=1e-5)  # cross-entropy of the same outputs


@pytest.mark.parametrize(
    "metrics, fragment",
    [
        ("[acuracy]", "unknown metric 'acuracy'. Did you mean 'accuracy'?"),
        ("[{type: top_k_accuracy, k: 0}]", "metrics[0].k"),
        ("[{type: top_k_accuracy, kk: 2}]", "unknown key 'kk'. Did you mean 'k'?"),
        ("[accuracy, accuracy]", "'accuracy' is listed twice"),
    ],
)
def test_metric_spec_errors(write_yaml, minimal_text, metrics, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(minimal_text + f"metrics: {metrics}\n"))
    assert fragment in str(info.value)


def test_metric_that_does_not_fit_the_task_fails_at_build(write_yaml, minimal_text):
    config = load_config(write_yaml(minimal_text + "metrics: [r2]\n"))
    with pytest.raises(ConfigError, match="'r2' is a regression metric"):
        build_experiment(config)


def test_evaluate_streams_over_batches(write_yaml, minimal_text):
    text = minimal_text + "metrics: [accuracy, precision, recall, f1, log_loss, {type: top_k_accuracy, k: 1}]\n"
    experiment = build_experiment(load_config(write_yaml(text)))
    whole = experiment.evaluate("train")
    batched = experiment.evaluate("train", batch_size=7)
    assert batched.keys() == whole.keys()
    for key in whole:
        assert batched[key] == pytest.approx(whole[key], rel=1e-5), key
    cm = ConfusionMatrix(2)
    experiment.evaluate("train", [cm], batch_size=7)
    assert cm.result().sum() == len(experiment.splits["train"])
    assert np.trace(cm.result()) / cm.result().sum() == pytest.approx(whole["accuracy"])


def test_multilabel_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    pred = np.array([[1, 0, 1], [0, 1, 1], [0, 1, 1]])
    assert metric("label_accuracy")(y, pred) == pytest.approx(6 / 9)
    assert metric("subset_accuracy")(y, pred) == pytest.approx(1 / 3)
