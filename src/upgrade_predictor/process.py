"""How a command ends: one exception path from any error to one message and an exit code.

Bad input (InputError, a file that cannot be read or written, a usage error) prints one sentence and
exits 2. Anything else is a bug: it prints "internal error", writes the trace to a log file and exits
70. SIGTERM (a scheduler's or container's stop) is turned into the same unwinding as Ctrl-C, so temp
files and half-built folders are removed on the way out; worker processes are stopped either way. A
signal that lands inside a DuckDB query comes back as DuckDB's InterruptException ("Query interrupted"),
or as whatever error the interrupted library raises on its way out: once a signal has arrived, any
ending is an interruption (exit 130 or 143), never an internal error.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console

from . import config
from .console import error, warn
from .errors import InputError


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (every `finally` and cleanup runs), exits 143."""


_terminated = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    # Raised in the main thread at the next bytecode: the same path as Ctrl-C, which libraries
    # (joblib, Optuna, Dask) already clean up after.
    raise Terminated()


def _is_interruption(e: BaseException) -> bool:
    """Whether an error is a signal's: DuckDB's interrupt (looked up only if DuckDB was loaded), or any
    error raised after SIGTERM arrived or inside the unwinding of one."""
    if _terminated:
        return True
    duckdb = sys.modules.get("duckdb")
    interrupt = getattr(duckdb, "InterruptException", None) if duckdb is not None else None
    seen: set[int] = set()
    while e is not None and id(e) not in seen:  # the signal may be the cause or context of what ended
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt) or (interrupt is not None and isinstance(e, interrupt)):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


def stop_workers() -> None:
    """Stop joblib's reusable process pool: its workers outlive the parent killed by a signal."""
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None) if loky is not None else None
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def os_error_message(e: OSError) -> str:
    """One sentence for a file the user named that cannot be read or written."""
    what = e.strerror or str(e)
    if e.filename is not None:
        return f"{e.filename}: {what}"
    return f"{what}; nothing was written"


def _log_internal(exc: BaseException) -> Path | None:
    """Write the trace to a log file; None when even that fails (the trace then goes to stderr)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for folder in (config.log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"upgrade-predictor-{stamp}-{os.getpid()}.log"
            path.write_text(f"upgrade-predictor {' '.join(sys.argv[1:])}\n\n{text}")
            return path
        except OSError:
            continue
    return None


def run(command: Callable[..., Any], console: Console) -> int:
    """Run a Click/Typer command without its own error handling; map every ending to an exit code."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = command(standalone_mode=False)
        code = result if isinstance(result, int) else 0
        # Typer turns Ctrl-C into exit code 130 itself; SIGTERM arrives the same way.
        return _interrupted(console) if _terminated or code == config.EXIT_INTERRUPTED else code
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return _interrupted(console)
    except typer.TyperException as e:  # usage errors: a bad option value, a missing argument
        message = str(e.format_message())  # type: ignore[attr-defined]
        ctx = getattr(e, "ctx", None)
        if message:  # empty when the help was shown for a bare command
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            error(console, message + hint)
        return config.EXIT_INPUT
    except InputError as e:
        if _terminated:  # a guard that met the interrupted query: the signal is the cause
            return _interrupted(console)
        error(console, e)
        return config.EXIT_INPUT
    except KeyboardInterrupt:
        return _interrupted(console)
    except OSError as e:
        if _terminated:
            return _interrupted(console)
        error(console, os_error_message(e))
        return config.EXIT_INPUT
    except RecursionError:
        error(console, "an input is nested too deeply to read; check the file")
        return config.EXIT_INPUT
    except Exception as e:  # anything else is a bug: one line here, the trace in a log file
        if _is_interruption(e):
            return _interrupted(console)
        log = _log_internal(e)
        where = f"the trace is in {log}" if log else "".join(traceback.format_exception(e))
        error(console, f"internal error ({type(e).__name__}: {e}); {where}; please report it")
        return config.EXIT_INTERNAL
    finally:
        stop_workers()
        signal.signal(signal.SIGTERM, previous)


def _interrupted(console: Console) -> int:
    if _terminated:
        warn(console, "stopped by SIGTERM; nothing half-written was left behind")
        return config.EXIT_TERMINATED
    warn(console, "interrupted; nothing half-written was left behind")
    return config.EXIT_INTERRUPTED
