"""What both HTML reports share: the Jinja environment with the number formats, and the one writer."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from rich.console import Console

from .. import __version__
from ..console import say
from ..files import write_text_atomic
from .format import interval, money, num, pct, signed

REPORT_FILE = "report.html"


def render_page(template: str, sections: list[Any], **context: Any) -> str:
    """One self-contained page from a template of the package, numbered sections and the formats."""
    env = Environment(
        loader=PackageLoader("upgrade_predictor", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a name the page does not have fails the build, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, num=num, money=money, signed=signed, interval=interval)
    env.globals.update(pct=pct, num=num, money=money, interval=interval, signed=signed)
    return env.get_template(template).render(
        sections=sections,
        headings={s.anchor: f"{i}. {s.title}" for i, s in enumerate(sections, 1)},
        version=__version__,
        generated=datetime.now().isoformat(timespec="seconds"),
        **context,
    )


def write_report(run_dir: Path, html: str, console: Console, started: float, name: str | None) -> Path:
    """Write run_dir/report.html atomically and say where it will be once the run is published."""
    out = run_dir / REPORT_FILE
    write_text_atomic(out, html)
    shown = run_dir.parent / name / REPORT_FILE if name else out
    seconds = time.perf_counter() - started
    say(console, f"report written in {seconds:.1f} s: {shown} ({len(html) / 1e6:.1f} MB)")
    return out
