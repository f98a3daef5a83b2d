"""The scoring threads: two lanes (small requests batched together, large ones a chunk per turn) and a
bounded queue, answering off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass

from .answerer import Answerer
from .limits import LARGE_NICE, QUEUE_SIZE, SMALL_BATCH_BYTES, SMALL_BODY_BYTES
from .replies import Reply, error


def default_threads(workers: int = 1) -> int:
    """Scoring threads per service process: the usable cores shared among the worker processes, and at
    least two, so one thread is always left for small requests."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores // max(1, workers))


class QueueFull(Exception):
    """More requests wait than the queue holds."""


@dataclass
class Job:
    """One admitted request: its bytes, and where its answer goes (a future on the caller's loop)."""

    body: bytes
    explain: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Reply]
    steps: Generator[None, None, Reply] | None = None  # a large request, once started


def _resolve(answers: list[tuple[asyncio.Future[Reply], Reply]]) -> None:
    for future, reply in answers:
        if not future.done():
            future.set_result(reply)


class ScoringPool:
    """Threads that answer requests off the event loop, with two lanes and a bounded queue.

    Small bodies wait in the small lane and are answered together (requests that arrive while a batch
    is scored form the next one, so batches grow with the load). Large ones advance a chunk per turn,
    round robin. With two threads or more, one thread answers only small requests and the others only
    large ones, at a lower CPU priority, so a single user never waits for a chunk of a large request;
    with one thread, small batches go between the chunks. Requests admitted (waiting or in work) are
    bounded by queue_size. With threads=0 everything runs on the event loop, a large request in one
    go, as the service did before the pool (kept to measure what the pool gains)."""

    def __init__(
        self,
        answerer: Answerer,
        threads: int,
        queue_size: int = QUEUE_SIZE,
        small_body_bytes: int = SMALL_BODY_BYTES,
    ):
        self.answerer = answerer
        self.threads = threads
        self.queue_size = queue_size
        self.small_body_bytes = small_body_bytes
        lock = threading.Lock()
        self.cond = threading.Condition(lock)  # small work waiting (and all of it with one thread)
        self.large_ready = self.cond if threads == 1 else threading.Condition(lock)
        self.small: deque[Job] = deque()
        self.large: deque[Job] = deque()
        self.admitted = 0
        self.closed = False
        self.workers: list[threading.Thread] = []
        self.draining: asyncio.Task[None] | None = None  # threads=0: the loop's own worker
        self.kick_pending = False

    @property
    def waiting(self) -> int:
        """Requests queued and not yet picked (large ones between chunks included)."""
        with self.cond:
            return len(self.small) + len(self.large)

    async def answer(self, body: bytes, explain: bool) -> Reply:
        """The request's answer; QueueFull when queue_size requests are already admitted."""
        loop = asyncio.get_running_loop()
        job = Job(body, explain, loop, loop.create_future())
        with self.cond:
            if self.admitted >= self.queue_size:
                raise QueueFull
            self.admitted += 1
            small = len(body) <= self.small_body_bytes
            (self.small if small else self.large).append(job)
            if self.threads == 0:
                if self.draining is None or self.draining.done():
                    self.draining = loop.create_task(self._drain())
            else:
                if not self.workers:
                    self._start()
                if not small:
                    self.large_ready.notify()
                elif not self.kick_pending:
                    # Wake the small lane once the loop has read every request already on the sockets,
                    # so they form one batch (a call's overhead dwarfs the cost of a row).
                    self.kick_pending = True
                    loop.call_soon(self._kick)
        return await job.future

    def _kick(self) -> None:
        with self.cond:
            self.kick_pending = False
            self.cond.notify()

    def _start(self) -> None:
        roles = ["both"] if self.threads == 1 else ["small"] + ["large"] * (self.threads - 1)
        for k, role in enumerate(roles):
            t = threading.Thread(target=self._work, args=(role,), name=f"scoring-{role}-{k}", daemon=True)
            t.start()
            self.workers.append(t)

    def close(self) -> None:
        """Let the threads finish their current step and stop."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            self.large_ready.notify_all()

    def _take(self, role: str) -> tuple[list[Job], bool] | None:
        """Under the lock: a small batch or one large request for a thread of this role, or None."""
        if role == "large":
            return ([self.large.popleft()], True) if self.large else None
        if self.small:
            batch = [self.small.popleft()]
            size = len(batch[0].body)
            while self.small and size + len(self.small[0].body) <= SMALL_BATCH_BYTES:
                batch.append(self.small.popleft())
                size += len(batch[-1].body)
            return batch, False
        if self.large and role == "both":
            return [self.large.popleft()], True
        return None

    def _work(self, role: str) -> None:
        ready = self.large_ready if role == "large" else self.cond
        if role == "large":
            _lower_priority()
        while True:
            with ready:
                while (picked := None if self.closed else self._take(role)) is None:
                    if self.closed:
                        return
                    ready.wait()
            jobs, large = picked
            if large:
                self._step(jobs[0])
            else:
                self._answer_small(jobs)

    async def _drain(self) -> None:
        while True:
            await asyncio.sleep(0)  # let requests already read off the sockets join this batch
            with self.cond:
                picked = self._take("both")
            if picked is None:
                return
            jobs, large = picked
            if not large:
                self._answer_small(jobs)
                continue
            while self._step(jobs[0], requeue=False):
                pass

    def _answer_small(self, jobs: list[Job]) -> None:
        try:
            replies = self.answerer.answer_small([(j.body, j.explain) for j in jobs])
        except Exception as e:  # every waiting request gets an answer, the thread goes on
            if len(jobs) > 1:  # answer each alone, so one request cannot fail the others
                for job in jobs:
                    self._answer_small([job])
                return
            replies = [error(500, f"scoring failed: {type(e).__name__}")]
        self._finish(jobs, replies)

    def _step(self, job: Job, requeue: bool = True) -> bool:
        """Advance a large request by one chunk; put it back in line (or, with requeue=False, return
        True to be called again), or answer it and return False."""
        reply: Reply | None = None
        if job.future.cancelled():  # the client is gone
            reply = error(499, "cancelled")
        else:
            try:
                if job.steps is None:
                    job.steps = self.answerer.answer_large(job.body, job.explain)
                next(job.steps)
            except StopIteration as done:
                reply = done.value
            except Exception as e:
                reply = error(500, f"scoring failed: {type(e).__name__}")
        if reply is not None:
            self._finish([job], [reply])
            return False
        if requeue:
            with self.cond:
                self.large.append(job)
                self.large_ready.notify()
        return True

    def _finish(self, jobs: list[Job], replies: list[Reply]) -> None:
        """Hand the answers to their loops: one wake-up per loop and batch, not per request."""
        with self.cond:
            self.admitted -= len(jobs)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Reply], Reply]]] = {}
        for job, reply in zip(jobs, replies):
            by_loop.setdefault(job.loop, []).append((job.future, reply))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                loop.call_soon_threadsafe(_resolve, answers)


def _lower_priority() -> None:
    """Run the calling thread (and the OpenMP threads LightGBM starts from it) at a lower CPU
    priority, so the threads of small requests win a busy core. Linux only; elsewhere a no-op."""
    # Only Linux treats a thread id as a "process" here; elsewhere the call could reach another process.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LARGE_NICE)
