"""Where the engine's arrays live: the one array-module seam between NumPy (CPU) and CuPy (CUDA GPU).

Layers, losses, optimizers, regularizers and metrics take their array functions from a `Device`
(`self.xp`), never from a module-level `numpy` import in hot code. `np` stays fine for dtypes and
scalars (`np.float32`, `x.dtype.type(0.5)`), which CuPy shares with NumPy.

    device = resolve_device("cuda:1")   # or "cpu"; a user error (exit 2) when CuPy or the GPU is missing
    x = device.to_device(host_batch)    # once per training step (or the whole set once)
    y = device.to_host(network_output)  # at the boundary: nothing written to disk is a device array

CuPy is imported only when a CUDA device is asked for, so a CPU install never needs it (extra `gpu`).
Precision: float32 by default as on the CPU; TensorFloat-32 matmuls stay off unless the user sets
CUPY_TF32=1 in the environment before the run (CuPy reads it at import; nnctl never sets it).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nnctl.errors import ConfigError

DEVICE_HELP = "device: cpu | cuda | cuda:N (N = the GPU's index, 0 first)"


class Device:
    """The CPU: NumPy arrays; moving to and from the device is free (no copy of a NumPy array)."""

    name = "cpu"
    kind = "cpu"
    xp: Any = np

    def to_device(self, array) -> Any:
        """A device array holding `array` (a NumPy array or anything np.asarray takes)."""
        return np.asarray(array)

    def to_host(self, array) -> np.ndarray:
        """A NumPy array holding `array` (a device array or a NumPy one)."""
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait for queued device work (timing); nothing to wait for on the CPU."""

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


CPU = Device()


class OnDevice:
    """What layers, losses, optimizers, regularizers and metrics share: a `device` (the CPU until told
    otherwise) and its array module `xp`, the only place their array functions come from."""

    _device: Device = CPU
    # The device's array module, kept beside it as a plain attribute: it is read in every array call
    # (a property cost a tiny network's step 1.3 us, 8 %).
    xp: Any = np

    @property
    def device(self) -> Device:
        return self._device

    @device.setter
    def device(self, device: Device) -> None:
        self._device = device
        self.xp = device.xp

    def to(self, device: Device):
        """Work on `device` from now on (before any array is made: build, bind, reset); returns self."""
        self.device = device
        return self


class CudaDevice(Device):
    """One NVIDIA GPU through CuPy. Arrays are made on this GPU: every call into CuPy that allocates runs
    while this GPU is CuPy's current device (set once here; nnctl trains one network per process)."""

    kind = "cuda"

    def __init__(self, cupy, index: int):
        self.xp = cupy
        self.index = index
        self.name = f"cuda:{index}"
        cupy.cuda.Device(index).use()

    def to_device(self, array):
        return self.xp.asarray(array)

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        self.xp.cuda.Device(self.index).synchronize()


def parse_device(name: str) -> tuple[str, int]:
    """("cpu", 0) or ("cuda", N) from a device name; ValueError for anything else."""
    text = str(name).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda":
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ValueError(f"unknown device {name!r}; {DEVICE_HELP}")


def import_cupy():
    """CuPy, or a user error saying that it is missing and how to install it."""
    try:
        import cupy
    except ImportError as exc:
        raise ConfigError(
            f"device cuda needs CuPy, which is not installed ({exc}). Install the extra: "
            "pip install 'nnctl[gpu]' (CuPy for CUDA 12), or train with --device cpu."
        ) from None
    return cupy


def gpu_count(cupy) -> int:
    """How many GPUs CuPy sees (0 when the CUDA driver is missing or finds none)."""
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # cupy raises CUDARuntimeError without a driver; no GPU is what that means here
        return 0


def resolve_device(name: str | Device | None) -> Device:
    """The Device for a config or --device value (None: the CPU). Asking for cuda without CuPy, or with
    CuPy but without a GPU (or without GPU N), is a ConfigError that says which is missing."""
    if isinstance(name, Device):
        return name
    try:
        kind, index = parse_device(name or "cpu")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if kind == "cpu":
        return CPU
    cupy = import_cupy()
    count = gpu_count(cupy)
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise ConfigError(
            f"device {name}: CuPy is installed but finds no GPU{hint}: no NVIDIA GPU or CUDA driver on this "
            "machine. Train with --device cpu."
        )
    if index >= count:
        raise ConfigError(f"device {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    return CudaDevice(cupy, index)


def device_name(value: Any) -> str:
    """A config's device value checked and spelled one way (cpu, cuda, cuda:N); ValueError otherwise."""
    kind, index = parse_device(value)
    text = str(value).strip().lower()
    return "cpu" if kind == "cpu" else ("cuda" if text == "cuda" else f"cuda:{index}")
