"""The page model both HTML reports share: numbered sections, the Jinja environment with the number
formats, the build stamp (version, date, build time) and the one writer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from rich.console import Console

from ..console import say
from ..files import write_text_atomic
from ..version import __version__
from .format import interval, money, num, pct, signed

REPORT_FILE = "report.html"
# Stands in for the build time until the page is written: the time then includes drawing and rendering.
_BUILD_SECONDS = "\x00build-seconds\x00"


@dataclass(frozen=True)
class Section:
    anchor: str  # the heading's id, linked from the contents and the recommendations
    title: str


class PageRun(Protocol):
    """What every report reads of its run: the folder, run.json's record and the metrics."""

    @property
    def dir(self) -> Path: ...
    @property
    def info(self) -> Any: ...
    @property
    def metrics(self) -> Any: ...


def render_page(
    template: str, sections: list[Section], run: PageRun, name: str | None, **context: Any
) -> str:
    """One self-contained page of a run from a template of the package, numbered sections and the
    formats; `name` is the run's published name (default: its folder's).

    The page states the package's version, when it was generated and (once written) how long it took."""
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
        run=run,
        info=run.info,
        m=run.metrics,
        run_name=name or run.dir.name,
        headings={s.anchor: f"{i}. {s.title}" for i, s in enumerate(sections, 1)},
        version=__version__,
        generated=datetime.now().isoformat(timespec="seconds"),
        build_seconds=_BUILD_SECONDS,
        **context,
    )


@dataclass(frozen=True)
class PageBuild:
    """One report being built: the run folder it is written to, the console it speaks on, the run's
    published name (when the folder is still a temp folder about to be renamed) and when the build
    started, which dates the build time the page states."""

    run_dir: Path
    console: Console
    name: str | None
    started: float

    @classmethod
    def start(cls, run_dir: str | Path, console: Console | None, name: str | None) -> PageBuild:
        return cls(Path(run_dir), console or Console(stderr=True), name, time.perf_counter())

    def write(self, html: str) -> Path:
        """Stamp the build time on the page, write run_dir/report.html atomically and say where it
        will be once the run is published."""
        seconds = time.perf_counter() - self.started
        html = html.replace(_BUILD_SECONDS, num(seconds, 1))
        out = self.run_dir / REPORT_FILE
        write_text_atomic(out, html)
        shown = self.run_dir.parent / self.name / REPORT_FILE if self.name else out
        say(self.console, f"report written in {seconds:.1f} s: {shown} ({len(html) / 1e6:.1f} MB)")
        return out
