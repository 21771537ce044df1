"""Checkpoints: one .npz with parameters, optimizer state, normalization statistics and JSON metadata.

Loaded with allow_pickle=False always: a checkpoint from a stranger cannot run code. Written with
fixed zip timestamps, so the same weights give byte-identical files.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.errors import NnctlError
from nnctl.runs.rundir import atomic_write

FORMAT_VERSION = 1


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        entries = dict(arrays)
        entries["meta"] = np.array(json.dumps({"format": FORMAT_VERSION, **meta}, sort_keys=True))
        for key, value in entries.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata); a missing or damaged file is a user error naming the file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise NnctlError(f"checkpoint not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise NnctlError(f"checkpoint {path} is damaged or not an nnctl checkpoint: {exc}") from None
    if "meta" not in arrays:
        raise NnctlError(f"checkpoint {path} has no metadata; it was not written by nnctl.")
    meta = json.loads(str(arrays.pop("meta")))
    return arrays, meta


def group(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays stored under 'prefix/...', with the prefix removed."""
    return {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
