"""Starting the service: one process, or several uvicorn workers that each load the bundle (and the
token file) named by the environment."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from .. import config
from ..scoring.scorer import Scorer
from .access import Tokens, check_bind, load_tokens
from .app import create_app
from .limits import MAX_BODY_BYTES, QUEUE_SIZE, SWITCH_INTERVAL_SECONDS
from .pool import default_threads

MODEL_ENV = "UPGRADE_PREDICTOR_SERVE_MODEL"
LIMIT_ENV = "UPGRADE_PREDICTOR_SERVE_MAX_BODY"
THREADS_ENV = "UPGRADE_PREDICTOR_SERVE_THREADS"
QUEUE_ENV = "UPGRADE_PREDICTOR_SERVE_QUEUE"
VERIFY_ENV = "UPGRADE_PREDICTOR_SERVE_VERIFY_KEY"
# The path of the token file, never a token: each worker reads the file itself.
TOKENS_ENV = "UPGRADE_PREDICTOR_SERVE_TOKEN_FILE"


def _prepare_process() -> None:
    # The loaded model and libraries are long-lived: keep them out of every garbage collection, so
    # full collections stay short and do not add tens of milliseconds to a request now and then.
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn --workers), its bundle named by the environment."""

    threads = os.environ.get(THREADS_ENV)
    app = create_app(
        Scorer.load(
            os.environ[MODEL_ENV], verify_key=Path(key) if (key := os.environ.get(VERIFY_ENV)) else None
        ),
        int(os.environ.get(LIMIT_ENV, MAX_BODY_BYTES)),
        threads=int(threads) if threads else None,
        queue_size=int(os.environ.get(QUEUE_ENV, QUEUE_SIZE)),
        tokens=load_tokens(Path(path)) if (path := os.environ.get(TOKENS_ENV)) else None,
    )
    _prepare_process()
    return app


def serve(
    scorer: Scorer,
    host: str = config.SERVE_HOST,
    port: int = config.SERVE_PORT,
    max_body_bytes: int = MAX_BODY_BYTES,
    workers: int = config.SERVE_WORKERS,
    model_path: str | None = None,
    threads: int | None = None,
    queue_size: int = QUEUE_SIZE,
    verify_key: Path | None = None,
    tokens: Tokens | None = None,
    insecure: bool = False,
) -> None:
    """Run the service; with workers > 1, each worker process loads the bundle at model_path (and
    checks its signature with verify_key, as the parent did) and reads the token file of tokens.

    threads: scoring threads per process (default: the cores shared among the workers, at least 2;
    0 scores on the event loop); queue_size: requests per process waiting or in work before 503;
    tokens: every path but /health needs one of them; without tokens, a host other than loopback is
    refused (InputError) unless insecure."""

    check_bind(host, tokens, insecure)
    threads = default_threads(workers) if threads is None else threads
    if workers > 1 and model_path:
        os.environ[MODEL_ENV] = str(model_path)
        os.environ[LIMIT_ENV] = str(max_body_bytes)
        os.environ[THREADS_ENV] = str(threads)
        os.environ[QUEUE_ENV] = str(queue_size)
        if verify_key is not None:
            os.environ[VERIFY_ENV] = str(verify_key)
        if tokens is not None:
            os.environ[TOKENS_ENV] = str(tokens.file.absolute())
        else:
            os.environ.pop(TOKENS_ENV, None)
        uvicorn.run(
            "upgrade_predictor.serving.startup:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    app = create_app(scorer, max_body_bytes, threads=threads, queue_size=queue_size, tokens=tokens)
    _prepare_process()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
