"""How text from a file reaches a message: quoted, escaped and cut short (`excerpt`, `shown_name`), and an
error's first line (`error_line`). A cell or name never reaches the console as it is."""

from __future__ import annotations

EXCERPT_CHARS = 40  # file text quoted in a message is cut here


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A cell or name from a file, quoted and escaped for a message: control and undecodable characters
    as escapes (Python's repr), cut after `limit` characters."""
    text = str(value)
    shown = repr(text[:limit])
    return shown if len(text) <= limit else f"{shown[:-1]}...{shown[-1]}"


def shown_name(name: object) -> str:
    """A column name for a message: as it is when short and printable, else an excerpt."""
    text = str(name)
    return text if len(text) <= EXCERPT_CHARS and text.isprintable() and text.strip() else excerpt(text)


def error_line(e: BaseException, limit: int = 160) -> str:
    """An error's first line, bounded and escaped: a parse error quotes the offending row."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + " ..."
