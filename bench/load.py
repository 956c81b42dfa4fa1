"""A bounded load generator on loopback: T threads with keep-alive sessions, a fixed number of requests."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import requests


def run(url: str, bodies: list[tuple[bytes, dict[str, str]]], threads: int) -> dict[str, float]:
    """POST every body once; returns throughput (req/s), p50/p99 latency (ms) and the status counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [bodies[i::threads] for i in range(threads)]

    def worker(chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        http = requests.Session()
        for body, headers in chunk:
            start = time.perf_counter()
            status = http.post(url, data=body, headers=headers, timeout=30).status_code
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "ok": statuses.get(200, 0),
        "total": len(latencies),
    }


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - the server is still starting
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not come up")
