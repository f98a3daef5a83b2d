"""Answers as they are sent (status, JSON bytes, headers) and the error bodies of every refusal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from .limits import MAX_DETAILS


@dataclass(frozen=True)
class Reply:
    """One request's answer, ready to send: status, JSON bytes and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def to_json(content: Any) -> bytes:
    # As Starlette's JSONResponse renders; a lone surrogate (valid in JSON text, not in UTF-8) is
    # sent escaped rather than failing the answer.
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def error(
    status: int, message: str, details: list | None = None, headers: dict[str, str] | None = None
) -> Reply:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return Reply(status, to_json(body), headers or {})


def error_response(
    status: int, message: str, details: list | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    reply = error(status, message, details, headers)
    return JSONResponse(status_code=status, content=json.loads(reply.body), headers=reply.headers)


def field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def invalid(details: list[dict[str, str]]) -> Reply:
    first = details[0]
    return error(422, f"{first['field']}: {first['message']}", details[:MAX_DETAILS])
