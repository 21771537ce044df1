import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(autouse=True)
def _no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def write_yaml(tmp_path):
    """Write a YAML text into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


MINIMAL = """\
name: t
seed: 0
data:
  source: {type: xor, samples: 100}
model:
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 2}
loss: cross_entropy
optimizer: {type: adam, lr: 0.01}
train: {epochs: 2, batch_size: 10}
"""


@pytest.fixture
def minimal_text():
    return MINIMAL


os.environ.setdefault("COLUMNS", "200")  # rich tables wide enough that messages are not wrapped in tests


class StopAfter:
    """A StopFlag stand-in that asks the training loop to stop after `reads` reads of its flag (the
    loop reads it once a step and once after each epoch's callbacks): an interrupt at a chosen step."""

    def __init__(self, reads: int):
        self.left = reads

    @property
    def signum(self):
        self.left -= 1
        return signal.SIGINT if self.left < 0 else None


def pytest_terminal_summary(terminalreporter):
    """The reliability figures (tests/reliability): cases tried per category and what went wrong."""
    import sys

    harness = sys.modules.get("tests.reliability.harness")
    if harness is None or not harness.TALLY:
        return
    TALLY = harness.TALLY
    columns = ("cases", "tracebacks", "wrong exit codes", "leftover run dirs", "resume mismatches")
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(f"{'category':<38}" + "".join(f"{c:>19}" for c in columns))
    for category in sorted(TALLY):
        row = TALLY[category]
        extra = "".join(f"  {k}: {v}" for k, v in row.items() if k not in columns)
        terminalreporter.write_line(f"{category:<38}" + "".join(f"{row.get(c, 0):>19}" for c in columns) + extra)
