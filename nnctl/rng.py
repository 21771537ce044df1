"""The random streams: every random draw in nnctl comes from one of these, as a pure function of the seed.

A stream is a seed sequence [seed, stream, *more] (more: the epoch, for per-epoch streams), so the
streams are independent of each other and a resumed run redraws exactly what it drew before.
"""

from __future__ import annotations

import numpy as np

STREAM_DATA = 0  # generated data sets (Playground points, synthetic signals and sequences)
STREAM_SPLIT = 1  # train/val/test split; [seed, 1, 1] the train_fraction subset; [seed, 1, 2, r] cv folds
STREAM_INIT = 2  # initial weights
STREAM_SHUFFLE = 3  # per epoch: the sample order
STREAM_AUGMENT = 4  # per epoch: augmentation draws
STREAM_LAYERS = 5  # per epoch: dropout masks and noise


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])
