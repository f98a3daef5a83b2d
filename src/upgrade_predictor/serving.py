"""Online scoring: a FastAPI service over the same Scorer as batch scoring.

POST /predict takes one user (a JSON object) or a list of users; GET /health; GET /model;
OpenAPI docs at /docs. Every client mistake is a 4xx with a message naming the field, never a 500.
"""

import asyncio
import gc
import os
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from . import config
from .errors import InputError
from .schema import Schema
from .scoring.scorer import Scored, Scorer

MAX_BODY_BYTES = config.SERVE_MAX_BODY_BYTES
MAX_USERS = config.SERVE_MAX_USERS


def user_model(schema: Schema) -> type[BaseModel]:
    """A request model built from the bundle's schema, so /docs shows the exact input contract.

    It checks JSON types only (a number, not "12" or true; a code as text, not 7), which a CSV cell
    cannot express. Every value rule (missing, negative, infinite) is the schema's own, checked once by
    Scorer.score_frame as for batch files: a null or absent field is an empty cell."""
    fields: dict[str, Any] = {}
    for col in schema.columns:
        typ: Any
        if col.kind == "numeric":
            typ = Optional[float]
            shown: dict[str, Any] = {"minimum": 0} if col.nonnegative else {}
            desc = (
                f"number (training range {col.minimum:g}..{col.maximum:g})"
                if (col.minimum is not None and col.maximum is not None)
                else "number"
            )
        else:
            typ, shown = Optional[str], {}
            examples = ", ".join(col.categories[:8])
            desc = (
                f"code ({len(col.categories)} known, e.g. {examples}); unseen codes are scored as rare ones"
            )
        if col.nullable:
            desc += "; may be null (filled as in training)"
        fields[col.name] = (typ, Field(None, description=desc, strict=True, json_schema_extra=shown))
    if schema.id_column and schema.id_column not in fields:
        fields[schema.id_column] = (Optional[str | int], Field(None, description="carried through"))
    # Documented as required; a null or absent value is refused by the schema's rules, with its name.
    required: dict[str, Any] = {"required": [c.name for c in schema.columns if not c.nullable]}
    return create_model("User", __config__=ConfigDict(extra="ignore", json_schema_extra=required), **fields)


class Prediction(BaseModel):
    probability: float
    decision: int
    threshold: float
    id: str | int | None = None
    reasons: list[str] | None = None
    warnings: list[str] | None = None


class Predictions(BaseModel):
    predictions: list[Prediction]


def _loc(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _error(status: int, message: str, details: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content=body)


class BodyLimit:
    """Refuse bodies over the limit before they are read in full (pure ASGI, also for chunked bodies)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = _error(
            413, f"request body over {self.limit:,} bytes; send at most {MAX_USERS:,} users per request"
        )
        if length is not None:
            try:
                if int(length) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await _error(400, "invalid Content-Length header")(scope, receive, send)
        seen = 0
        responded = False

        async def limited() -> Any:
            nonlocal seen, responded
            if responded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer now and stop reading; the app sees a disconnected client.
                    responded = True
                    await too_big(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not responded:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not responded:
                raise


Waiting = tuple[list[dict[str, Any]], bool, asyncio.Future[Scored]]  # one request's users


class MicroBatcher:
    """Score the requests that arrive together as one frame.

    Per-call overhead (pandas, scikit-learn checks) dwarfs the per-row cost. Requests that arrive
    while a batch is scored wait on their sockets and form the next batch: under load, batches grow
    by themselves; when idle, a request is scored alone, at once. Scoring runs on the event loop:
    a thread would only trade the GIL back and forth (up to 5 ms per switch)."""

    def __init__(self, scorer: Scorer, max_rows: int = MAX_USERS):
        self.scorer = scorer
        self.max_rows = max_rows
        self.queue: asyncio.Queue[Waiting] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def score(self, records: list[dict[str, Any]], explain: bool) -> Scored:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:  # first call, or a new loop
            self.loop = loop
            self.queue = asyncio.Queue()
            self.task = loop.create_task(self._run())
        fut: asyncio.Future[Scored] = loop.create_future()
        await self.queue.put((records, explain, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            items = [await self.queue.get()]
            await asyncio.sleep(0)  # let requests already read off the sockets join this batch
            rows = len(items[0][0])
            while not self.queue.empty() and rows < self.max_rows:
                items.append(self.queue.get_nowait())
                rows += len(items[-1][0])
            for flag in (False, True):  # reasons cost more: only for the requests that ask
                group = [it for it in items if it[1] == flag]
                if group:
                    try:
                        results: list[Scored] | None = self._score_group(group, flag)
                        error: Exception | None = None
                    except Exception as e:  # every waiting request gets the error, the loop goes on
                        results, error = None, e
                    for k, (_, _, fut) in enumerate(group):
                        if fut.done():
                            continue
                        if results is None:
                            fut.set_exception(error or RuntimeError("scoring failed"))
                        else:
                            fut.set_result(results[k])

    def _score_group(self, group: list[Waiting], explain: bool) -> list[Scored]:
        records = [r for recs, _, _ in group for r in recs]
        frame = pd.DataFrame.from_records(records, columns=self.scorer.schema.names)
        for name in self.scorer.schema.categorical:  # as the reader does: an empty cell is missing
            frame[name] = frame[name].where(~frame[name].isin(config.NA_VALUES), None)
        scored = self.scorer.score_frame(frame, explain=explain)
        out, start = [], 0
        for recs, _, _ in group:
            out.append(scored.slice(start, start + len(recs)))
            start += len(recs)
        return out


def create_app(scorer: Scorer, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    schema = scorer.schema
    meta = scorer.bundle.metadata
    User = user_model(schema)
    known = {c.name: set(c.categories) for c in schema.columns if c.kind == "categorical"}
    id_col = schema.id_column
    batcher = MicroBatcher(scorer)
    app = FastAPI(
        title="upgrade-predictor",
        version=meta.versions.get("upgrade-predictor", ""),
        description="Scores free users' chance to upgrade with one trained model bundle.\n\n"
        + (scorer.bundle.card or ""),
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(422, "the body is not valid JSON")
        body = getattr(exc, "body", None)
        # The body is "one user or a list": keep the reading that matches what was sent.
        tag = "User" if isinstance(body, dict) else "list[User]" if isinstance(body, list) else None
        if tag is None:
            return _error(422, "the body must be one user (a JSON object) or a list of users")
        details = []
        for e in errors:
            loc = tuple(e.get("loc", ()))
            if len(loc) > 1 and loc[0] == "body" and loc[1] in ("User", "list[User]"):
                if loc[1] != tag:
                    continue
                loc = loc[2:]
            details.append({"field": _loc(loc), "message": e.get("msg", "")})
        if not details:
            details = [{"field": "body", "message": "invalid"}]
        first = details[0]
        return _error(422, f"{first['field']}: {first['message']}", details[:50])

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": meta.key or meta.label, "pipeline_sha256": meta.pipeline_sha256}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        shown = {k: v for k, v in meta.to_dict().items() if k != "reference_profile"}
        return {"metadata": shown, "card": scorer.bundle.card}

    @app.post(
        "/predict",
        response_model=Union[Prediction, Predictions],
        response_model_exclude_none=True,
        responses={
            413: {"description": "body too large"},
            422: {"description": "invalid user(s): the message names the field"},
        },
    )
    async def predict(
        body: User | list[User],  # type: ignore[valid-type]
        explain: bool = Query(False, description="add the top three signed reasons"),
    ) -> JSONResponse:
        single = not isinstance(body, list)
        users: list[Any] = [body] if single else list(body)
        if not users:
            return _error(422, "the list of users is empty")
        if len(users) > MAX_USERS:
            return _error(413, f"{len(users):,} users in one request; send at most {MAX_USERS:,}")
        try:
            scored = await batcher.score([u.model_dump() for u in users], explain)
        except InputError as e:  # e.g. explain on a model without contributions
            return _error(422, str(e))
        if not scored.valid.all():
            details = []
            for i in np.flatnonzero(~scored.valid)[:50].tolist():
                problem = scored.rows.problem(i)
                if problem is not None:
                    field = problem.column if single else f"[{i}].{problem.column}"
                    details.append({"field": field, "message": problem.message})
            return _error(422, f"{details[0]['field']}: {details[0]['message']}", details)
        out = []
        for i, p in enumerate(scored.probability):
            item: dict[str, Any] = {
                "probability": float(p),
                "decision": int(scored.decision[i]),
                "threshold": scorer.threshold,
            }
            if id_col:
                item["id"] = getattr(users[i], id_col, None)
            warn = [
                f"{c} {getattr(users[i], c)!r} was not seen in training; scored as a rare code"
                for c, cats in known.items()
                if getattr(users[i], c) not in cats and getattr(users[i], c) not in (None, *config.NA_VALUES)
            ]
            if warn:
                item["warnings"] = warn
            if scored.top is not None:
                item["reasons"] = scored.top.texts(i)
            out.append(item)
        # Returned as a ready response: the items are built above, re-validating them costs time.
        return JSONResponse(out[0] if single else {"predictions": out})

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


MODEL_ENV = "UPGRADE_PREDICTOR_SERVE_MODEL"
LIMIT_ENV = "UPGRADE_PREDICTOR_SERVE_MAX_BODY"


def _freeze_heap() -> None:

    # The loaded model and libraries are long-lived: keep them out of every garbage collection, so
    # full collections stay short and do not add tens of milliseconds to a request now and then.
    gc.collect()
    gc.freeze()


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn --workers), its bundle named by the environment."""

    app = create_app(Scorer.load(os.environ[MODEL_ENV]), int(os.environ.get(LIMIT_ENV, MAX_BODY_BYTES)))
    _freeze_heap()
    return app


def serve(
    scorer: Scorer,
    host: str = config.SERVE_HOST,
    port: int = config.SERVE_PORT,
    max_body_bytes: int = MAX_BODY_BYTES,
    workers: int = config.SERVE_WORKERS,
    model_path: str | None = None,
) -> None:
    """Run the service; with workers > 1, each worker process loads the bundle at model_path."""

    if workers > 1 and model_path:
        os.environ[MODEL_ENV] = str(model_path)
        os.environ[LIMIT_ENV] = str(max_body_bytes)
        uvicorn.run(
            "upgrade_predictor.serving:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    app = create_app(scorer, max_body_bytes)
    _freeze_heap()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
