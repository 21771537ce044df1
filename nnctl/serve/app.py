"""`nnctl serve`: a trained run behind HTTP (FastAPI), answering as `nnctl predict` does.

    POST /predict   {"records": [{"sepal_length": 5.1, ...}, ...]}   rows by column name (as predict's CSV)
                    {"inputs": [[5.1, 3.5, 1.4, 0.2], ...]}           or arrays (N, *sample shape) / (N, F)
                    -> {"predictions": [...], "probabilities": [{"setosa": 0.98, ...}, ...]} (classification)
                       (+ "warnings": [...] for a table run given category levels it never saw: encoded as other)
    GET  /health    -> {"status": "ok", ...}
    GET  /metadata  -> inputs, shapes, classes, the run's resolved config and its metrics
    GET  /docs, /openapi.json   FastAPI's generated OpenAPI page and schema

Predictions go through the same `Predictor` as `nnctl predict` (stored normalization, Playground
features). Bad requests get a 422 naming the field (`loc`) and what was expected; bodies over the
limit a 413. The model is called under a lock: layers keep scratch buffers between calls (the
recurrent ones reuse them in eval), so two threads must not run one network at once.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nnctl.errors import NnctlError

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # bytes
DEFAULT_MAX_ROWS = 10_000


def _fastapi():
    try:
        import fastapi
    except ImportError:
        raise NnctlError("nnctl serve needs FastAPI and uvicorn: pip install 'nnctl[serve]'.") from None
    return fastapi


class PredictRequest(BaseModel):
    """Exactly one of `records` (rows by column name) or `inputs` (an array, one entry per sample)."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, float | str | bool | None]] | None = Field(
        None,
        min_length=1,
        description="Samples by column name, as the columns of `nnctl predict`'s CSV (see GET /metadata "
        "inputs.names); other keys are ignored. Numbers, or for a table run also text, booleans and null "
        "(a blank cell).",
    )
    inputs: list[Any] | None = Field(
        None,
        min_length=1,
        description="Samples as arrays: shape (N, *inputs.shape) or (N, F) flat; Playground runs take (N, 2) points.",
    )
    probabilities: bool = Field(True, description="Classification: also return each class's probability.")


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, declared (Content-Length) or streamed.

    The body is read here, up to the limit, and handed on whole: the endpoint reads all of it anyway, and
    an over-long chunked upload is refused before any of it reaches the application."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await self._reply(send, 400, "Content-Length is not a number.")
            if size > self.limit:
                return await self._reply(send, 413, self._message(size))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._reply(send, 413, self._message(size, streamed=True))
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, handed = b"".join(chunks), False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as a server would

        await self.app(scope, replay, send)

    def _message(self, size: int, streamed: bool = False) -> str:
        what = f"more than {self.limit} bytes arrived" if streamed else f"request body of {size} bytes"
        return f"{what}: over the limit of {self.limit} bytes (nnctl serve --max-body)."

    @staticmethod
    async def _reply(send, status: int, detail: str) -> None:
        import json

        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _unprocessable(loc: list, msg: str, kind: str = "value_error"):
    """A 422 shaped like FastAPI's own validation errors."""
    fastapi = _fastapi()
    return fastapi.HTTPException(status_code=422, detail=[{"loc": ["body", *loc], "msg": msg, "type": kind}])


class Service:
    """The loaded run and what the endpoints answer; independent of HTTP so it can be tested directly."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", allow_plugins: bool = False, max_rows=None):
        from nnctl.api import load_run

        self.run = load_run(run_dir, checkpoint, allow_plugins)
        self.predictor = self.run.predictor  # loads now: a bad run or a refused plugin fails before serving
        self.max_rows = max_rows or DEFAULT_MAX_ROWS
        self.lock = threading.Lock()
        p = self.predictor
        self.classes = None
        if p.task == "classification":
            self.classes = [str(c) for c in (p.class_names or range(p.num_classes))]

    def metadata(self) -> dict:
        from nnctl import __version__

        p = self.predictor
        summary = self.run.summary
        return {
            "run": str(self.run.path),
            "checkpoint": self.run.checkpoint,
            "task": p.task,
            "inputs": {
                "names": p.input_names,
                "shape": list(p.input_shape) if not p.playground else [2],
                "feature_names": p.feature_names,
                "playground": p.playground,
            }
            | ({"columns": p.table.input_columns()} if p.table is not None else {}),
            "classes": self.classes,
            "targets": p.target_names,
            "output_shape": list(p.network.output_shape),
            "config": p.config.model_dump(mode="json"),
            "metrics": {k: summary.get(k) for k in ("status", "epochs", "final", "best") if k in summary},
            "nnctl_version": __version__,
        }

    def raw_inputs(self, request: PredictRequest) -> np.ndarray:
        p = self.predictor
        if (request.records is None) == (request.inputs is None):
            raise _unprocessable([], "give exactly one of 'records' (rows by column name) or 'inputs' (arrays).")
        rows = len(request.records if request.records is not None else request.inputs)
        if rows > self.max_rows:
            field = "records" if request.records is not None else "inputs"
            raise _unprocessable([field], f"at most {self.max_rows} samples per request, got {rows}.")
        if request.records is not None:
            names = p.input_names
            if names is None:
                raise _unprocessable(
                    ["records"],
                    f"this run's samples have shape {tuple(p.input_shape)}, not named columns; send 'inputs' arrays.",
                )
            for i, record in enumerate(request.records):
                if p.table is None:
                    self._numbers_only(record, i)  # a table run takes text and blanks; others numbers
                chosen = names
                if p.playground and not all(n in record for n in names) and all(n in record for n in p.feature_names):
                    chosen = p.feature_names  # the computed features by name, as predict's CSV allows
                missing = [n for n in chosen if n not in record]
                if missing:
                    raise _unprocessable(
                        ["records", i, missing[0]],
                        f"missing column(s) {', '.join(missing)}; every record needs {', '.join(names)}.",
                        "missing",
                    )
            wanted = set(names) | set(p.feature_names)
            present = [n for n in wanted if all(n in r for r in request.records)]  # records may differ in extras
            columns = {n: [r[n] for r in request.records] for n in present}
            return self._guard(["records"], lambda: p.from_columns(columns, "records"))
        try:
            array = np.asarray(request.inputs, dtype=np.float64)
        except (ValueError, TypeError):
            raise _unprocessable(
                ["inputs"], "inputs must be a rectangular array of numbers (every sample the same shape)."
            ) from None
        return self._guard(["inputs"], lambda: p.from_array(array, "inputs"))

    @staticmethod
    def _numbers_only(record: dict, i: int) -> None:
        from pydantic import TypeAdapter, ValidationError

        number = TypeAdapter(float)
        for key, value in record.items():
            try:
                record[key] = number.validate_python(value)
            except ValidationError as exc:
                error = exc.errors()[0]
                raise _unprocessable(["records", i, key], error["msg"], error["type"]) from None

    @staticmethod
    def _guard(loc: list, fn):
        try:
            return fn()
        except NnctlError as exc:
            raise _unprocessable(loc, str(exc)) from None

    def predict(self, request: PredictRequest) -> dict:
        from nnctl.data.tabular import UnknownCategoryWarning

        p = self.predictor
        field = "records" if request.records is not None else "inputs"
        # Encoding and the network under the lock: the warnings a table's unseen levels raise are caught per
        # request (catch_warnings is process-wide) and answered, not printed once to the server's log.
        with self.lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownCategoryWarning)
            raw = self.raw_inputs(request)
            out = self._guard([field], lambda: p.outputs(raw, field))
        answer: dict[str, Any] = {"samples": int(len(out))}
        said = [str(w.message) for w in caught if issubclass(w.category, UnknownCategoryWarning)]
        for w in caught:  # any other warning goes to the log as it would have
            if not issubclass(w.category, UnknownCategoryWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        if said:
            answer["warnings"] = said
        labels = p.labels(out)
        if p.task == "multilabel":  # one 0/1 per label (and each label's own probability)
            answer["labels"] = p.target_names
            answer["predictions"] = labels.tolist()
            if request.probabilities:
                proba = p.probabilities(out)
                answer["probabilities"] = [dict(zip(p.target_names, map(float, row), strict=True)) for row in proba]
            return answer
        if p.task == "regression":
            values = labels.reshape(len(labels), -1)
            answer["targets"] = p.target_names
            answer["predictions"] = values[:, 0].tolist() if values.shape[1] == 1 else values.tolist()
            return answer
        answer["predictions"] = [str(c) for c in labels.tolist()] if p.class_names else labels.tolist()
        if request.probabilities:
            proba = p.probabilities(out)
            answer["probabilities"] = [dict(zip(self.classes, map(float, row), strict=True)) for row in proba]
        return answer


def create_app(
    run_dir: str | Path,
    checkpoint: str = "best",
    allow_plugins: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    max_rows: int = DEFAULT_MAX_ROWS,
):
    """The FastAPI application serving one run (loaded now, so errors come before the server starts)."""
    fastapi = _fastapi()
    from nnctl import __version__

    service = Service(run_dir, checkpoint, allow_plugins, max_rows)
    app = fastapi.FastAPI(
        title=f"nnctl: {service.predictor.config.name}",
        version=__version__,
        description=f"Predictions of the nnctl run {service.run.path} ({checkpoint} checkpoint), "
        "as `nnctl predict` gives them. Inputs are raw: the stored normalization is applied.",
    )
    app.state.service = service

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "run": str(service.run.path), "checkpoint": checkpoint}

    @app.get("/metadata")
    def metadata() -> dict:
        return service.metadata()

    # A plain `def`: FastAPI runs it in its thread pool, so the event loop keeps answering /health while
    # numpy works (it releases the GIL); the service lock keeps the network to one caller at a time.
    @app.post("/predict")
    def predict(request: PredictRequest) -> dict:
        return service.predict(request)

    return BodyLimit(app, max_body) if max_body else app


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    checkpoint: str = "best",
    allow_plugins: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
) -> None:
    """Run the server until SIGINT/SIGTERM (uvicorn's graceful shutdown: requests in flight finish)."""
    app = create_app(run_dir, checkpoint, allow_plugins, max_body)
    try:
        import uvicorn
    except ImportError:
        raise NnctlError("nnctl serve needs FastAPI and uvicorn: pip install 'nnctl[serve]'.") from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
