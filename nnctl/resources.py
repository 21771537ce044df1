"""Files shipped inside the package, read with importlib.resources: example configs and data sets.

`nnctl/examples` and `nnctl/datasets` are relative symlinks to the repository's top-level `configs/`
and `datasets/` folders (the source of truth, where the README and the tests point); a built wheel
holds real copies of them (`[tool.setuptools.package-data]` in pyproject.toml), so an installed
nnctl never looks outside its own package folder.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any


def package_folder(name: str) -> Path:
    """A folder of package data (`examples`, `datasets`) as a filesystem path."""
    return Path(str(files("nnctl") / name))


def examples_dir() -> Path:
    return package_folder("examples")


def datasets_dir() -> Path:
    """The folder the shipped data files are read from: $NNCTL_DATASETS, else the package's own."""
    env = os.environ.get("NNCTL_DATASETS")
    return Path(env) if env else package_folder("datasets")


@cache
def dataset_catalog() -> dict[str, dict[str, Any]]:
    """datasets.yaml: source name -> file, target, task, class_names, description, origin, licence."""
    import yaml

    text = (files("nnctl") / "datasets" / "datasets.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)
