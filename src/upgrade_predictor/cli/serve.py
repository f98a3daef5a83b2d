"""`upgrade-predictor serve`: the model over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import config
from ..console import say, warn
from .app import EXAMPLES, VERIFY_KEY, app, console


@app.command(epilog=EXAMPLES["serve"])
def serve(
    model: Path = typer.Argument(..., help="model bundle (model.zip from a training run)"),
    host: str = typer.Option(config.SERVE_HOST, help="interface to listen on"),
    port: int = typer.Option(config.SERVE_PORT, help="port"),
    max_body_bytes: int = typer.Option(config.SERVE_MAX_BODY_BYTES, help="larger request bodies get 413"),
    workers: int = typer.Option(config.SERVE_WORKERS, help="worker processes (each loads the model)"),
    threads: int | None = typer.Option(
        None, help="scoring threads per process [default: the cores shared among the workers, at least 2]"
    ),
    queue_size: int = typer.Option(
        config.SERVE_QUEUE_SIZE, help="requests per process waiting or in work; more get 503 + Retry-After"
    ),
    verify_key: Path | None = VERIFY_KEY,
    token_file: Path | None = typer.Option(
        None,
        help="file of bearer tokens, one per line (# comments allowed); every path but /health then "
        "needs 'Authorization: Bearer TOKEN'",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="allow a --host other than loopback without --token-file (anyone can then ask)",
    ),
) -> None:
    """Serve the model over HTTP: POST /predict, GET /health, GET /model, docs at /docs."""
    config.check_number("--workers", workers, 1, 64)
    config.check_number("--port", port, 1, 65535)
    config.check_number("--max-body-bytes", max_body_bytes, 1)
    config.check_number("--threads", threads, 1, 256)
    config.check_number("--queue-size", queue_size, 1, 1_000_000)
    from ..scoring.scorer import Scorer
    from ..serving import serve as run_server
    from ..serving.access import check_bind, load_tokens

    tokens = load_tokens(token_file) if token_file is not None else None
    if tokens is not None and tokens.readable_by_others:
        warn(console, f"the token file {token_file} can be read by other users of this machine; chmod 600 it")
    if (open_warning := check_bind(host, tokens, insecure)) is not None:
        warn(console, open_warning)
    scorer = Scorer.load(model, verify_key=verify_key)
    needs = ", bearer token required" if tokens is not None else ""
    say(console, f"serving {model} on http://{host}:{port} (docs at /docs{needs})")
    run_server(
        scorer,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        workers=workers,
        model_path=str(model),
        threads=threads,
        queue_size=queue_size,
        verify_key=verify_key,
        tokens=tokens,
        insecure=insecure,
    )
