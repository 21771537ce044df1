"""The text sparkline and the end-of-train summary (no matplotlib needed)."""

import math

from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.viz.sparkline import ASCII, BLOCKS, loss_sparkline, sparkline
from tests.conftest import CONFIGS


def test_levels_follow_the_values():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BLOCKS
    assert sparkline([7, 0], ascii_only=True) == ASCII[-1] + ASCII[0]
    assert sparkline([3, 3, 3]) == BLOCKS[0] * 3


def test_long_curves_are_averaged_down_to_the_width():
    line = sparkline(list(range(1000, 0, -1)), width=20)
    assert len(line) == 20 and line[0] == BLOCKS[-1] and line[-1] == BLOCKS[0]


def test_non_finite_values_are_marked():
    assert sparkline([1.0, math.nan, 2.0]) == BLOCKS[0] + "!" + BLOCKS[-1]
    assert sparkline([math.inf]) == "!"


def test_log_scale_shows_late_progress():
    values = [1.0, 0.1, 0.01, 0.001]
    assert sparkline(values, log=True) == "█▆▃▁"
    assert sparkline(values)[1:] == BLOCKS[0] * 3  # linear: everything after the first epoch looks flat


def test_loss_sparkline_prefers_validation_loss():
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9}, {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4}]
    assert loss_sparkline(history).startswith("val_loss ")
    assert "(lowest 0.4, epoch 2)" in loss_sparkline(history)
    assert loss_sparkline([{k: v for k, v in row.items() if k != "val_loss"} for row in history]).startswith(
        "train_loss"
    )
    assert loss_sparkline(history[:1]) is None


def test_train_summary_has_a_sparkline_in_plain_text(tmp_path):
    result = CliRunner().invoke(
        app, ["train", str(CONFIGS / "xor.yaml"), "--runs-dir", str(tmp_path), "--set", "train.epochs=6"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    spark = next(line for line in lines if line.startswith("val_loss "))
    assert "\x1b[" not in result.output  # not a terminal: no colour codes, no live bar
    assert "lowest" in spark and len(spark.split()[1]) == 6
    assert any(line.startswith("best (epoch") for line in lines)
