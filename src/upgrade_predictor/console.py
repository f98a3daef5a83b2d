"""The one printer: every message goes to the terminal through here, user text never as markup.

Column names, values and paths come from the user's files; Rich would read "[bold]" or "[link=...]" in
them as markup and control characters would reach the terminal. `say` escapes both; a style applies
to the whole line, never to text inside it.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape as _escape_markup
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

STDERR = Console(stderr=True)


def escape(text: object) -> str:
    """Text safe to embed in Rich markup: markup escaped, control characters shown as '?'."""
    return _escape_markup(_CONTROL.sub("?", str(text)))


def plain(text: object, style: str | None = None) -> Text:
    """A Rich Text of user text: never parsed as markup, control characters replaced."""
    return Text(_CONTROL.sub("?", str(text)), style=style or "")


def say(console: Console | None, text: object, style: str | None = None) -> None:
    """Print one line of plain text (optionally styled as a whole)."""
    (console or STDERR).print(plain(text, style), highlight=False, soft_wrap=True)


def warn(console: Console | None, text: object) -> None:
    say(console, f"! {text}", style="yellow")


def error(console: Console | None, text: object) -> None:
    (console or STDERR).print(
        Text("error: ", style="bold red") + plain(text), highlight=False, soft_wrap=True
    )
