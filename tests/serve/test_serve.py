"""`nnctl serve`: the endpoints through FastAPI's TestClient, and a real server on 127.0.0.1 (SIGTERM, concurrency)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nnctl
from nnctl.cli import app
from tests.conftest import CONFIGS

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'nnctl[serve]')")
pytest.importorskip("httpx", reason="httpx (in the dev extra) is needed for the serve tests")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # starlette's TestClient about httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # StarletteDeprecationWarning: starlette wants httpx2 for its TestClient
    from fastapi.testclient import TestClient  # noqa: E402

from nnctl.serve.app import create_app  # noqa: E402

runner = CliRunner()
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def train(config, runs_dir, *extra):
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(runs_dir), "--json", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def iris_run(runs):
    return train(CONFIGS / "iris.yaml", runs, "--set", "train.epochs=5")


@pytest.fixture(scope="module")
def iris(iris_run):
    return TestClient(create_app(iris_run))


def test_health_metadata_and_openapi(iris, iris_run):
    assert iris.get("/health").json()["status"] == "ok"
    meta = iris.get("/metadata").json()
    assert meta["task"] == "classification" and meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["inputs"]["shape"] == [4] and len(meta["inputs"]["names"]) == 4
    assert meta["config"]["name"] == "iris" and meta["metrics"]["status"] == "completed"
    assert meta["metrics"]["final"] == json.loads((iris_run / "summary.json").read_text())["final"]
    schema = iris.get("/openapi.json").json()
    assert {"/predict", "/health", "/metadata"} <= set(schema["paths"])
    assert iris.get("/docs").status_code == 200


def test_predict_by_records_and_arrays_matches_load_run(iris, iris_run):
    run = nnctl.load_run(iris_run)
    x, _ = run.data("test")
    names = run.input_names
    by_records = iris.post("/predict", json={"records": [dict(zip(names, map(float, row), strict=True)) for row in x]})
    by_arrays = iris.post("/predict", json={"inputs": x.tolist()})
    assert by_records.status_code == 200 and by_arrays.status_code == 200
    assert by_records.json() == by_arrays.json()
    answer = by_records.json()
    assert answer["predictions"] == list(run.predict(x))
    proba = np.array([[row[c] for c in run.classes] for row in answer["probabilities"]])
    assert np.array_equal(proba, run.predict_proba(x).astype(np.float64))
    # other keys are ignored, and need not be in every record
    records = [dict(zip(names, map(float, row), strict=True)) for row in x[:3]]
    records[0]["species_code"] = 2.0
    assert iris.post("/predict", json={"records": records}).json()["predictions"] == answer["predictions"][:3]
    assert "probabilities" not in iris.post("/predict", json={"inputs": x[:2].tolist(), "probabilities": False}).json()


@pytest.mark.parametrize(
    "body, loc, text",
    [
        ({"records": [{"sepal_length": 1.0}]}, ["body", "records", 0, "sepal_width"], "missing column"),
        (
            {"records": [{"sepal_length": 1, "sepal_width": 1, "petal_length": 1, "petal_width": 1}, {"species": 2}]},
            ["body", "records", 1, "sepal_length"],
            "missing column",
        ),
        ({"records": [{"sepal_length": "abc"}]}, ["body", "records", 0, "sepal_length"], "valid number"),
        ({"inputs": [[1, 2, 3]]}, ["body", "inputs"], "expected inputs of shape (N, 4)"),
        ({"inputs": [[1, 2], [1, 2, 3, 4]]}, ["body", "inputs"], "rectangular array of numbers"),
        ({"inputs": [[1, 2, 3, "NaN"]]}, ["body", "inputs"], "NaN or Inf"),
        ({}, ["body"], "exactly one of 'records'"),
        ({"inputs": []}, ["body", "inputs"], "at least 1"),
        ({"inputs": [[1, 2, 3, 4]], "proba": True}, ["body", "proba"], "Extra inputs"),
    ],
)
def test_bad_requests_are_422_naming_the_field(iris, body, loc, text):
    response = iris.post("/predict", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and text in error["msg"], error


def test_oversize_bodies_are_413(iris_run):
    client = TestClient(create_app(iris_run, max_body=1000))
    small = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
    assert small.status_code == 200
    big = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]] * 100})
    assert big.status_code == 413 and "over the limit of 1000 bytes" in big.json()["detail"]

    def chunks():  # no Content-Length: a chunked upload, counted as it arrives
        yield b'{"inputs": ['
        for _ in range(100):
            yield b"[5.1, 3.5, 1.4, 0.2],"
        yield b"[5.1, 3.5, 1.4, 0.2]]}"

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "more than 1000 bytes arrived" in streamed.json()["detail"]

    def small_chunks():
        yield b'{"inputs": '
        yield b"[[5.1, 3.5, 1.4, 0.2]]}"

    ok = client.post("/predict", content=small_chunks(), headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json()["samples"] == 1


def test_too_many_rows_is_422(iris_run):
    client = TestClient(create_app(iris_run, max_rows=3))
    response = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]] * 4})
    assert response.status_code == 422 and "at most 3 samples" in response.json()["detail"][0]["msg"]


def test_playground_run_takes_points_and_regression_values(runs):
    circle = TestClient(create_app(train(CONFIGS / "circle.yaml", runs, "--set", "train.epochs=2")))
    points = [[0.0, 0.5], [4.5, -1.0]]
    by_name = circle.post("/predict", json={"records": [{"x1": a, "x2": b} for a, b in points]}).json()
    assert by_name == circle.post("/predict", json={"inputs": points}).json()
    plane_dir = train(CONFIGS / "plane.yaml", runs, "--set", "train.epochs=2")
    plane = TestClient(create_app(plane_dir)).post("/predict", json={"inputs": points}).json()
    assert np.allclose(plane["predictions"], nnctl.load_run(plane_dir).predict(np.array(points)), rtol=0, atol=0)


@pytest.fixture(scope="module")
def gru_run(runs):
    return train(CONFIGS / "gru_order.yaml", runs, "--set", "train.epochs=1")  # samples (T, F): no column names


def test_sequence_run_wants_arrays(gru_run):
    run_dir = gru_run
    client = TestClient(create_app(run_dir))
    x, _ = nnctl.load_run(run_dir).data("test")
    assert client.post("/predict", json={"inputs": x[:5].tolist()}).json()["predictions"] == list(
        nnctl.load_run(run_dir).predict(x[:5])
    )
    error = client.post("/predict", json={"records": [{"a": 1.0}]}).json()["detail"][0]
    assert error["loc"] == ["body", "records"] and "send 'inputs' arrays" in error["msg"]


def test_plugin_runs_are_refused_without_allow_plugins(runs, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    run_dir = train(PLUGINS / "plugin.yaml", runs, "--set", "train.epochs=1")
    result = runner.invoke(app, ["serve", str(run_dir), "--port", "1"])
    assert result.exit_code == 2 and "--allow-plugins" in result.output
    client = TestClient(create_app(run_dir, allow_plugins=True))
    assert client.post("/predict", json={"records": [{"x1": 0.0, "x2": 1.0}]}).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_concurrent_requests_and_sigterm(gru_run):
    """A real uvicorn on 127.0.0.1: parallel requests to a recurrent model (scratch buffers shared under a lock)
    equal the sequential answers, and SIGTERM shuts it down cleanly."""
    import httpx

    run_dir = gru_run
    x, _ = nnctl.load_run(run_dir).data("test")
    port = _free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nnctl.cli", "serve", str(run_dir), "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):  # bounded wait for start-up
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("server did not start: " + server.stdout.read())
        batches = [x[i : i + 7].tolist() for i in range(0, 140, 7)]
        with httpx.Client(base_url=url, timeout=10) as client:
            sequential = [client.post("/predict", json={"inputs": b}).json() for b in batches]
        with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=url, timeout=10) as client:
            parallel = list(pool.map(lambda b: client.post("/predict", json={"inputs": b}).json(), batches))
        assert parallel == sequential
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    # uvicorn finishes the requests in flight, shuts down, then re-raises SIGTERM: a shell sees 143, the exit
    # code nnctl uses for "terminated" everywhere.
    assert server.returncode == -signal.SIGTERM, output
    assert "Shutting down" in output and "Finished server process" in output and "Traceback" not in output
