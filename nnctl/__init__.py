"""nnctl: train neural networks from YAML experiment files with a small NumPy engine."""

from nnctl.version import __version__

__all__ = ["__version__", "load_run"]


def __getattr__(name: str):
    # Lazy, so `import nnctl` (and `nnctl --help`) does not import numpy and the engine.
    if name == "load_run":
        from nnctl.api import load_run

        return load_run
    raise AttributeError(f"module 'nnctl' has no attribute {name!r}")
