"""Online latency: the service on loopback, with large requests in flight and with many clients.

    .venv/bin/python benchmarks/bench_serving.py [--scenarios mixed,concurrent] [--seconds 20]
        [--model run/model.zip] [--threads N] [--baseline]

Starts the service (`serving.serve`, uvicorn with httptools and uvloop) in a child process on a free
loopback port, then runs each scenario for --seconds:

- mixed: one client (its own process, httpx) sends 10,000-user requests with explain, one after
  another, while single-user requests leave at --rate per second (open loop: each at its scheduled
  time, whether or not earlier ones have returned, latency counted from that time).
- concurrent: --clients clients (50) each send a single-user request, wait for the answer, and send
  the next (closed loop).
- steady: single-user requests at --rate per second (open loop), then 20 requests of 1,000 users.

Prints p50/p99/max of the single-user latency, the count of 5xx and other non-200 answers and of
connections the service dropped, the service's CPU time, and with --baseline the same scenarios with
scoring on the event loop (threads=0: small requests batched on the loop, a large request scored in
one go, as before the scoring pool) and the ratios of p99. The single-user
load uses raw keep-alive HTTP/1.1 connections on asyncio streams: a load generator far lighter than an
HTTP client library, so on a shared 2-core machine it takes little CPU from the service. Without
--model it uses the bundle of a quick training run on the real file (trained once into
benchmarks/out/serving_run/, about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from upgrade_predictor import config

OUT = Path(__file__).resolve().parent / "out"
RUN = OUT / "serving_run"


def default_model() -> Path:
    """The no-leak bundle of a quick training run on the real file (LightGBM, so explain works)."""
    model = RUN / "model_no_leak.zip"
    if not model.exists():
        subprocess.run(
            [sys.executable, "-m", "upgrade_predictor.cli", "train", "--budget", "quick", "--out", str(RUN)],
            check=True,
        )
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_users(n: int, seed: int = 0) -> list[dict]:
    df = pd.read_csv(config.default_data_path(), keep_default_na=False, na_values=config.NA_VALUES)
    df = df.drop(columns=config.TARGET).sample(n, replace=True, random_state=seed)
    return json.loads(df.to_json(orient="records"))


def start_server(model: Path, port: int, threads: int | None) -> subprocess.Popen:
    code = (
        "import sys\n"
        "from upgrade_predictor.scoring.scorer import Scorer\n"
        "from upgrade_predictor.serving import serve\n"
        "t = None if sys.argv[3] == 'default' else int(sys.argv[3])\n"
        "serve(Scorer.load(sys.argv[1]), port=int(sys.argv[2]), threads=t)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(model), str(port), "default" if threads is None else str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=(OUT / "serve.log").open("w"),
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, timeout: float = 60) -> None:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the service did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, path: str, body: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the service closed the connection")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def send(c: Connection, body: bytes) -> tuple[int, Connection]:
    """POST a body; a connection the service closed or broke counts as status 0 and is replaced."""
    try:
        return await c.post("/predict", body), c
    except (OSError, asyncio.IncompleteReadError, ValueError):
        c.close()
        return 0, await Connection(c.host, c.port).open()


@dataclass
class Result:
    latency_ms: np.ndarray
    status: np.ndarray
    seconds: float

    def line(self, label: str) -> str:
        p50, p99 = np.percentile(self.latency_ms, [50, 99])
        errors5 = int((self.status >= 500).sum())
        other = int(((self.status != 200) & (self.status < 500) & (self.status > 0)).sum())
        dropped = int((self.status == 0).sum())
        return (
            f"{label}: {len(self.status):,} requests ({len(self.status) / self.seconds:,.0f}/s), "
            f"5xx {errors5}, other non-200 {other}, connections dropped {dropped}; ms p50 {p50:.1f} p99 {p99:.1f} max {self.latency_ms.max():.1f}"
        )

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latency_ms, 99))


async def open_loop(host: str, port: int, rate: float, seconds: float, bodies: list[bytes]) -> Result:
    """Request i is due at start + i/rate; its latency runs from that moment, so time spent waiting
    for a free connection (queueing) counts too."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await Connection(host, port).open())
    latencies: list[float] = []
    statuses: list[int] = []

    async def one(due: float, body: bytes) -> None:
        c = await pool.get()
        status, c = await send(c, body)
        latencies.append(time.perf_counter() - due)
        statuses.append(status)
        pool.put_nowait(c)

    for b in bodies[:50]:  # warm-up
        await one(time.perf_counter(), b)
    latencies.clear()
    statuses.clear()
    n = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, bodies[i % len(bodies)])))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return Result(np.array(latencies) * 1000, np.array(statuses), seconds)


async def closed_loop(host: str, port: int, clients: int, seconds: float, bodies: list[bytes]) -> Result:
    """Each client sends a request, waits for its answer, and sends the next."""
    conns = [await Connection(host, port).open() for _ in range(clients)]
    for k, b in enumerate(bodies[:clients]):  # warm-up
        conns[k] = (await send(conns[k], b))[1]
    latencies: list[float] = []
    statuses: list[int] = []
    end = time.perf_counter() + seconds

    async def client(k: int, c: Connection) -> None:
        i = k
        while time.perf_counter() < end:
            t = time.perf_counter()
            status, c = await send(c, bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - t)
            statuses.append(status)
            i += clients

    start = time.perf_counter()
    await asyncio.gather(*(client(k, c) for k, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return Result(np.array(latencies) * 1000, np.array(statuses), elapsed)


def large_client(url: str, body: bytes, started: Any, stop: Any, out: Any) -> None:
    """One client sending 10,000-user requests with explain, one after another, until `stop` is set."""
    times, statuses = [], []
    with httpx.Client(timeout=300) as client:
        while not stop.is_set():
            started.set()
            t = time.perf_counter()
            r = client.post(
                url + "/predict?explain=true", content=body, headers={"content-type": "application/json"}
            )
            times.append(time.perf_counter() - t)
            statuses.append(r.status_code)
    out.put((times, statuses))


def mixed(url: str, host: str, port: int, a: argparse.Namespace, users: list[dict]) -> Result:
    large = json.dumps(users[:10_000]).encode()
    bodies = [json.dumps(u).encode() for u in users]
    ctx = mp.get_context("spawn")
    q, started, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    proc = ctx.Process(target=large_client, args=(url, large, started, stop, q))
    proc.start()
    started.wait(60)
    time.sleep(0.5)  # the first large request is in flight
    res = asyncio.run(open_loop(host, port, a.rate, a.seconds, bodies))
    stop.set()
    times, statuses = q.get(timeout=600)
    proc.join()
    print(
        f"  10,000 users with explain, one client: {len(times)} requests, statuses {sorted(set(statuses))}, "
        f"s median {np.median(times):.2f} max {max(times):.2f}"
    )
    return res


def big_requests(url: str, users: list[dict], repeats: int = 20) -> np.ndarray:
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(repeats + 2):
            body = users[(i * 1000) % (len(users) - 1000) :][:1000]
            t = time.perf_counter()
            r = client.post(url + "/predict", json=body)
            dt = time.perf_counter() - t
            assert r.status_code == 200 and len(r.json()["predictions"]) == 1000, r.text[:200]
            if i >= 2:  # the first two warm up
                times.append(dt * 1000)
    return np.array(times)


def run(model: Path, threads: int | None, a: argparse.Namespace, users: list[dict]) -> dict[str, Result]:
    port = free_port()
    host, url = "127.0.0.1", f"http://127.0.0.1:{port}"
    server = start_server(model, port, threads)
    label = (
        "scoring on the event loop (threads=0)"
        if threads == 0
        else f"scoring threads: {threads or 'default'}"
    )
    print(f"{label}; load average {os.getloadavg()[0]:.2f}")
    out: dict[str, Result] = {}
    try:
        wait_ready(url)
        bodies = [json.dumps(u).encode() for u in users]
        for scenario in a.scenarios.split(","):
            cpu = cpu_seconds(server.pid)
            if scenario == "mixed":
                out[scenario] = mixed(url, host, port, a, users)
                print(out[scenario].line(f"  mixed, single users at {a.rate:.0f}/s beside the large client"))
            elif scenario == "concurrent":
                out[scenario] = asyncio.run(closed_loop(host, port, a.clients, a.seconds, bodies))
                print(out[scenario].line(f"  {a.clients} concurrent single-user clients"))
            elif scenario == "steady":
                out[scenario] = asyncio.run(open_loop(host, port, a.rate, a.seconds, bodies))
                print(out[scenario].line(f"  steady, single users at {a.rate:.0f}/s"))
                big = big_requests(url, users)
                print(
                    f"  1,000 users per request ({len(big)} requests): ms median {np.median(big):.1f} "
                    f"p95 {np.percentile(big, 95):.1f} max {big.max():.1f}"
                )
            else:
                raise SystemExit(f"unknown scenario {scenario!r}: choose mixed, concurrent, steady")
            used = cpu_seconds(server.pid) - cpu
            per = (
                f", {used / len(out[scenario].status) * 1000:.2f} ms a request"
                if scenario == "concurrent"
                else ""
            )
            print(f"  service CPU {used:.1f} s{per}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="mixed,concurrent")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=50, help="single-user requests per second (open loop)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None, help="scoring threads [default: the service's]")
    ap.add_argument("--baseline", action="store_true", help="also run with scoring on the event loop")
    a = ap.parse_args()
    model = a.model or default_model()
    users = real_users(20_000)
    gc.collect()
    gc.freeze()  # the load generator's own pauses would count as server latency
    print(f"model {model}; {os.cpu_count()} cores")
    new = run(model, a.threads, a, users)
    if a.baseline:
        old = run(model, 0, a, users)
        for scenario in new:
            print(
                f"{scenario}: p99 on the event loop / with the pool: {old[scenario].p99 / new[scenario].p99:.1f}x"
            )


if __name__ == "__main__":
    main()
