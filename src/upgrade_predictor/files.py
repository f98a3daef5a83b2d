"""The one writer of output files and publisher of output folders: nothing is ever half-written.

A file is written to a temp file in its folder and renamed into place; a folder is built as a temp
folder and swapped in whole, the earlier one removed only once the new one is in place. A device or
pipe given as output (/dev/null, /dev/stdout, a FIFO) is written straight through: renaming over it
would replace the device with a regular file. An existing folder is replaced only when it is provably
a run folder of this tool, and no output may be one of the command's inputs or another output.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .errors import InputError

# What `run.json` of every run folder this tool writes holds; a folder without it is not replaced.
RUN_MARKER = "run.json"


def _is_special(path: Path) -> bool:
    """A device node, FIFO or socket: written in place, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _cannot_write(path: Path, e: OSError) -> InputError:
    return InputError(f"cannot write {path}: {e.strerror or e}; choose an output path in a writable folder")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"cannot write {path}: {path.parent} is a file, not a folder") from None
    except NotADirectoryError:
        raise InputError(f"cannot write {path}: a part of {path.parent} is a file, not a folder") from None
    except OSError as e:
        raise _cannot_write(path, e) from None


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call write(file) on a temp file in the target folder, then rename: no half-written output."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name")
    if _is_special(path):
        try:
            with open(path, "wb") as f:
                write(f)
        except OSError as e:
            raise _cannot_write(path, e) from None
        return
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(Path(path), lambda f: f.write(text.encode()))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def temp_folder(dest: Path) -> Path:
    """A new empty folder beside dest, to be filled and then published as dest."""
    _make_parent(dest)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as e:
        raise _cannot_write(dest, e) from None


def publish_folder(tmp: Path, dest: Path) -> Path:
    """Replace dest by the finished temp folder; an earlier dest is removed only afterwards."""
    old = None
    if dest.exists():
        # A fresh name: a `.old` folder left by a killed run must not block this one.
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        raise
    os.chmod(dest, 0o755)  # mkdtemp makes owner-only folders; outputs are meant to be shared
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


@contextlib.contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """Build an output folder in a temp folder beside `dest`; publish it as `dest` when the block ends
    normally, remove it when it fails or is interrupted, so nothing half-built is ever left."""
    tmp = temp_folder(dest)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_folder(tmp, dest)


def is_run_folder(path: Path, marker: str = RUN_MARKER) -> bool:
    """True when `path` is a folder this tool wrote: it holds its record `marker` (run.json for a run),
    a JSON object."""
    record = Path(path) / marker
    try:
        return record.is_file() and isinstance(json.loads(record.read_text()), dict)
    except (OSError, ValueError):
        return False


def replaceable_folder(dest: Path, force: bool, what: str = "a run", marker: str = RUN_MARKER) -> None:
    """Refuse a destination folder that exists, unless `force` is given and it is provably `what`: a
    folder holding the record `marker` that the command writes (run.json for a run).

    `--force` must never delete a user's folder: only an empty folder or one of the command's own is
    replaced, and never the current folder or one that contains it."""
    dest = Path(dest)
    if not dest.exists():
        return
    if not dest.is_dir():
        raise InputError(f"{dest} is a file; give a folder name for {what}")
    if Path.cwd().resolve().is_relative_to(dest.resolve()):
        raise InputError(f"{dest} is the current folder or holds it; choose a new folder for {what}")
    if not any(dest.iterdir()):
        return
    if not is_run_folder(dest, marker):
        kind = "a run folder" if marker == RUN_MARKER else f"{what} (it holds no {marker})"
        raise InputError(
            f"{dest} exists and is not {kind} of upgrade-predictor; --force replaces only those, "
            "so choose a new folder"
        )
    if not force:
        raise InputError(f"{dest} already holds {what}; choose another --out or pass --force to replace it")


def _is_glob(value: Path | str) -> bool:
    return isinstance(value, str) and any(c in value for c in "*?[")


def _values(value: Path | str | Iterable[Path | str] | None) -> list[Path | str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)


def _paths(value: Path | str | Iterable[Path | str] | None) -> list[Path]:
    """The files an input names: itself, or the files of a glob (one given as text)."""
    out: list[Path] = []
    for v in _values(value):
        out += [Path(p) for p in glob.glob(str(v), recursive=True)] if _is_glob(v) else [Path(v)]
    return out


def _patterns(value: Path | str | Iterable[Path | str] | None) -> list[str]:
    """The globs an input names, as absolute patterns: a new file matching one would join that input."""
    return [os.path.abspath(str(v)) for v in _values(value) if _is_glob(v)]


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: compare where they would be
        return a.resolve() == b.resolve()


def check_outputs(
    outputs: Mapping[str, Path | str | None],
    inputs: Mapping[str, Path | str | Iterable[Path | str] | None],
) -> None:
    """Refuse an output that is one of the inputs, lies inside an input folder or matches an input glob,
    or is the same file as another output. An input may be a list (every file an event mapping names).

    Called before any work, so a mistyped --out never overwrites the model or the data. Devices and
    pipes (/dev/null, /dev/stdout) may be shared: they are written through, never replaced."""
    outs = [(name, p) for name, v in outputs.items() for p in _paths(v)]
    for name, out in outs:
        if _is_special(out):
            continue
        for in_name, value in inputs.items():
            for src in _paths(value):
                if _same(out, src):
                    raise InputError(f"{name} {out} is the same file as {in_name}; choose another path")
                if src.is_dir() and out.resolve().is_relative_to(src.resolve()):
                    raise InputError(f"{name} {out} lies inside {in_name} {src}; choose another path")
            for pattern in _patterns(value):
                if fnmatch.fnmatchcase(str(out.resolve()), pattern) or fnmatch.fnmatchcase(
                    os.path.abspath(out), pattern
                ):
                    raise InputError(
                        f"{name} {out} matches the glob {pattern} of {in_name}, so it would be read as part "
                        "of that input next time; choose another path"
                    )
    for i, (name, out) in enumerate(outs):
        for other, path in outs[i + 1 :]:
            if not _is_special(out) and _same(out, path):
                raise InputError(f"{name} and {other} are the same file ({out}); give them different paths")
