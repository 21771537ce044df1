"""Augmentations: shape and dtype kept, deterministic from the Generator, identities, never in place, training only."""

import numpy as np
import pytest

from nnctl.errors import DataError
from nnctl.registry import AUGMENTATIONS

IMAGES = np.random.default_rng(0).random((6, 2, 8, 7)).astype(np.float32)
SIGNALS = np.random.default_rng(1).random((6, 3, 20)).astype(np.float32)

CASES = [
    {"type": "random_crop", "padding": 2},
    {"type": "flip", "direction": "horizontal"},
    {"type": "flip", "direction": "vertical"},
    {"type": "scale", "factor": [0.8, 1.2]},
    {"type": "rotate", "degrees": 20},
    {"type": "translate", "fraction": 0.2},
    {"type": "noise", "std": 0.2},
    {"type": "noise", "kind": "salt_and_pepper", "amount": 0.2},
]
ONE_D = {"random_crop", "flip-horizontal", "scale", "translate", "noise"}


def case_id(spec):
    return "-".join(str(v) for v in spec.values() if v in (spec["type"], spec.get("direction"), spec.get("kind")))


def make(spec, **extra):
    return AUGMENTATIONS.create({**spec, **extra})


def inputs_for(spec):
    yield IMAGES
    if spec["type"] in ONE_D or f"{spec['type']}-{spec.get('direction')}" in ONE_D:
        yield SIGNALS


@pytest.mark.parametrize("spec", CASES, ids=case_id)
def test_shape_dtype_kept_input_untouched_and_seeded(spec):
    for x in inputs_for(spec):
        for dtype in (np.float32, np.float64):
            data = x.astype(dtype)
            before = data.copy()
            out = make(spec, p=1.0)(data, np.random.default_rng(7))
            assert out.shape == data.shape and out.dtype == dtype
            np.testing.assert_array_equal(data, before)  # never modified in place
            assert not np.array_equal(out, data)  # p = 1 does something
            again = make(spec, p=1.0)(data, np.random.default_rng(7))
            np.testing.assert_array_equal(out, again)  # same seed, same batch


@pytest.mark.parametrize("spec", CASES, ids=case_id)
def test_p_zero_is_the_identity(spec):
    for x in inputs_for(spec):
        np.testing.assert_array_equal(make(spec, p=0.0)(x, np.random.default_rng(3)), x)


def test_p_picks_samples_independently():
    out = make({"type": "flip"}, p=0.5)(IMAGES, np.random.default_rng(11))
    flipped = [not np.array_equal(o, x) for o, x in zip(out, IMAGES, strict=True)]
    assert 0 < sum(flipped) < len(IMAGES)
    for o, x, f in zip(out, IMAGES, flipped, strict=True):
        np.testing.assert_array_equal(o, x[..., ::-1] if f else x)


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_flip_twice_is_the_identity(direction):
    flip = make({"type": "flip", "direction": direction}, p=1.0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(flip(flip(IMAGES, rng), rng), IMAGES)
    if direction == "horizontal":
        np.testing.assert_array_equal(flip(flip(SIGNALS, rng), rng), SIGNALS)


def test_rotate_by_zero_and_scale_by_one_are_the_identity():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(make({"type": "rotate", "degrees": 0}, p=1.0)(IMAGES, rng), IMAGES)
    np.testing.assert_array_equal(make({"type": "scale", "factor": 1.0}, p=1.0)(IMAGES, rng), IMAGES)
    np.testing.assert_array_equal(make({"type": "scale", "factor": [1, 1]}, p=1.0)(SIGNALS, rng), SIGNALS)
    np.testing.assert_array_equal(make({"type": "translate", "fraction": 0}, p=1.0)(SIGNALS, rng), SIGNALS)


def test_geometry_matches_exact_moves():
    rng = np.random.default_rng(0)
    quarter = make({"type": "rotate", "degrees": [90, 90]}, p=1.0)(IMAGES[:, :, :7, :7], rng)
    np.testing.assert_allclose(quarter, np.rot90(IMAGES[:, :, :7, :7], 1, axes=(2, 3)), atol=1e-6)
    shifted = make({"type": "translate", "fraction": [0.25, 0.25]}, p=1.0)(IMAGES[:, :, :8, :4], rng)  # 2 rows, 1 col
    np.testing.assert_allclose(shifted[:, :, 2:, 1:], IMAGES[:, :, :6, :3], atol=1e-6)
    assert np.all(shifted[:, :, :2] == 0) and np.all(shifted[:, :, :, :1] == 0)  # fill where it moved away
    crop = make({"type": "random_crop", "padding": 1}, p=1.0)(SIGNALS, rng)
    for o, x in zip(crop, SIGNALS, strict=True):  # every sample is the signal moved by -1, 0 or 1
        assert any(np.array_equal(o, np.pad(x, ((0, 0), (1, 1)))[:, s : s + 20]) for s in range(3))


def test_salt_and_pepper_uses_the_given_values():
    out = make({"type": "noise", "kind": "salt_and_pepper", "amount": 0.5, "low": -1, "high": 2}, p=1.0)(
        IMAGES, np.random.default_rng(0)
    )
    changed = out != IMAGES
    assert set(np.unique(out[changed])) <= {-1.0, 2.0} and 0.3 < changed.mean() < 0.7


def test_image_only_augmentations_refuse_signals_and_flat_data():
    with pytest.raises(DataError, match="rotate.*images \\(C, H, W\\).*shape \\(3, 20\\)"):
        make({"type": "rotate"})(SIGNALS, np.random.default_rng(0))
    with pytest.raises(DataError, match="vertical needs images"):
        make({"type": "flip", "direction": "vertical"})(SIGNALS, np.random.default_rng(0))
    with pytest.raises(DataError, match="digits_images"):
        make({"type": "translate"})(np.zeros((4, 64)), np.random.default_rng(0))
    make({"type": "noise"}, p=1.0)(np.zeros((4, 64)), np.random.default_rng(0))  # noise works on any shape


@pytest.mark.parametrize(
    "bad", [{"type": "scale", "factor": [1.2, 0.8]}, {"type": "scale", "factor": 0}, {"type": "rotate", "p": 1.5}]
)
def test_bad_parameters_are_rejected(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        AUGMENTATIONS.get(bad["type"]).spec.model_validate(bad)


def test_training_batches_only_eval_and_predict_never_augment(tmp_path):
    """A config whose augmentation wipes every sample (salt and pepper with amount 1): training sees
    only constants, while evaluation and prediction see the real data."""
    from nnctl.build import build_experiment
    from nnctl.config import config_from_dict

    raw = {
        "name": "t",
        "seed": 0,
        "data": {
            "source": "digits_images",
            "train_fraction": 0.1,
            "normalize": {"method": "minmax", "per": "all"},
            "augment": [{"type": "noise", "kind": "salt_and_pepper", "amount": 1.0, "low": 0, "high": 0, "p": 1}],
        },
        "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]},
        "loss": "cross_entropy",
        "train": {"epochs": 1, "batch_size": 64},
    }
    experiment = build_experiment(config_from_dict(raw))
    seen = []
    original = experiment.network.forward

    def spy(x, *, training):
        seen.append((training, float(np.abs(x).sum())))
        return original(x, training=training)

    experiment.network.forward = spy
    stored = experiment.splits["train"].x.copy()
    from nnctl.train.trainer import train

    train(experiment)
    experiment.network.predict(experiment.splits["test"].x)
    assert all(total == 0 for training, total in seen if training)  # every training batch augmented
    assert all(total > 0 for training, total in seen if not training)  # validation / prediction untouched
    assert any(not training for training, _ in seen)
    np.testing.assert_array_equal(experiment.splits["train"].x, stored)  # the stored data set is untouched
