"""The output folder of a campaign command: refused when it exists (unless --force and it is provably a
folder this command wrote), built whole in a staged folder, and the digests that tie a plan together."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def check_out(out: Path, force: bool, marker: str, what: str) -> None:
    """Refuse an existing `out` unless it is empty, or `force` is given and it holds `marker` (the record
    this command writes): --force never deletes a folder of the user's."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder name for {what}")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise InputError(f"--out {out} is the current folder or holds it; choose a new folder for {what}")
    if not any(out.iterdir()):
        return
    if not (out / marker).is_file():
        raise InputError(
            f"--out {out} exists and holds no {marker}, so it is not {what}; --force replaces only those, "
            "so choose a new folder"
        )
    if not force:
        raise InputError(
            f"--out {out} already holds {what}; choose another --out or pass --force to replace it"
        )
