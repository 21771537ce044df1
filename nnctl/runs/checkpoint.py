"""Checkpoints: one .npz with parameters, buffers, optimizer state, normalization statistics and JSON metadata.

The key schema (`param/`, `buffer/`, `optim/`, `norm/`, `target_norm/`, `meta`) lives here and nowhere
else. Loaded with allow_pickle=False always: a checkpoint from a stranger cannot run code. Written with
fixed zip timestamps, so the same weights give byte-identical files.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.errors import NnctlError
from nnctl.npzcheck import npz_problem
from nnctl.runs.files import atomic_write
from nnctl.runs.integrity import check_optimizer_state, check_values

FORMAT_VERSION = 1
# Array groups in the order they are written (the order is part of the bytes).
GROUPS = ("param", "buffer", "optim", "norm", "target_norm", "table")  # table: only written by table runs


@dataclass
class Checkpoint:
    """Everything one epoch boundary of a run needs to be used or continued.

    `params` and `buffers` are keyed by the network's dotted names; `optimizer` is empty in best.npz
    (only weights are kept for the best epoch); `meta` holds the resolved config, epoch, step, the
    data's names and, in last.npz, the training loop's state (`train_state`)."""

    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    norm: dict[str, np.ndarray] = field(default_factory=dict)
    target_norm: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it was loaded from, for messages
    table: dict[str, np.ndarray] = field(default_factory=dict)  # a table's columns (nnctl/data/tabular.py)

    @classmethod
    def capture(
        cls,
        network,
        normalizer,
        target_normalizer,
        meta: dict[str, Any],
        optimizer=None,
        flat_params: np.ndarray | None = None,
        buffers: dict[str, np.ndarray] | None = None,
        table=None,
    ) -> Checkpoint:
        """The network's weights (or `flat_params`/`buffers` in its layout, e.g. the best epoch's), the
        optimizer's state when given, and the normalizers' statistics, all NumPy arrays (a device's arrays
        are copied to the host here). On the CPU the arrays are views: save or copy."""
        host = network.device.to_host
        flat = host(network.flat_params if flat_params is None else flat_params)
        params = {name: flat[o : o + int(np.prod(s))].reshape(s) for name, (o, s) in network.param_slices.items()}
        buffers = network.named_buffers() if buffers is None else buffers
        return cls(
            params=params,
            buffers={name: host(value) for name, value in buffers.items()},
            optimizer=dict(optimizer.state_dict()) if optimizer is not None else {},
            norm=dict(normalizer.state()),
            target_norm=dict(target_normalizer.state()),
            meta=meta,
            table=dict(table.state()) if table is not None else {},
        )

    def copy(self) -> Checkpoint:
        """A snapshot that later training steps cannot change."""

        def dup(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: np.array(v, copy=True) for k, v in arrays.items()}

        return Checkpoint(
            dup(self.params), dup(self.buffers), dup(self.optimizer), dup(self.norm), dup(self.target_norm),
            json.loads(json.dumps(self.meta)), self.source, dup(self.table),
        )  # fmt: skip

    # --- what the metadata says ---

    @property
    def epoch(self) -> int:
        return int(self.meta.get("epoch") or 0)

    @property
    def train_state(self) -> dict[str, Any] | None:
        state = self.meta.get("train_state")
        if state is not None and not isinstance(state, dict):
            raise NnctlError(f"checkpoint {self.source}: train_state is not a JSON object; it cannot be resumed.")
        return state

    # --- on disk ---

    def arrays(self) -> dict[str, np.ndarray]:
        groups = dict(
            zip(
                GROUPS,
                (self.params, self.buffers, self.optimizer, self.norm, self.target_norm, self.table),
                strict=True,
            )
        )
        return {f"{prefix}/{key}": value for prefix, arrays in groups.items() for key, value in arrays.items()}

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            entries = self.arrays()
            entries["meta"] = np.array(json.dumps({"format": FORMAT_VERSION, **self.meta}, sort_keys=True))
            for key, value in entries.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """A missing, damaged or foreign file is a user error naming the file."""
        path = Path(path)
        problem = npz_problem(path)
        if problem:
            raise NnctlError(f"checkpoint {path} is damaged or not an nnctl checkpoint: {problem}.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise NnctlError(f"checkpoint not found: {path}") from None
        except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
            raise NnctlError(f"checkpoint {path} is damaged or not an nnctl checkpoint: {exc}") from None
        if "meta" not in arrays:
            raise NnctlError(f"checkpoint {path} has no metadata; it was not written by nnctl.")
        try:
            meta = json.loads(str(arrays.pop("meta")))
        except ValueError as exc:
            raise NnctlError(f"checkpoint {path}: its metadata is not JSON ({exc}).") from None
        if not isinstance(meta, dict):
            raise NnctlError(f"checkpoint {path}: its metadata is not a JSON object.")
        grouped: dict[str, dict[str, np.ndarray]] = {prefix: {} for prefix in GROUPS}
        for key, value in arrays.items():
            prefix, _, name = key.partition("/")
            if prefix not in grouped or not name:
                raise NnctlError(f"checkpoint {path}: unexpected entry '{key}'; it was not written by nnctl.")
            grouped[prefix][name] = value
        checkpoint = cls(
            grouped["param"], grouped["buffer"], grouped["optim"], grouped["norm"], grouped["target_norm"],
            meta, str(path), grouped["table"],
        )  # fmt: skip
        check_values(checkpoint)
        return checkpoint

    # --- into a network ---

    def apply(self, network, optimizer=None) -> None:
        """Load the weights (and buffers, and the optimizer's state when given) into a built network."""
        network.load_params(self.params, source=self.source)
        if self.buffers or network.named_buffers():
            network.load_buffers(self.buffers, source=self.source)
        if optimizer is not None:
            check_optimizer_state(optimizer, self.optimizer, self.source)
            try:
                optimizer.load_state_dict(self.optimizer)
            except (KeyError, ValueError) as exc:
                raise NnctlError(
                    f"checkpoint {self.source}: its optimizer state does not fit this optimizer ({exc})."
                ) from None

    def flat_params(self, network) -> np.ndarray:
        """The weights in the network's flat layout (a new NumPy array; the network is not changed)."""
        flat = network.host_params()
        for name, (offset, shape) in network.param_slices.items():
            if name not in self.params or self.params[name].shape != tuple(shape):
                raise NnctlError(f"checkpoint {self.source}: parameter '{name}' is missing or has another shape.")
            flat[offset : offset + int(np.prod(shape))] = self.params[name].ravel()
        return flat
