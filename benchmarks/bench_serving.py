"""Online latency: the service on loopback under a steady open-loop load of single-user requests.

    .venv/bin/python benchmarks/bench_serving.py [--rate 200] [--seconds 30] [--model run/model.zip]

Starts `upgrade-predictor serve` in a child process, sends --rate requests per second for --seconds
over keep-alive connections (each at its scheduled time, whether or not earlier ones have returned,
with latency counted from that time, so slow answers cannot hide queueing), then times requests of
1,000 users with httpx. Prints p50/p95/p99/max and the error count.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from upgrade_predictor import config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scoring import default_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_users(n: int, seed: int = 0) -> list[dict]:
    df = pd.read_csv(config.default_data_path(), keep_default_na=False, na_values=config.NA_VALUES)
    df = df.drop(columns=config.TARGET).sample(n, replace=True, random_state=seed)
    return json.loads(df.to_json(orient="records"))


async def wait_ready(client: httpx.AsyncClient, url: str, timeout: float = 60) -> None:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        try:
            if (await client.get(url + "/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the service did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a load generator far lighter than
    an HTTP client library, so on a shared 2-core machine it takes little CPU from the service."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def load(
    url: str, rate: float, seconds: float, users: list[dict], connections: int = 32
) -> tuple[np.ndarray, int]:
    """Open loop: request i is due at start + i/rate; its latency runs from that moment, so time spent
    waiting for a free connection (queueing) counts too."""
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_ready(client, url)
    host, port = url.split("//")[1].split(":")
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        c = Connection(host, int(port))
        await c.open()
        pool.put_nowait(c)
    bodies = [json.dumps(u).encode() for u in users]
    for b in bodies[:100]:  # warm-up
        c = await pool.get()
        await c.post("/predict", b)
        pool.put_nowait(c)
    latencies: list[float] = []
    errors = 0

    async def one(due: float, body: bytes) -> None:
        nonlocal errors
        c = await pool.get()
        try:
            ok = await c.post("/predict", body) == 200
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            ok = False
            c = Connection(host, int(port))
            await c.open()
        latencies.append(time.perf_counter() - due)
        errors += not ok
        pool.put_nowait(c)

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
        pool.get_nowait().writer.close()
    return np.array(latencies) * 1000, errors


async def big_requests(url: str, users: list[dict], repeats: int) -> np.ndarray:
    async with httpx.AsyncClient(timeout=30) as client:
        times = []
        for i in range(repeats + 2):
            body = users[(i * 1000) % (len(users) - 1000) :][:1000]
            t = time.perf_counter()
            r = await client.post(url + "/predict", json=body)
            dt = time.perf_counter() - t
            assert r.status_code == 200 and len(r.json()["predictions"]) == 1000, r.text[:200]
            if i >= 2:  # first two warm up
                times.append(dt * 1000)
        return np.array(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--big-repeats", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1, help="service worker processes")
    a = ap.parse_args()
    model = a.model or default_model()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upgrade_predictor.cli",
            "serve",
            str(model),
            "--port",
            str(port),
            "--workers",
            str(a.workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        users = real_users(20_000)
        gc.collect()
        gc.freeze()  # the load generator's own pauses would count as server latency
        lat, errors = asyncio.run(load(url, a.rate, a.seconds, users))
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        print(
            f"{a.workers} worker(s); single user, {a.rate:.0f} req/s for {a.seconds:.0f} s: {len(lat):,} requests, {errors} errors; "
            f"latency ms p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f} max {lat.max():.1f}"
        )
        big = asyncio.run(big_requests(url, users, a.big_repeats))
        print(
            f"1,000 users per request ({len(big)} requests): ms median {np.median(big):.1f} "
            f"p95 {np.percentile(big, 95):.1f} max {big.max():.1f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
