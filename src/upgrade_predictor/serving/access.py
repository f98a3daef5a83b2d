"""Who may ask the service: the bearer tokens of a token file, the gate that checks them before a
request reaches the app, and the rule that a service reachable from other machines needs tokens.

A token file holds one token per line; blank lines and lines starting with # are ignored. Only the
SHA-256 of each token is kept, and a presented token is compared with every one of them in constant
time, so neither the answer's timing nor its content tells which token (or how much of one) matched.
No message, log line or reply ever holds a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .replies import error_response

MIN_TOKEN_CHARS = 16
MAX_TOKEN_FILE_BYTES = 64 * 1024
# RFC 6750 b64token: what a client can send after "Bearer " unchanged.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
OPEN_PATHS = frozenset({"/health"})
_EXAMPLE = "e.g. from `openssl rand -hex 32`"


@dataclass(frozen=True)
class Tokens:
    """The tokens of one file, as digests; readable_by_others: the group or others may read the file."""

    file: Path
    digests: tuple[bytes, ...] = field(repr=False)
    readable_by_others: bool = False

    def accept(self, presented: bytes) -> bool:
        seen = hashlib.sha256(presented).digest()
        matched = False
        for digest in self.digests:  # every one, whether or not an earlier one matched
            matched |= hmac.compare_digest(digest, seen)
        return matched


def load_tokens(path: Path) -> Tokens:
    """The tokens of a token file; InputError (naming the file and line, never a token) when the
    file cannot be read, holds no token, or a line is not a token of at least MIN_TOKEN_CHARS."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
            mode = os.fstat(f.fileno()).st_mode
    except OSError as e:
        raise InputError(f"cannot read the token file {path}: {e.strerror or type(e).__name__}") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise InputError(
            f"the token file {path} is over {MAX_TOKEN_FILE_BYTES // 1024} KiB; it should hold tokens only"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the token file {path} is not UTF-8 text") from None
    digests = []
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not _TOKEN.fullmatch(token):
            raise InputError(
                f"line {number} of the token file {path} is not a token: use letters, digits and "
                f"-._~+/ only ({_EXAMPLE})"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise InputError(
                f"line {number} of the token file {path} is shorter than {MIN_TOKEN_CHARS} characters ({_EXAMPLE})"
            )
        digests.append(hashlib.sha256(token.encode()).digest())
    if not digests:
        raise InputError(
            f"the token file {path} holds no token (one per line; blank lines and # comments are ignored)"
        )
    others = bool(stat.S_IMODE(mode) & (stat.S_IRGRP | stat.S_IROTH))
    return Tokens(Path(path), tuple(digests), readable_by_others=others)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach host: localhost or a loopback address (a name that is
    not localhost may resolve to anything, so it counts as reachable from elsewhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Tokens | None, insecure: bool) -> str | None:
    """Refuse (InputError) to serve a non-loopback host without tokens unless insecure; the warning
    to print when insecure lets it, else None."""
    if tokens is not None or is_loopback(host):
        return None
    if not insecure:
        raise InputError(
            f"refusing to listen on {host} without a token: other machines could score users and read "
            "the model; pass --token-file FILE, or --insecure to serve it open anyway"
        )
    return (
        f"listening on {host} without a token (--insecure): anyone who can reach it can score users "
        "and read the model"
    )


class TokenGate:
    """Answer 401 to every request but those of OPEN_PATHS without an accepted bearer token, before
    the app (or the body limit) reads a byte of its body (pure ASGI)."""

    def __init__(self, app: Any, tokens: Tokens):
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        presented = _bearer(scope)
        if presented is not None and self.tokens.accept(presented):
            return await self.app(scope, receive, send)
        if presented is None:
            message, challenge = (
                "this service needs a token: send the header Authorization: Bearer TOKEN",
                "Bearer",
            )
        else:
            message, challenge = "the bearer token is not accepted", 'Bearer error="invalid_token"'
        reply = error_response(401, message, headers={"WWW-Authenticate": challenge})
        await reply(scope, receive, send)


def _bearer(scope: Any) -> bytes | None:
    """The token of the request's Authorization: Bearer header, or None without one."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            credentials = credentials.strip()
            return credentials if scheme.lower() == b"bearer" and credentials else None
    return None
