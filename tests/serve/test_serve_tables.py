"""`nnctl serve` for a table run: records with text, booleans and blanks, encoded as `nnctl predict` does."""

import csv
import io
import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nnctl
from nnctl.cli import app
from tests.conftest import CONFIGS
from tests.e2e.test_tables import titanic_embedding

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'nnctl[serve]')")
pytest.importorskip("httpx", reason="httpx (in the dev extra) is needed for the serve tests")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from nnctl.serve.app import create_app  # noqa: E402

# Penguins as a client sends them: numbers, text, and null for a blank cell.
PENGUIN_RECORDS = [
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
    records = PENGUIN_RECORDS
    answer = client.post("/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    run = nnctl.load_run(run_dir)
    expected = run.predict({k: [r[k] for r in records] for k in records[0]})
    assert answer.json()["predictions"] == list(expected)
    inputs = client.get("/metadata").json()["inputs"]
    assert inputs["names"] == list(records[0])
    assert inputs["columns"]["island"] == {"type": "category", "levels": ["Biscoe", "Dream", "Torgersen"]}
    assert inputs["columns"]["body_mass_g"] == {"type": "numeric", "impute": "median", "indicator": True}
    missing = client.post("/predict", json={"records": [{"island": "Biscoe"}]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"][:3] == ["body", "records", 0]


def _as_csv(records: list[dict], path: Path) -> Path:
    """The records as predict's CSV: null is a blank cell, booleans their words."""
    names = list(records[0])
    text = [",".join(names)] + [
        ",".join("" if r[n] is None else str(r[n]).lower() if isinstance(r[n], bool) else str(r[n]) for n in names)
        for r in records
    ]
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.parametrize("name", ["penguins", "titanic_embedding"])
def test_served_records_answer_as_nnctl_predict_on_the_same_rows(name, tmp_path):
    config = titanic_embedding(tmp_path) if name != "penguins" else CONFIGS / "penguins.yaml"
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q", "--json", "--set", "train.epochs=5"]
    )
    run_dir = Path(json.loads(trained.stdout)["run_dir"])
    if name == "penguins":  # and an island never seen in training
        records = [*PENGUIN_RECORDS, PENGUIN_RECORDS[1] | {"island": "Atlantis", "sex": "MALE"}]
        unseen = "'island': 1 row(s), level(s) 'Atlantis'"
    else:
        base = {
            "pclass": 3,
            "sex": "male",
            "age": None,
            "sibsp": 1,
            "parch": 0,
            "fare": 7.25,
            "embarked": "S",
            "who": "man",
            "adult_male": True,
            "alone": False,
        }
        records = [
            base | {"deck": None},
            base | {"deck": "C", "age": 4.0, "who": "child", "adult_male": False},
            base | {"deck": "Z", "sex": "female"},
        ]  # a deck never seen in training: other
        unseen = "'deck': 1 row(s), level(s) 'Z'"
    answer = TestClient(create_app(run_dir)).post("/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    assert any(unseen in w for w in answer.json()["warnings"])
    predicted = runner.invoke(app, ["predict", str(run_dir), str(_as_csv(records, tmp_path / "r.csv")), "--proba"])
    assert predicted.exit_code == 0, predicted.output
    rows = list(csv.DictReader(io.StringIO(predicted.stdout)))
    assert answer.json()["predictions"] == [r["prediction"] for r in rows]
    for served, printed in zip(answer.json()["probabilities"], rows, strict=True):
        assert served == pytest.approx({k: float(printed[f"proba_{k}"]) for k in served}, abs=1e-6)
