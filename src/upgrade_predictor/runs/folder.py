"""The run folder of every kind: staged beside its destination, each file written atomically, the
bundles signed inside the staged folder, published whole; and read back with messages that say how
to get a readable run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ..errors import InputError
from ..files import (
    check_outputs,
    replaceable_folder,
    staged_folder,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ..sources.messages import error_line


@dataclass(frozen=True)
class Wording:
    """How a kind's folder is named in messages, and the command that writes a readable one."""

    run: str  # "a training run"
    folder: str  # "run folder"
    retrain: str  # "upgrade-predictor train"
    first: str  # "upgrade-predictor train", with what it needs


def destination(
    out: Path | str | None, force: bool, inputs: Mapping[str, Path | str | Iterable[Path | str] | None]
) -> Path:
    """Where the run will be published (runs/<time> without --out); an existing run is replaced only
    with --force, and the folder may not be one of the inputs."""
    dest = Path(out) if out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    replaceable_folder(dest, force)
    check_outputs({"--out": dest}, inputs)
    return dest


@contextlib.contextmanager
def published(dest: Path) -> Iterator[RunWriter]:
    """A writer into a staged folder, published as `dest` when the block ends normally and removed
    when it fails, so a reader never sees a half-written run."""
    with staged_folder(dest) as out:
        out.chmod(0o755)
        yield RunWriter(out, dest.name)


class Clock(Protocol):
    def mark(self, stage: str | None) -> None: ...


@dataclass
class RunWriter:
    """Writes the files of one run folder (to be published as `name`); `sign` signs every bundle it
    wrote."""

    dir: Path
    name: str = ""
    bundles: list[Path] = field(default_factory=list)

    def finish(self, finish: Callable[[Path, str], object] | None, clock: Clock) -> None:
        """Run `finish(folder, name)` (the report) on the complete folder before it is published, so a
        reader never sees a run without it; timed as the stage "report"."""
        if finish is not None:
            clock.mark("report")
            finish(self.dir, self.name)

    def json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.dir / name, obj)

    def frame(self, name: str, df: pd.DataFrame) -> None:
        """A table, as CSV or Parquet by the file's name, without the index."""
        if name.endswith(".csv"):
            write_text_atomic(self.dir / name, df.to_csv(index=False))
        else:
            write_atomic(self.dir / name, lambda f: df.to_parquet(f, index=False))

    def bundle(self, name: str, estimator: Any, metadata: Any) -> None:
        from ..bundle import save_bundle

        save_bundle(self.dir / name, estimator, metadata, "")
        self.bundles.append(self.dir / name)

    def sign(self, key: Path | None) -> None:
        """Sign every bundle with the private key, when one is given: inside the staged folder, so
        bundle and signature publish together."""
        if key is None:
            return
        from ..bundle import sign_bundle

        for path in self.bundles:
            sign_bundle(path, key)


_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "true/false",
    type(None): "null",
}


@dataclass(frozen=True)
class RunReader:
    """Reads the files of one run folder of a kind, naming the file and the way to a readable run."""

    dir: Path
    wording: Wording

    def require(self, files: list[str]) -> None:
        missing = [f for f in files if not (self.dir / f).exists()]
        if missing:
            raise InputError(
                f"{self.dir}: not a complete {self.wording.folder} (missing {', '.join(missing)}); "
                f"run '{self.wording.first}' first"
            )

    def json(self, name: str) -> dict[str, Any]:
        return json_object(self.dir / name, self.wording.retrain, self.wording.run)

    def csv(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.dir / name)

    def parquet(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.dir / name)


def json_object(
    path: Path, retrain: str = "upgrade-predictor train", kind: str = "a training run"
) -> dict[str, Any]:
    """A run's JSON file, which must hold one object; anything else says how to get a readable run."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: damaged JSON ({error_line(e)}); retrain with '{retrain}'") from None
    if not isinstance(d, dict):
        raise InputError(
            f"{path}: holds a JSON {_JSON_KINDS.get(type(d), 'value')}, not the object {kind} writes; "
            f"retrain with '{retrain}'"
        )
    return d
