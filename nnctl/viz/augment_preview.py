"""`nnctl augment`: a picture of training samples next to augmented copies, as the network sees them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnctl.errors import ConfigError, NnctlError


def augmented_samples(config, samples: int, variants: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the first `samples` normalized training samples, `variants` augmented copies of them)."""
    from nnctl.build import build_experiment
    from nnctl.rng import STREAM_AUGMENT, rng_for

    experiment = build_experiment(config)
    if not experiment.augmentations:
        raise ConfigError(
            "the config has no data.augment list, so there is nothing to preview. Add augmentations "
            "(`nnctl list augmentations` shows them), e.g. augment: [{type: rotate, degrees: 10}]."
        )
    x = experiment.splits["train"].x[:samples]
    for augmentation in experiment.augmentations:
        augmentation.check(x.shape[1:])
    rng = rng_for(config.seed, STREAM_AUGMENT, 1)  # the stream of the first training epoch
    copies = []
    for _ in range(variants):
        xb = x.copy()
        for augmentation in experiment.augmentations:
            xb = augmentation(xb, rng)
        copies.append(xb)
    return x, copies


def write_preview(
    config_path: str | Path, overrides: list[str], output: Path, samples: int = 8, variants: int = 5
) -> Path:
    """Draw a grid (one row per sample: original, then augmented copies) into `output` (PNG, PDF, SVG ...)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NnctlError(
            "`nnctl augment` draws with matplotlib, which is not installed. Install the optional extra: "
            "pip install 'nnctl[plot]' (or pip install matplotlib)."
        ) from None
    from nnctl.config import load_config

    config = load_config(config_path, overrides)
    x, copies = augmented_samples(config, samples, variants)
    low, high = float(x.min()), float(x.max())
    rows, cols = len(x), 1 + len(copies)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for i in range(rows):
        for j, batch in enumerate([x, *copies]):
            ax = axes[i][j]
            _draw(ax, batch[i], low, high)
            if i == 0:
                ax.set_title("original" if j == 0 else f"augmented {j}", fontsize=8)
    fig.suptitle(f"{config.name}: training samples and augmented copies (seed {config.seed})", fontsize=9)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def _draw(ax, sample: np.ndarray, low: float, high: float) -> None:
    if sample.ndim == 3:  # (C, H, W)
        if sample.shape[0] == 3:
            img = np.clip((sample.transpose(1, 2, 0) - low) / max(high - low, 1e-12), 0, 1)
            ax.imshow(img, interpolation="nearest")
        else:
            ax.imshow(sample[0], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    else:  # (C, L) signals or flat (F,) features: one line per channel
        for channel in sample.reshape(-1, sample.shape[-1]):
            ax.plot(channel, linewidth=0.8)
        ax.set_ylim(low, high)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
