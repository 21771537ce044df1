"""The package version, in a module of its own so that anything can read it without importing the rest."""

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """What wrote a run: nnctl, numpy and Python versions (summary.json and checkpoint metadata)."""
    import platform

    import numpy as np

    return {"nnctl": __version__, "numpy": np.__version__, "python": platform.python_version()}
