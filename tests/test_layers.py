"""The import layering in pyproject.toml ([tool.importlinter]) holds: every import runs downhill, no cycles."""

import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
