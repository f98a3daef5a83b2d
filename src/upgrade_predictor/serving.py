"""Online scoring: a FastAPI service over the same Scorer as batch scoring.

POST /predict takes one user (a JSON object) or a list of users; GET /health; GET /model;
OpenAPI docs at /docs. Every client mistake is a 4xx with a message naming the field, never a 500.

The event loop only moves bytes: reading the JSON, checking it, scoring and writing the answer run on
a small pool of threads (LightGBM and numpy release the GIL for most of the work). Small requests have
their own lane and thread and are scored together; large ones are checked and scored a chunk at a time
on the other threads, at a lower CPU priority, so a single user is not kept waiting behind 10,000 users
with reasons. When more requests wait than the queue holds, the answer is 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from . import config
from .errors import InputError
from .schema import Schema, ValidatedRows
from .scoring.scorer import Scored, Scorer

MAX_BODY_BYTES = config.SERVE_MAX_BODY_BYTES
MAX_USERS = config.SERVE_MAX_USERS
QUEUE_SIZE = config.SERVE_QUEUE_SIZE
RETRY_AFTER_SECONDS = 1
SMALL_BODY_BYTES = 16 * 1024  # bodies up to this size (about 80 users) take the small-request lane
SMALL_BATCH_BYTES = 256 * 1024  # small requests scored together as one frame, at most this much JSON
CHUNK_USERS = 1_000  # a large request is checked and scored this many users at a time
# Users per call of a C function that holds the GIL (pydantic checks, JSON encoding): a few
# milliseconds at most, so the event loop is never held up longer than that.
GIL_SLICE_USERS = 200
MAX_DETAILS = 50  # field problems listed in one 422
LARGE_NICE = 10  # CPU priority (nice) of the threads that score large requests
# The loop and the scoring threads share the GIL; a shorter switch interval lets the loop answer a
# small request within about a millisecond while a thread runs Python code for a large one.
SWITCH_INTERVAL_SECONDS = 0.001


def default_threads(workers: int = 1) -> int:
    """Scoring threads per service process: the usable cores shared among the worker processes, and at
    least two, so one thread is always left for small requests."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores // max(1, workers))


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


class FieldProblem(BaseModel):
    field: str = Field(description='the field, e.g. "minutes_watched" or "[3].minutes_watched" in a list')
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="one sentence naming the problem")
    details: list[FieldProblem] | None = Field(None, description=f"up to {MAX_DETAILS} field problems")


@dataclass(frozen=True)
class Reply:
    """One request's answer, ready to send: status, JSON bytes and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(content: Any) -> bytes:
    # As Starlette's JSONResponse renders; a lone surrogate (valid in JSON text, not in UTF-8) is
    # sent escaped rather than failing the answer.
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(status: int, message: str, details: list | None = None) -> Reply:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return Reply(status, _json(body))


def _error_response(status: int, message: str, details: list | None = None) -> JSONResponse:
    reply = _error(status, message, details)
    return JSONResponse(status_code=status, content=json.loads(reply.body), headers=reply.headers)


def _loc(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _invalid(details: list[dict[str, str]]) -> Reply:
    first = details[0]
    return _error(422, f"{first['field']}: {first['message']}", details[:MAX_DETAILS])


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

        def too_big() -> JSONResponse:
            return _error_response(
                413, f"request body over {self.limit:,} bytes; send at most {MAX_USERS:,} users per request"
            )

        if length is not None:
            try:
                if int(length) > self.limit:
                    return await too_big()(scope, receive, send)
            except ValueError:
                return await _error_response(400, "invalid Content-Length header")(scope, receive, send)
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
                    await too_big()(scope, receive, send)
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


@dataclass
class Parsed:
    """A request body read as JSON and checked against the User model: plain records, in order."""

    records: list[dict[str, Any]]
    single: bool  # one JSON object rather than a list


class Answerer:
    """Everything between a request's bytes and its answer's bytes, run on the scoring threads."""

    def __init__(self, scorer: Scorer, user: type[BaseModel], chunk_users: int = CHUNK_USERS):
        self.scorer = scorer
        self.one: TypeAdapter[Any] = TypeAdapter(user)
        self.many: TypeAdapter[list[Any]] = TypeAdapter(list[user])  # type: ignore[valid-type]
        self.chunk = chunk_users
        schema = scorer.schema
        self.names = list(schema.names)
        self.categorical = list(schema.categorical)
        self.known = {c.name: set(c.categories) for c in schema.columns if c.kind == "categorical"}
        self.id_col = schema.id_column
        self.na = set(config.NA_VALUES)

    # --- reading ------------------------------------------------------------------------------------
    def read(self, body: bytes) -> Any:
        """The body as a JSON value, or a 400 Reply when it is not UTF-8 JSON text."""
        if not body.strip():
            return _error(400, "the body is empty; send one user (a JSON object) or a list of users")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            return _error(400, f"the body is not valid UTF-8 (byte {e.start}); send JSON text in UTF-8")
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            return _error(400, f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
        except (ValueError, RecursionError) as e:  # e.g. nested too deep, an integer too long
            return _error(400, f"the body is not valid JSON: {e}")

    def _shape(self, value: Any) -> Reply | None:
        if not isinstance(value, (dict, list)):
            return _error(422, "the body must be one user (a JSON object) or a list of users")
        if isinstance(value, list) and len(value) > MAX_USERS:
            return _error(413, f"{len(value):,} users in one request; send at most {MAX_USERS:,}")
        return None

    def _check(
        self, value: Any, start: int, stop: int, escaped: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Records of users start..stop of a list (or of the one user), and their type problems.
        `escaped`: the body holds a surrogate escape, so text fields are checked for lone ones."""
        if isinstance(value, dict):
            try:
                records = [self.one.validate_python(value).model_dump()]
            except ValidationError as exc:
                return [], self._named(exc, 0, single=True)
            found = _lone_surrogates(records, 0, single=True) if escaped else []
            return ([], found) if found else (records, [])
        records = []
        details: list[dict[str, str]] = []
        for i in range(start, min(stop, len(value)), GIL_SLICE_USERS):
            try:
                users = self.many.validate_python(value[i : min(i + GIL_SLICE_USERS, stop)])
                records += [u.model_dump() for u in users]
            except ValidationError as exc:
                details += self._named(exc, i, single=False)
        if escaped and not details:
            details = _lone_surrogates(records, start, single=False)
        return ([], details) if details else (records, [])

    @staticmethod
    def _named(exc: ValidationError, offset: int, single: bool) -> list[dict[str, str]]:
        details = []
        for e in exc.errors():
            loc = tuple(e.get("loc", ()))
            if not single and loc and isinstance(loc[0], int):
                loc = (offset + loc[0], *loc[1:])
            details.append({"field": _loc(loc), "message": e.get("msg", "")})
        return details or [{"field": "body", "message": "invalid"}]

    def parse(self, body: bytes) -> Parsed | Reply:
        """Read and type-check a whole body at once (small requests)."""
        value = self.read(body)
        if isinstance(value, Reply):
            return value
        if (bad := self._shape(value)) is not None:
            return bad
        stop = len(value) if isinstance(value, list) else 1
        records, details = self._check(value, 0, stop, _has_surrogate_escape(body))
        return _invalid(details) if details else Parsed(records, isinstance(value, dict))

    # --- scoring ------------------------------------------------------------------------------------
    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(records, columns=self.names)
        for name in self.categorical:  # as the reader does: an empty cell is missing
            if any(r[name] in self.na for r in records):  # rare, and the pandas pass costs ~0.5 ms
                frame[name] = frame[name].where(~frame[name].isin(config.NA_VALUES), None)
        return frame

    @staticmethod
    def problems(
        rows: ValidatedRows, single: bool, first: int, limit: int, start: int = 0, stop: int | None = None
    ) -> list[dict[str, str]]:
        """The problems of rows start..stop of a checked frame, named by field; in a list, the row
        at `start` is user number `first`."""
        details = []
        for i in np.flatnonzero(rows.code[start:stop])[:limit].tolist():
            problem = rows.problem(start + i)
            if problem is not None:
                name = problem.column if single else f"[{first + i}].{problem.column}"
                details.append({"field": name, "message": problem.message})
        return details

    def items(self, scored: Scored, records: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
        """The answers of valid records whose scores start at position `first` of `scored`."""
        out = []
        threshold = self.scorer.threshold
        stop = first + len(records)
        decisions = scored.decision[first:stop].tolist()
        for i, p in enumerate(scored.probability[first:stop].tolist()):
            rec = records[i]
            item: dict[str, Any] = {"probability": p, "decision": decisions[i], "threshold": threshold}
            if self.id_col and rec.get(self.id_col) is not None:
                item["id"] = rec[self.id_col]
            warn = [
                f"{c} {rec[c]!r} was not seen in training; scored as a rare code"
                for c, cats in self.known.items()
                if rec[c] not in cats and rec[c] not in (None, *config.NA_VALUES)
            ]
            if warn:
                item["warnings"] = warn
            if scored.top is not None:
                item["reasons"] = scored.top.texts(first + i)
            out.append(item)
        return out

    def answer(self, scored: Scored, parsed: Parsed, start: int = 0, first: int = 0) -> Reply:
        """The reply to one request whose rows start at `start` of a scored frame (and whose scores,
        when all its rows are valid, at position `first`)."""
        stop = start + len(parsed.records)
        if scored.rows.code[start:stop].any():
            return _invalid(self.problems(scored.rows, parsed.single, 0, MAX_DETAILS, start, stop))
        out = self.items(scored, parsed.records, first)
        return Reply(200, _json(out[0] if parsed.single else {"predictions": out}))

    def answer_small(self, jobs: list[tuple[bytes, bool]]) -> list[Reply]:
        """Answer small requests together: each checked alone, the valid ones scored as one frame per
        explain flag (per-call overhead dwarfs the per-row cost)."""
        replies: list[Reply | None] = [None] * len(jobs)
        ready: dict[int, Parsed] = {}
        for k, (body, _) in enumerate(jobs):
            parsed = self.parse(body)
            if isinstance(parsed, Reply):
                replies[k] = parsed
            elif not parsed.records:
                replies[k] = Reply(200, _json({"predictions": []}))
            else:
                ready[k] = parsed
        for flag in (False, True):  # reasons cost more: only for the requests that ask
            group = [k for k in ready if jobs[k][1] == flag]
            if not group:
                continue
            records = [r for k in group for r in ready[k].records]
            try:
                scored = self.scorer.score_frame(self.frame(records), explain=flag)
            except InputError as e:  # e.g. explain on a model without contributions
                for k in group:
                    replies[k] = _error(422, str(e))
                continue
            # Where each request's scores start: scores are kept for valid rows only.
            position = np.concatenate(([0], np.cumsum(scored.valid))).tolist()
            start = 0
            for k in group:
                replies[k] = self.answer(scored, ready[k], start, position[start])
                start += len(ready[k].records)
        return [r if r is not None else _error(500, "the request was not answered") for r in replies]

    def answer_large(self, body: bytes, explain: bool) -> Generator[None, None, Reply]:
        """Answer one large request a chunk at a time, yielding between chunks so that small requests
        waiting for this thread go first: check every user's types, then score chunk by chunk."""
        value = self.read(body)
        if isinstance(value, Reply):
            return value
        if (bad := self._shape(value)) is not None:
            return bad
        if isinstance(value, dict):  # one user with a large body (e.g. many extra fields)
            records, found = self._check(value, 0, 1, _has_surrogate_escape(body))
            if found:
                return _invalid(found)
            p = Parsed(records, single=True)
            try:
                return self.answer(self.scorer.score_frame(self.frame(records), explain=explain), p)
            except InputError as e:
                return _error(422, str(e))
        if not value:
            return Reply(200, _json({"predictions": []}))
        chunks: list[list[dict[str, Any]]] = []
        details: list[dict[str, str]] = []
        escaped = _has_surrogate_escape(body)
        for start in range(0, len(value), self.chunk):
            yield
            records, found = self._check(value, start, start + self.chunk, escaped)
            chunks.append(records)
            details += found
            if len(details) >= MAX_DETAILS:
                break
        if details:
            return _invalid(details)
        del value
        parts: list[str] = []
        offset = 0
        for records in chunks:
            yield
            frame = self.frame(records)
            if details:  # a row was invalid: only look for more problems to name
                rows = self.scorer.schema.validate_rows(frame)
                details += self.problems(rows, False, offset, MAX_DETAILS - len(details))
            else:
                try:
                    scored = self.scorer.score_frame(frame, explain=explain)
                except InputError as e:
                    return _error(422, str(e))
                if scored.valid.all():
                    items = self.items(scored, records)
                    for i in range(0, len(items), GIL_SLICE_USERS):
                        parts.append(_json(items[i : i + GIL_SLICE_USERS]).decode()[1:-1])
                else:
                    details += self.problems(scored.rows, False, offset, MAX_DETAILS)
            offset += len(records)
            if len(details) >= MAX_DETAILS:
                break
        if details:
            return _invalid(details)
        return Reply(200, ('{"predictions":[' + ",".join(parts) + "]}").encode())


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_surrogate_escape(body: bytes) -> bool:
    """Whether JSON text may hold a lone surrogate (UTF-8 itself cannot): an escape \\uD800-\\uDFFF."""
    return _SURROGATE_ESCAPE.search(body) is not None


def _lone_surrogates(records: list[dict[str, Any]], first: int, single: bool) -> list[dict[str, str]]:
    """Text fields holding a lone surrogate, which no table can store (Arrow refuses it)."""
    details = []
    for i, rec in enumerate(records):
        for name, v in rec.items():
            if isinstance(v, str):
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    where = name if single else f"[{first + i}].{name}"
                    message = f"{name} holds an unpaired surrogate escape (\\uD800-\\uDFFF)"
                    details.append({"field": where, "message": message + "; send valid Unicode text"})
    return details


class QueueFull(Exception):
    """More requests wait than the queue holds."""


@dataclass
class Job:
    """One admitted request: its bytes, and where its answer goes (a future on the caller's loop)."""

    body: bytes
    explain: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Reply]
    steps: Generator[None, None, Reply] | None = None  # a large request, once started


def _resolve(answers: list[tuple[asyncio.Future[Reply], Reply]]) -> None:
    for future, reply in answers:
        if not future.done():
            future.set_result(reply)


class ScoringPool:
    """Threads that answer requests off the event loop, with two lanes and a bounded queue.

    Small bodies wait in the small lane and are answered together (requests that arrive while a batch
    is scored form the next one, so batches grow with the load). Large ones advance a chunk per turn,
    round robin. With two threads or more, one thread answers only small requests and the others only
    large ones, at a lower CPU priority, so a single user never waits for a chunk of a large request;
    with one thread, small batches go between the chunks. Requests admitted (waiting or in work) are
    bounded by queue_size. With threads=0 everything runs on the event loop, a large request in one
    go, as the service did before the pool (kept to measure what the pool gains)."""

    def __init__(
        self,
        answerer: Answerer,
        threads: int,
        queue_size: int = QUEUE_SIZE,
        small_body_bytes: int = SMALL_BODY_BYTES,
    ):
        self.answerer = answerer
        self.threads = threads
        self.queue_size = queue_size
        self.small_body_bytes = small_body_bytes
        lock = threading.Lock()
        self.cond = threading.Condition(lock)  # small work waiting (and all of it with one thread)
        self.large_ready = self.cond if threads == 1 else threading.Condition(lock)
        self.small: deque[Job] = deque()
        self.large: deque[Job] = deque()
        self.admitted = 0
        self.closed = False
        self.workers: list[threading.Thread] = []
        self.draining: asyncio.Task[None] | None = None  # threads=0: the loop's own worker
        self.kick_pending = False

    @property
    def waiting(self) -> int:
        """Requests queued and not yet picked (large ones between chunks included)."""
        with self.cond:
            return len(self.small) + len(self.large)

    async def answer(self, body: bytes, explain: bool) -> Reply:
        """The request's answer; QueueFull when queue_size requests are already admitted."""
        loop = asyncio.get_running_loop()
        job = Job(body, explain, loop, loop.create_future())
        with self.cond:
            if self.admitted >= self.queue_size:
                raise QueueFull
            self.admitted += 1
            small = len(body) <= self.small_body_bytes
            (self.small if small else self.large).append(job)
            if self.threads == 0:
                if self.draining is None or self.draining.done():
                    self.draining = loop.create_task(self._drain())
            else:
                if not self.workers:
                    self._start()
                if not small:
                    self.large_ready.notify()
                elif not self.kick_pending:
                    # Wake the small lane once the loop has read every request already on the sockets,
                    # so they form one batch (a call's overhead dwarfs the cost of a row).
                    self.kick_pending = True
                    loop.call_soon(self._kick)
        return await job.future

    def _kick(self) -> None:
        with self.cond:
            self.kick_pending = False
            self.cond.notify()

    def _start(self) -> None:
        roles = ["both"] if self.threads == 1 else ["small"] + ["large"] * (self.threads - 1)
        for k, role in enumerate(roles):
            t = threading.Thread(target=self._work, args=(role,), name=f"scoring-{role}-{k}", daemon=True)
            t.start()
            self.workers.append(t)

    def close(self) -> None:
        """Let the threads finish their current step and stop."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            self.large_ready.notify_all()

    def _take(self, role: str) -> tuple[list[Job], bool] | None:
        """Under the lock: a small batch or one large request for a thread of this role, or None."""
        if role == "large":
            return ([self.large.popleft()], True) if self.large else None
        if self.small:
            batch = [self.small.popleft()]
            size = len(batch[0].body)
            while self.small and size + len(self.small[0].body) <= SMALL_BATCH_BYTES:
                batch.append(self.small.popleft())
                size += len(batch[-1].body)
            return batch, False
        if self.large and role == "both":
            return [self.large.popleft()], True
        return None

    def _work(self, role: str) -> None:
        ready = self.large_ready if role == "large" else self.cond
        if role == "large":
            _lower_priority()
        while True:
            with ready:
                while (picked := None if self.closed else self._take(role)) is None:
                    if self.closed:
                        return
                    ready.wait()
            jobs, large = picked
            if large:
                self._step(jobs[0])
            else:
                self._answer_small(jobs)

    async def _drain(self) -> None:
        while True:
            await asyncio.sleep(0)  # let requests already read off the sockets join this batch
            with self.cond:
                picked = self._take("both")
            if picked is None:
                return
            jobs, large = picked
            if not large:
                self._answer_small(jobs)
                continue
            while self._step(jobs[0], requeue=False):
                pass

    def _answer_small(self, jobs: list[Job]) -> None:
        try:
            replies = self.answerer.answer_small([(j.body, j.explain) for j in jobs])
        except Exception as e:  # every waiting request gets an answer, the thread goes on
            if len(jobs) > 1:  # answer each alone, so one request cannot fail the others
                for job in jobs:
                    self._answer_small([job])
                return
            replies = [_error(500, f"scoring failed: {type(e).__name__}")]
        self._finish(jobs, replies)

    def _step(self, job: Job, requeue: bool = True) -> bool:
        """Advance a large request by one chunk; put it back in line (or, with requeue=False, return
        True to be called again), or answer it and return False."""
        reply: Reply | None = None
        if job.future.cancelled():  # the client is gone
            reply = _error(499, "cancelled")
        else:
            try:
                if job.steps is None:
                    job.steps = self.answerer.answer_large(job.body, job.explain)
                next(job.steps)
            except StopIteration as done:
                reply = done.value
            except Exception as e:
                reply = _error(500, f"scoring failed: {type(e).__name__}")
        if reply is not None:
            self._finish([job], [reply])
            return False
        if requeue:
            with self.cond:
                self.large.append(job)
                self.large_ready.notify()
        return True

    def _finish(self, jobs: list[Job], replies: list[Reply]) -> None:
        """Hand the answers to their loops: one wake-up per loop and batch, not per request."""
        with self.cond:
            self.admitted -= len(jobs)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Reply], Reply]]] = {}
        for job, reply in zip(jobs, replies):
            by_loop.setdefault(job.loop, []).append((job.future, reply))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                loop.call_soon_threadsafe(_resolve, answers)


def _lower_priority() -> None:
    """Run the calling thread (and the OpenMP threads LightGBM starts from it) at a lower CPU
    priority, so the threads of small requests win a busy core. Linux only; elsewhere a no-op."""
    # Only Linux treats a thread id as a "process" here; elsewhere the call could reach another process.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LARGE_NICE)


def _request_body(User: type[BaseModel]) -> dict[str, Any]:
    """The /predict body as OpenAPI: one user or a list of up to MAX_USERS (an empty list is valid
    and gets an empty list of predictions)."""
    ref = {"$ref": "#/components/schemas/User"}
    schema = {
        "anyOf": [ref, {"type": "array", "items": ref, "maxItems": MAX_USERS, "title": "Users"}],
        "title": "Body",
    }
    return {
        "required": True,
        "description": f"one user, or a list of at most {MAX_USERS:,} (an empty list gets no predictions)",
        "content": {"application/json": {"schema": schema}},
    }


def create_app(
    scorer: Scorer,
    max_body_bytes: int = MAX_BODY_BYTES,
    threads: int | None = None,
    queue_size: int = QUEUE_SIZE,
    chunk_users: int = CHUNK_USERS,
    small_body_bytes: int = SMALL_BODY_BYTES,
) -> FastAPI:
    """The service for one scorer. threads: scoring threads (default: default_threads(); 0 scores on
    the event loop); queue_size: requests admitted at once before 503; chunk_users and
    small_body_bytes: how large requests are split and which bodies count as small."""
    threads = default_threads() if threads is None else threads
    if threads < 0:
        raise InputError(f"threads must be 0 or more (got {threads})")
    if queue_size < 1:
        raise InputError(f"the queue size must be at least 1 (got {queue_size})")
    if chunk_users < 1:
        raise InputError(f"chunk_users must be at least 1 (got {chunk_users})")
    meta = scorer.bundle.metadata
    User = user_model(scorer.schema)
    pool = ScoringPool(Answerer(scorer, User, chunk_users), threads, queue_size, small_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="upgrade-predictor",
        version=meta.versions.get("upgrade-predictor", ""),
        description="Scores free users' chance to upgrade with one trained model bundle.\n\n"
        + (scorer.bundle.card or ""),
        lifespan=lifespan,
    )
    app.state.pool = pool

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The body is read by the scoring threads; only the query string is checked here.
        details = [
            {"field": _loc(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()
        ]
        details = details or [{"field": "request", "message": "invalid"}]
        return _error_response(422, f"{details[0]['field']}: {details[0]['message']}", details[:MAX_DETAILS])

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
        openapi_extra={"requestBody": _request_body(User)},
        responses={
            400: {"model": ErrorBody, "description": "the body is empty, not UTF-8 or not JSON"},
            413: {
                "model": ErrorBody,
                "description": f"body over the byte limit, or more than {MAX_USERS:,} users",
            },
            422: {"model": ErrorBody, "description": "invalid user(s): the message names the field"},
            503: {
                "model": ErrorBody,
                "description": "the scoring queue is full; retry after the seconds in Retry-After",
                "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
            },
        },
    )
    async def predict(
        request: Request,
        explain: bool = Query(False, description="add the top three signed reasons"),
    ) -> Response:
        body = await request.body()
        try:
            reply = await pool.answer(body, explain)
        except QueueFull:
            busy = _error(503, f"the service is busy ({pool.queue_size} requests waiting); retry shortly")
            reply = Reply(busy.status, busy.body, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return Response(reply.body, reply.status, reply.headers, media_type="application/json")

    add_user_schema(app, User)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


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


MODEL_ENV = "UPGRADE_PREDICTOR_SERVE_MODEL"
LIMIT_ENV = "UPGRADE_PREDICTOR_SERVE_MAX_BODY"
THREADS_ENV = "UPGRADE_PREDICTOR_SERVE_THREADS"
QUEUE_ENV = "UPGRADE_PREDICTOR_SERVE_QUEUE"
VERIFY_ENV = "UPGRADE_PREDICTOR_SERVE_VERIFY_KEY"


def _prepare_process() -> None:
    # The loaded model and libraries are long-lived: keep them out of every garbage collection, so
    # full collections stay short and do not add tens of milliseconds to a request now and then.
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn --workers), its bundle named by the environment."""

    threads = os.environ.get(THREADS_ENV)
    app = create_app(
        Scorer.load(
            os.environ[MODEL_ENV], verify_key=Path(key) if (key := os.environ.get(VERIFY_ENV)) else None
        ),
        int(os.environ.get(LIMIT_ENV, MAX_BODY_BYTES)),
        threads=int(threads) if threads else None,
        queue_size=int(os.environ.get(QUEUE_ENV, QUEUE_SIZE)),
    )
    _prepare_process()
    return app


def serve(
    scorer: Scorer,
    host: str = config.SERVE_HOST,
    port: int = config.SERVE_PORT,
    max_body_bytes: int = MAX_BODY_BYTES,
    workers: int = config.SERVE_WORKERS,
    model_path: str | None = None,
    threads: int | None = None,
    queue_size: int = QUEUE_SIZE,
    verify_key: Path | None = None,
) -> None:
    """Run the service; with workers > 1, each worker process loads the bundle at model_path (and
    checks its signature with verify_key, as the parent did).

    threads: scoring threads per process (default: the cores shared among the workers, at least 2;
    0 scores on the event loop); queue_size: requests per process waiting or in work before 503."""

    threads = default_threads(workers) if threads is None else threads
    if workers > 1 and model_path:
        os.environ[MODEL_ENV] = str(model_path)
        os.environ[LIMIT_ENV] = str(max_body_bytes)
        os.environ[THREADS_ENV] = str(threads)
        os.environ[QUEUE_ENV] = str(queue_size)
        if verify_key is not None:
            os.environ[VERIFY_ENV] = str(verify_key)
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
    app = create_app(scorer, max_body_bytes, threads=threads, queue_size=queue_size)
    _prepare_process()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
