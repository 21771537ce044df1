"""Optional: normalization layers against PyTorch's (forward and gradients), skipped without torch."""

import numpy as np
import pytest

from tests.nn.test_gradients import make_layer

torch = pytest.importorskip("torch")


def _torch_layer(name, shape):
    c = shape[0]
    if name == "batch_norm":
        return {1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm2d}[len(shape)](
            c, eps=1e-5, dtype=torch.float64
        )
    if name == "layer_norm":
        return torch.nn.GroupNorm(1, c, eps=1e-5, dtype=torch.float64)  # per-channel affine, like nnctl's
    if name == "instance_norm":
        return torch.nn.GroupNorm(c, c, eps=1e-5, dtype=torch.float64)
    return torch.nn.GroupNorm(2, c, eps=1e-5, dtype=torch.float64)


CASES = [
    ("batch_norm", {}, (4,)),
    ("batch_norm", {}, (4, 5)),
    ("batch_norm", {}, (4, 3, 3)),
    ("layer_norm", {}, (4,)),
    ("layer_norm", {}, (4, 3, 3)),
    ("instance_norm", {}, (4, 5)),
    ("instance_norm", {}, (4, 3, 3)),
    ("group_norm", {"groups": 2}, (4, 5)),
    ("group_norm", {"groups": 2}, (4, 3, 3)),
]


@pytest.mark.parametrize("name, params, shape", CASES, ids=[f"{c[0]}-{len(c[2])}d" for c in CASES])
def test_matches_torch(name, params, shape):
    rng = np.random.default_rng(0)
    layer = make_layer(name, params, shape)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape[0])
    layer.params["beta"][...] = rng.standard_normal(shape[0])
    ref = _torch_layer(name, shape)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["gamma"]))
        ref.bias.copy_(torch.from_numpy(layer.params["beta"]))
    ref.train()
    x = rng.standard_normal((6,) + shape) * 3 + 1
    dy = rng.standard_normal((6,) + shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["gamma"], ref.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["beta"], ref.bias.grad.numpy(), atol=1e-10)
    if name == "batch_norm":  # running statistics, with nnctl's momentum = 1 - torch's
        np.testing.assert_allclose(layer.buffers["running_mean"], ref.running_mean.numpy(), atol=1e-10)
        np.testing.assert_allclose(layer.buffers["running_var"], ref.running_var.numpy(), atol=1e-10)
