"""Package data: what a wheel ships (the wheel itself is built and installed by .ci/run)."""

from fnmatch import fnmatch

import pytest

from nnctl.data.sources import BUILTIN
from nnctl.registry import DATA_SOURCES
from nnctl.resources import dataset_catalog, datasets_dir, examples_dir
from tests.conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _package_data() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]["package-data"]["nnctl"]


@pytest.mark.parametrize(("folder", "link"), [("configs", "examples"), ("datasets", "datasets")])
def test_every_shipped_file_matches_a_package_data_pattern(folder, link):
    """A file added to configs/ or datasets/ must land in the wheel, or `nnctl init` / the source breaks."""
    patterns = _package_data()
    files = [p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()]
    files = [f for f in files if f != "convert.py" and "__pycache__" not in f]  # the converter is a dev tool
    assert files
    missing = [f for f in files if not any(fnmatch(f"{link}/{f}", pattern) for pattern in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_package_folders_are_the_repository_folders(monkeypatch):
    monkeypatch.delenv("NNCTL_DATASETS", raising=False)
    assert examples_dir().resolve() == (ROOT / "configs").resolve()
    assert datasets_dir().resolve() == (ROOT / "datasets").resolve()


def test_catalogue_entries_are_registered_sources_with_their_files():
    catalogue = dataset_catalog()
    assert set(catalogue) == set(BUILTIN)
    for name, entry in catalogue.items():
        assert (ROOT / "datasets" / entry["file"]).is_file(), name
        assert entry["licence"] and entry["origin"], name
        assert f"Licence: {entry['licence']}" in DATA_SOURCES.get(name).summary


def test_licences_ship():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "CC BY 4.0" in (ROOT / "datasets" / "LICENSES.md").read_text()
