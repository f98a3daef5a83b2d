"""The FastAPI app for one scorer: its routes, its error handler and its body limit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Union

from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from ..errors import InputError
from ..scoring.scorer import Scorer
from .access import TokenGate, Tokens
from .answerer import Answerer
from .limits import (
    CHUNK_USERS,
    MAX_BODY_BYTES,
    MAX_DETAILS,
    QUEUE_SIZE,
    RETRY_AFTER_SECONDS,
    SMALL_BODY_BYTES,
)
from .middleware import BodyLimit
from .pool import QueueFull, ScoringPool, default_threads
from .replies import error, error_response, field_name
from .schemas import (
    PREDICT_RESPONSES,
    UNAUTHORIZED_RESPONSE,
    Prediction,
    Predictions,
    request_body,
    user_model,
)


def create_app(
    scorer: Scorer,
    max_body_bytes: int = MAX_BODY_BYTES,
    threads: int | None = None,
    queue_size: int = QUEUE_SIZE,
    chunk_users: int = CHUNK_USERS,
    small_body_bytes: int = SMALL_BODY_BYTES,
    tokens: Tokens | None = None,
) -> FastAPI:
    """The service for one scorer. threads: scoring threads (default: default_threads(); 0 scores on
    the event loop); queue_size: requests admitted at once before 503; chunk_users and
    small_body_bytes: how large requests are split and which bodies count as small; tokens: when
    given, every path but /health needs one of them as a bearer token."""
    threads = default_threads() if threads is None else threads
    if threads < 0:
        raise InputError(f"threads must be 0 or more (got {threads})")
    if queue_size < 1:
        raise InputError(f"the queue size must be at least 1 (got {queue_size})")
    if chunk_users < 1:
        raise InputError(f"chunk_users must be at least 1 (got {chunk_users})")
    User = user_model(scorer.schema)
    pool = ScoringPool(Answerer(scorer, User, chunk_users), threads, queue_size, small_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="upgrade-predictor",
        version=scorer.bundle.metadata.versions.get("upgrade-predictor", ""),
        description="Scores free users' chance to upgrade with one trained model bundle.\n\n"
        + (scorer.bundle.card or ""),
        lifespan=lifespan,
    )
    app.state.pool = pool
    app.add_exception_handler(RequestValidationError, _invalid_query)  # type: ignore[arg-type]
    guard = _guard(tokens)
    _add_info_routes(app, scorer, guard)
    _add_predict_route(app, pool, User, guard)
    add_user_schema(app, User)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    if tokens is not None:
        app.add_middleware(TokenGate, tokens=tokens)  # outermost: before the body limit reads a byte
    return app


def _guard(tokens: Tokens | None) -> dict[str, Any]:
    """The route options that show the bearer scheme and the 401 in the OpenAPI schema. The gate
    does the checking, for every path, before a route is reached; the dependency only documents it."""
    if tokens is None:
        return {"dependencies": [], "responses": {}}
    bearer = HTTPBearer(
        scheme_name="bearer", description="a token of the service's --token-file", auto_error=False
    )
    return {"dependencies": [Security(bearer)], "responses": UNAUTHORIZED_RESPONSE}


async def _invalid_query(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The body is read by the scoring threads; only the query string is checked here.
    details = [
        {"field": field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()
    ]
    details = details or [{"field": "request", "message": "invalid"}]
    return error_response(422, f"{details[0]['field']}: {details[0]['message']}", details[:MAX_DETAILS])


def _add_info_routes(app: FastAPI, scorer: Scorer, guard: dict[str, Any]) -> None:
    meta = scorer.bundle.metadata

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": meta.key or meta.label, "pipeline_sha256": meta.pipeline_sha256}

    @app.get("/model", **guard)
    def model_info() -> dict[str, Any]:
        shown = {k: v for k, v in meta.to_dict().items() if k != "reference_profile"}
        return {"metadata": shown, "card": scorer.bundle.card}


def _add_predict_route(app: FastAPI, pool: ScoringPool, User: type[BaseModel], guard: dict[str, Any]) -> None:
    @app.post(
        "/predict",
        response_model=Union[Prediction, Predictions],
        response_model_exclude_none=True,
        openapi_extra={"requestBody": request_body(User)},
        responses={**PREDICT_RESPONSES, **guard["responses"]},
        dependencies=guard["dependencies"],
    )
    async def predict(
        request: Request,
        explain: bool = Query(False, description="add the top three signed reasons"),
    ) -> Response:
        body = await request.body()
        try:
            reply = await pool.answer(body, explain)
        except QueueFull:
            reply = error(
                503,
                f"the service is busy ({pool.queue_size} requests waiting); retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return Response(reply.body, reply.status, reply.headers, media_type="application/json")


def add_user_schema(app: FastAPI, User: type[BaseModel]) -> None:
    """List the User model among the OpenAPI components (the body is read by hand, so FastAPI does
    not see it)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()  # built once, then cached by FastAPI
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("User", User.model_json_schema(ref_template="#/components/schemas/{model}"))
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
