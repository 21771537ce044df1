import pytest

BASE = """\
name: tiny
seed: 0
data:
  source: {type: xor, samples: 120}
  split: {train: 0.6, val: 0.2, test: 0.2}
model:
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.02}
train: {epochs: 4, batch_size: 20}
output: {checkpoint_every: 100}
metrics: [accuracy]
"""


@pytest.fixture
def sweep_file(tmp_path):
    """Write base.yaml and a sweep file (its body given as YAML text) into tmp_path."""
    (tmp_path / "base.yaml").write_text(BASE)

    def write(body: str, name: str = "sweep.yaml"):
        path = tmp_path / name
        path.write_text("name: s\nbase: base.yaml\n" + body)
        return path

    return write
