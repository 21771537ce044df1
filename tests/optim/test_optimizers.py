"""One step of each optimizer against hand-computed values."""

import numpy as np
import pytest

from nnctl.optim.optimizers import DENORMAL_FLOOR, FLUSH_EVERY
from nnctl.registry import OPTIMIZERS


def make(spec, p, g):
    params = np.array(p, dtype=np.float64)
    grads = np.array(g, dtype=np.float64)
    return OPTIMIZERS.create(spec).bind(params, grads), params, grads


def test_sgd_step():
    opt, p, _ = make({"type": "sgd", "lr": 0.1}, [1.0, -2.0], [0.5, -1.0])
    opt.step()
    np.testing.assert_allclose(p, [1.0 - 0.05, -2.0 + 0.1])


def test_sgd_momentum_two_steps():
    opt, p, g = make({"type": "sgd", "lr": 0.1, "momentum": 0.9}, [1.0], [1.0])
    opt.step()  # v = 1, p = 1 - 0.1
    g[:] = 2.0
    opt.step()  # v = 0.9 * 1 + 2 = 2.9, p = 0.9 - 0.29
    np.testing.assert_allclose(p, [0.61])


def test_sgd_nesterov_two_steps():
    opt, p, g = make({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}, [1.0], [1.0])
    opt.step()  # v = 1; p -= 0.1 * (1 + 0.9 * 1) = 0.19
    g[:] = 2.0
    opt.step()  # v = 2.9; p -= 0.1 * (2 + 0.9 * 2.9) = 0.461
    np.testing.assert_allclose(p, [1.0 - 0.19 - 0.461])


def test_the_rate_follows_every_step_and_is_never_changed_in_place():
    """lr reaches _update as a 0-d array of the parameters' dtype, made anew only when the rate changes."""
    params, grads = np.array([1.0], dtype=np.float32), np.array([1.0], dtype=np.float32)
    opt = OPTIMIZERS.create({"type": "sgd", "lr": 0.1}).bind(params, grads)
    seen = []
    update = opt._update
    opt._update = lambda p, g, lr: (seen.append(lr), update(p, g, lr))
    for lr in (None, 0.5, 0.5, None):  # None: the configured 0.1
        opt.step(lr)
    assert [float(r) for r in seen] == [np.float32(0.1), 0.5, 0.5, np.float32(0.1)]
    assert all(r.shape == () and r.dtype == np.float32 for r in seen)
    assert seen[1] is seen[2] and seen[0] is not seen[3]  # kept while unchanged; a kept one never changes
    expected = np.float32(1.0)
    for lr in (0.1, 0.5, 0.5, 0.1):
        expected -= np.float32(lr)
    np.testing.assert_array_equal(params, [expected])


def test_nesterov_needs_momentum():
    with pytest.raises(Exception, match="nesterov"):
        OPTIMIZERS.get("sgd").spec.model_validate({"type": "sgd", "nesterov": True})


def test_adam_two_steps():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt, p, g = make({"type": "adam", "lr": lr}, [1.0, 2.0], [0.5, -0.25])
    opt.step()
    # step 1: m = 0.1 g, v = 0.001 g^2; m_hat = g, v_hat = g^2 -> update = lr * g / (|g| + eps)
    np.testing.assert_allclose(p, [1.0 - lr * 0.5 / (0.5 + eps), 2.0 + lr * 0.25 / (0.25 + eps)])
    g1 = np.array([0.5, -0.25])
    g2 = np.array([1.0, 1.0])
    g[:] = g2
    before = p.copy()
    opt.step()
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    m_hat, v_hat = m / (1 - b1**2), v / (1 - b2**2)
    np.testing.assert_allclose(p, before - lr * m_hat / (np.sqrt(v_hat) + eps))


def test_adam_flushes_tiny_moments():
    opt, p, g = make({"type": "adam"}, np.ones(3), [1.0, 0.0, 0.0])
    opt.step()
    opt.state["v"][1] = DENORMAL_FLOOR / 10  # a value heading for the denormal range
    g[:] = 0
    for _ in range(FLUSH_EVERY - 1):
        opt.step()
    assert opt.state["v"][1] == 0 and opt.state["m"][1] == 0
    assert opt.state["v"][0] > 0  # real moments are kept


def test_state_round_trip():
    opt, p, g = make({"type": "adam"}, [1.0, 2.0], [0.3, 0.1])
    opt.step()
    state = {k: v.copy() for k, v in opt.state_dict().items()}
    other, _, _ = make({"type": "adam"}, [1.0, 2.0], [0.3, 0.1])
    other.load_state_dict(state)
    assert other.t == 1
    np.testing.assert_array_equal(other.state["m"], opt.state["m"])


def test_float32_stays_float32():
    params = np.ones(4, dtype=np.float32)
    grads = np.full(4, 0.1, dtype=np.float32)
    for spec in ({"type": "sgd", "momentum": 0.9}, {"type": "adam"}):
        opt = OPTIMIZERS.create(spec).bind(params, grads)
        opt.step()
        assert params.dtype == np.float32 and all(s.dtype == np.float32 for s in opt.state.values())


def test_sgd_weight_decay_skips_masked_entries():
    params = np.array([1.0, 2.0])
    grads = np.array([0.5, 0.5])
    opt = OPTIMIZERS.create({"type": "sgd", "lr": 0.1, "weight_decay": 0.2}).bind(params, grads, np.array([1.0, 0.0]))
    opt.step()
    # weight: g = 0.5 + 0.2 * 1 = 0.7 -> 1 - 0.07; bias (mask 0): g = 0.5 -> 2 - 0.05
    np.testing.assert_allclose(params, [0.93, 1.95])


def test_adamw_decouples_decay_from_the_adaptive_step():
    lr, wd = 0.01, 0.1
    params = np.array([2.0, 2.0])
    grads = np.array([0.5, 0.5])
    opt = OPTIMIZERS.create({"type": "adamw", "lr": lr, "weight_decay": wd}).bind(params, grads, np.array([1.0, 0.0]))
    opt.step()
    adam_step = lr * 0.5 / (0.5 + 1e-8)  # first Adam step is lr * sign(g)
    np.testing.assert_allclose(params, [2.0 * (1 - lr * wd) - adam_step, 2.0 - adam_step])


ELEMENTWISE = [
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"type": "adam", "lr": 0.01, "clip_value": 0.5},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"type": "rmsprop", "lr": 0.01},
    {"type": "adagrad", "lr": 0.1},
]


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_stepping_parts_is_bit_for_bit_stepping_the_whole(spec):
    """A data-parallel rank steps its part of the buffers (Optimizer.part); the parts together must be
    exactly the whole step, state and step count included, past a denormal flush."""
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=1001).astype(np.float32)
    mask = (rng.random(1001) < 0.8).astype(np.float32)
    whole = OPTIMIZERS.create(spec).bind(p0.copy(), np.zeros_like(p0), mask)
    parted = OPTIMIZERS.create(spec).bind(p0.copy(), np.zeros_like(p0), mask)
    assert parted.shardable()
    views = [parted.part(slice(0, 334)), parted.part(slice(334, 1001))]
    for _ in range(FLUSH_EVERY + 3):
        g = rng.normal(size=1001).astype(np.float32)
        whole.grads[...] = g
        parted.grads[...] = g
        whole.step(0.05)
        for view in views:
            view.step(0.05)
    parted.join(views[0])
    assert np.array_equal(whole.params, parted.params)
    for key, value in whole.state_dict().items():
        assert np.array_equal(value, parted.state_dict()[key]), key


def test_only_elementwise_steps_without_a_global_norm_are_shardable():
    assert OPTIMIZERS.create({"type": "adam"}).shardable()
    assert not OPTIMIZERS.create({"type": "adam", "clip_norm": 1.0}).shardable()  # needs the whole gradient
    assert not OPTIMIZERS.create({"type": "playground_sgd"}).shardable()  # not declared elementwise

    class Rewritten(OPTIMIZERS.get("adam").component):  # a plugin's new rule on top of Adam: not assumed elementwise
        def _update(self, p, g, lr):
            p -= lr * g / (np.linalg.norm(g) + 1e-8)

    assert not Rewritten().shardable()
