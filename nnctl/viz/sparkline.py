"""A one-line text picture of a curve, for the end-of-training summary: ▇▆▄▃▂▂▁▁."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII = "_.-:=+*#"  # the same eight levels for terminals or logs that cannot show block characters


def sparkline(values: Sequence[float], width: int = 40, ascii_only: bool = False, log: bool = False) -> str:
    """Values scaled between their min and max onto eight levels, averaged down to at most `width` characters.

    `log` scales log(value) instead (for losses, whose late progress is small in absolute terms; needs
    values > 0). Non-finite values (a diverged epoch) are drawn as '!'."""
    levels = ASCII if ascii_only else BLOCKS
    points = [float(v) for v in values]
    if log and all(v > 0 for v in points if math.isfinite(v)):
        points = [math.log(v) if math.isfinite(v) else v for v in points]
    if len(points) > width:  # average consecutive buckets, so a noisy curve still reads as its trend
        buckets = [points[i * len(points) // width : (i + 1) * len(points) // width] for i in range(width)]
        points = [math.fsum(b) / len(b) if all(map(math.isfinite, b)) else math.nan for b in buckets]
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return "!" * len(points)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for v in points:
        if not math.isfinite(v):
            out.append("!")
        elif span == 0:
            out.append(levels[0])
        else:
            out.append(levels[min(len(levels) - 1, int((v - low) / span * len(levels)))])
    return "".join(out)


def loss_sparkline(history: list[dict[str, Any]], ascii_only: bool = False) -> str | None:
    """'val_loss ▇▅▃▂▁▁  0.693 -> 0.015 (lowest 0.014, epoch 87)'; train_loss when there is no validation split."""
    key = "val_loss" if any("val_loss" in row for row in history) else "train_loss"
    values = [row[key] for row in history if key in row]
    if len(values) < 2:
        return None
    low = min(range(len(values)), key=lambda i: values[i] if values[i] == values[i] else float("inf"))
    return (
        f"{key} {sparkline(values, 40, ascii_only, log=True)}  {values[0]:.4g} -> {values[-1]:.4g} "
        f"(lowest {values[low]:.4g}, epoch {history[low]['epoch']})"
    )
