"""`nnctl serve` for a table run: records with text, booleans and blanks, encoded as `nnctl predict` does."""

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nnctl
from nnctl.cli import app
from tests.conftest import CONFIGS

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'nnctl[serve]')")
pytest.importorskip("httpx", reason="httpx (in the dev extra) is needed for the serve tests")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from nnctl.serve.app import create_app  # noqa: E402


def test_a_table_run_serves_records_with_text_and_blanks(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(CONFIGS / "penguins.yaml"),
            "--runs-dir",
            str(tmp_path),
            "-q",
            "--json",
            "--set",
            "train.epochs=20",
        ],
    )
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    client = TestClient(create_app(run_dir))
    records = [
        {
            "island": "Biscoe",
            "bill_length_mm": 47.5,
            "bill_depth_mm": 14.2,
            "flipper_length_mm": 220,
            "body_mass_g": None,
            "sex": None,
        },
        {
            "island": "Dream",
            "bill_length_mm": 46.0,
            "bill_depth_mm": 17.0,
            "flipper_length_mm": 190,
            "body_mass_g": 3500,
            "sex": "FEMALE",
        },
    ]
    answer = client.post("/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    run = nnctl.load_run(run_dir)
    expected = run.predict({k: [r[k] for r in records] for k in records[0]})
    assert answer.json()["predictions"] == list(expected)
    assert client.get("/metadata").json()["inputs"]["names"] == list(records[0])
    missing = client.post("/predict", json={"records": [{"island": "Biscoe"}]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"][:3] == ["body", "records", 0]
