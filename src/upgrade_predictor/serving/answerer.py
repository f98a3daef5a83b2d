"""Everything between a request's bytes and its answer's bytes: reading the JSON, checking each user's
types, scoring with the bundle's Scorer and writing the answer, small requests together and large ones
a chunk at a time."""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from .. import config
from ..errors import InputError
from ..schema import ValidatedRows
from ..scoring.scorer import Scored, Scorer
from .limits import CHUNK_USERS, GIL_SLICE_USERS, MAX_DETAILS, MAX_USERS
from .replies import Reply, error, field_name, invalid, to_json


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
            return error(400, "the body is empty; send one user (a JSON object) or a list of users")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            return error(400, f"the body is not valid UTF-8 (byte {e.start}); send JSON text in UTF-8")
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            return error(400, f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
        except (ValueError, RecursionError) as e:  # e.g. nested too deep, an integer too long
            return error(400, f"the body is not valid JSON: {e}")

    def _value(self, body: bytes) -> Any:
        """The body's JSON value when it is one user or a list of at most MAX_USERS, else the Reply."""
        value = self.read(body)
        if isinstance(value, Reply):
            return value
        bad = self._shape(value)
        return value if bad is None else bad

    def _shape(self, value: Any) -> Reply | None:
        if not isinstance(value, (dict, list)):
            return error(422, "the body must be one user (a JSON object) or a list of users")
        if isinstance(value, list) and len(value) > MAX_USERS:
            return error(413, f"{len(value):,} users in one request; send at most {MAX_USERS:,}")
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
            details.append({"field": field_name(loc), "message": e.get("msg", "")})
        return details or [{"field": "body", "message": "invalid"}]

    def parse(self, body: bytes) -> Parsed | Reply:
        """Read and type-check a whole body at once (small requests)."""
        value = self._value(body)
        if isinstance(value, Reply):
            return value
        stop = len(value) if isinstance(value, list) else 1
        records, details = self._check(value, 0, stop, _has_surrogate_escape(body))
        return invalid(details) if details else Parsed(records, isinstance(value, dict))

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
            return invalid(self.problems(scored.rows, parsed.single, 0, MAX_DETAILS, start, stop))
        out = self.items(scored, parsed.records, first)
        return Reply(200, to_json(out[0] if parsed.single else {"predictions": out}))

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
                replies[k] = Reply(200, to_json({"predictions": []}))
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
                    replies[k] = error(422, str(e))
                continue
            # Where each request's scores start: scores are kept for valid rows only.
            position = np.concatenate(([0], np.cumsum(scored.valid))).tolist()
            start = 0
            for k in group:
                replies[k] = self.answer(scored, ready[k], start, position[start])
                start += len(ready[k].records)
        return [r if r is not None else error(500, "the request was not answered") for r in replies]

    def answer_large(self, body: bytes, explain: bool) -> Generator[None, None, Reply]:
        """Answer one large request a chunk at a time, yielding between chunks so that small requests
        waiting for this thread go first: check every user's types, then score chunk by chunk."""
        value = self._value(body)
        if isinstance(value, Reply):
            return value
        if isinstance(value, dict):  # one user with a large body (e.g. many extra fields)
            return self._answer_one(value, _has_surrogate_escape(body), explain)
        if not value:
            return Reply(200, to_json({"predictions": []}))
        chunks = yield from self._check_chunks(value, _has_surrogate_escape(body))
        del value
        if isinstance(chunks, Reply):
            return chunks
        return (yield from self._score_chunks(chunks, explain))

    def _answer_one(self, value: dict[str, Any], escaped: bool, explain: bool) -> Reply:
        records, found = self._check(value, 0, 1, escaped)
        if found:
            return invalid(found)
        try:
            return self.answer(
                self.scorer.score_frame(self.frame(records), explain=explain), Parsed(records, True)
            )
        except InputError as e:
            return error(422, str(e))

    def _check_chunks(
        self, value: list[Any], escaped: bool
    ) -> Generator[None, None, list[list[dict[str, Any]]] | Reply]:
        """The records of a list of users, a chunk at a time, or the reply naming their type problems."""
        chunks: list[list[dict[str, Any]]] = []
        details: list[dict[str, str]] = []
        for start in range(0, len(value), self.chunk):
            yield
            records, found = self._check(value, start, start + self.chunk, escaped)
            chunks.append(records)
            details += found
            if len(details) >= MAX_DETAILS:
                break
        return invalid(details) if details else chunks

    def _score_chunks(
        self, chunks: list[list[dict[str, Any]]], explain: bool
    ) -> Generator[None, None, Reply]:
        """The answer to type-checked records, scored a chunk at a time; once a row is invalid, the
        other chunks are only checked, to name more problems."""
        details: list[dict[str, str]] = []
        parts: list[str] = []
        offset = 0
        for records in chunks:
            yield
            frame = self.frame(records)
            if details:
                rows = self.scorer.schema.validate_rows(frame)
                details += self.problems(rows, False, offset, MAX_DETAILS - len(details))
            else:
                try:
                    scored = self.scorer.score_frame(frame, explain=explain)
                except InputError as e:
                    return error(422, str(e))
                if scored.valid.all():
                    items = self.items(scored, records)
                    for i in range(0, len(items), GIL_SLICE_USERS):
                        parts.append(to_json(items[i : i + GIL_SLICE_USERS]).decode()[1:-1])
                else:
                    details += self.problems(scored.rows, False, offset, MAX_DETAILS)
            offset += len(records)
            if len(details) >= MAX_DETAILS:
                break
        if details:
            return invalid(details)
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
