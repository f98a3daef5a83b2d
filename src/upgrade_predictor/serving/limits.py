"""The service's limits and tuning constants: body and request sizes, the queue, the two lanes."""

from __future__ import annotations

from .. import config

MAX_BODY_BYTES = config.SERVE_MAX_BODY_BYTES
MAX_USERS = config.SERVE_MAX_USERS
QUEUE_SIZE = config.SERVE_QUEUE_SIZE
RETRY_AFTER_SECONDS = 1
SMALL_BODY_BYTES = 16 * 1024  # bodies up to this size (about 80 users) take the small-request lane
SMALL_BATCH_BYTES = 256 * 1024  # small requests scored together as one frame, at most this much JSON
CHUNK_USERS = 1_000  # a large request is checked and scored this many users at a time
# Users per call of a C function that holds the GIL (pydantic checks, JSON encoding): a few
# milliseconds at most, so the event loop is never held up longer than that.
GIL_SLICE_USERS = 200
MAX_DETAILS = 50  # field problems listed in one 422
LARGE_NICE = 10  # CPU priority (nice) of the threads that score large requests
# The loop and the scoring threads share the GIL; a shorter switch interval lets the loop answer a
# small request within about a millisecond while a thread runs Python code for a large one.
SWITCH_INTERVAL_SECONDS = 0.001
