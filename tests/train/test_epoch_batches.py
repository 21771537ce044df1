"""An epoch's batches: slices of the split permuted once (small splits on the CPU) or takes batch by batch,
the same rows and the same training bit for bit."""

import numpy as np
import pytest

from nnctl.build import build_experiment
from nnctl.config import load_config
from nnctl.train import trainer
from nnctl.train.trainer import epoch_order, train
from tests.conftest import CONFIGS

# Ragged last batches: iris's training rows in batches of 16 (classes), tiny's 500 in batches of 7 (mse).
CASES = {
    "classes": ("iris.yaml", ["train.epochs=3", "train.batch_size=16"]),
    "unshuffled": ("iris.yaml", ["train.epochs=3", "train.batch_size=16", "train.shuffle=false"]),
    "regression": ("tiny.yaml", ["train.epochs=3", "train.batch_size=7"]),
}


def trained(case, monkeypatch, permute_bytes):
    monkeypatch.setattr(trainer, "PERMUTE_BYTES", permute_bytes)
    name, overrides = CASES[case]
    experiment = build_experiment(load_config(CONFIGS / name, overrides))
    return experiment, train(experiment)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_permuted_epoch_trains_bit_for_bit_as_the_takes(case, monkeypatch):
    sliced, sliced_result = trained(case, monkeypatch, trainer.PERMUTE_BYTES)
    assert trainer._in_epoch_order(sliced, np.arange(len(sliced.splits["train"]))) is not None
    taken, taken_result = trained(case, monkeypatch, 0)
    assert sliced.network.host_params().tobytes() == taken.network.host_params().tobytes()
    assert [row["train_loss"] for row in sliced_result.history] == [row["train_loss"] for row in taken_result.history]


def test_a_batch_slice_holds_the_rows_the_take_gathers():
    experiment = build_experiment(load_config(CONFIGS / "iris.yaml", ["train.batch_size=16"]))
    split = experiment.splits["train"]
    order = epoch_order(0, 3, len(split), True)
    x, y = trainer._in_epoch_order(experiment, order)
    for start in range(0, len(split), 16):
        rows = order[start : start + 16]
        assert np.array_equal(x[start : start + 16], split.x.take(rows, axis=0))
        assert np.array_equal(y[start : start + 16], split.y.take(rows, axis=0))


def test_large_splits_and_augmented_ones_are_gathered_batch_by_batch(monkeypatch):
    experiment = build_experiment(load_config(CONFIGS / "iris.yaml"))
    split = experiment.splits["train"]
    order = epoch_order(0, 1, len(split), True)
    monkeypatch.setattr(trainer, "PERMUTE_BYTES", split.x.nbytes + split.y.nbytes - 1)
    assert trainer._in_epoch_order(experiment, order) is None  # a copy would double a large split's memory
    monkeypatch.setattr(trainer, "PERMUTE_BYTES", split.x.nbytes + split.y.nbytes)
    assert trainer._in_epoch_order(experiment, order) is not None
    experiment.augmentations = [lambda xb, rng: xb]
    assert trainer._in_epoch_order(experiment, order) is None  # each batch's copy is augmented
