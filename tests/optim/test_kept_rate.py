"""Since lr reaches `_update` as a kept 0-d array (Optimizer._rate), a plugin's rule
that rescales it in place (`lr *= 0.5`, harmless on the NumPy scalar it was before) changed the kept
rate, so every later step at the same rate compounded the factor, silently."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.registry import OPTIMIZERS


def test_a_rule_cannot_change_the_kept_rate_in_place():
    class HalfStep(OPTIMIZERS.get("sgd").component):
        def _update(self, p, g, lr):
            lr *= 0.5
            p -= lr * g

    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    opt = HalfStep(lr=0.1).bind(p, g)
    try:
        for _ in range(4):
            opt.step(0.1)
    except ValueError:  # read-only: the mistake is loud
        return
    np.testing.assert_allclose(p, -0.2, rtol=1e-6)  # or harmless


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "playground_sgd"])
def test_the_built_in_rules_step_with_a_read_only_rate(name):
    p, g = np.ones(8, np.float32), np.full(8, 0.5, np.float32)
    opt = OPTIMIZERS.create({"type": name}).bind(p, g)
    for k in range(3):
        opt.step(0.01 * (k + 1))
    assert np.isfinite(p).all()
