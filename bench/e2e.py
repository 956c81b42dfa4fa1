"""End to end: a member sends "điểm"; how long until the reply reaches Zalo (a local fake at ~20 ms)?

    .venv/bin/python -m bench.e2e [--rate 20] [--seconds 30] [--workers 2]

gunicorn serves the webhook, `tichdiem worker --simple` processes handle the jobs, PostgreSQL and Redis
as in production. Messages are sent at a steady rate; latency is from the POST to the reply's arrival.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import requests
from redis import Redis

from bench.broadcast import seed
from bench.common import scratch_database, shop_env
from bench.fake_zalo_server import FakeZalo
from bench.load import wait_until
from bench.webhook import ROOT, gunicorn, signed_bodies

REDIS_URL = "redis://127.0.0.1:6379/11"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    Redis.from_url(REDIS_URL).flushdb()
    count = int(args.rate * args.seconds)
    with scratch_database("postgresql") as engine, FakeZalo(latency=0.02) as zalo:
        seed(engine, count)  # members z0..zN, so "điểm" answers with a balance
        env = shop_env(engine, REDIS_URL, zalo.url)
        server = gunicorn("tichdiem:create_app()", 5183, 2, env)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tichdiem", "worker", "--simple"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        try:
            # 200 or 503: no cron runs here, so health says "degraded" (no_cron); the server is up either way
            wait_until(lambda: requests.get("http://127.0.0.1:5183/healthz", timeout=1).status_code in (200, 503))
            bodies = [_resign(raw, i) for i, (raw, _headers) in enumerate(signed_bodies(count))]
            sent_at: dict[str, float] = {}
            http = requests.Session()
            start = time.perf_counter()
            for i, (raw, headers) in enumerate(bodies):
                time.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
                sent_at[f"z{i}"] = time.perf_counter()
                http.post("http://127.0.0.1:5183/webhooks/zalo", data=raw, headers=headers, timeout=10)
            deadline = time.perf_counter() + 60
            while len(zalo.first_at) < count and time.perf_counter() < deadline:
                time.sleep(0.1)
        finally:
            for w in workers:
                w.terminate()
            server.terminate()
        latencies = sorted((zalo.first_at[u] - t) * 1000 for u, t in sent_at.items() if u in zalo.first_at)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(
        f"end to end ('điểm' -> reply at Zalo): {args.rate:.0f} msg/s for {args.seconds:.0f} s, "
        f"{args.workers} workers, fake Zalo 20 ms"
    )
    print(f"  replies {len(latencies):,}/{count:,}   p50 {statistics.median(latencies):7.1f} ms   p99 {p99:7.1f} ms")


def _resign(raw: bytes, i: int) -> tuple[bytes, dict[str, str]]:
    import hashlib
    import json

    body = json.loads(raw)
    body["sender"]["id"] = f"z{i}"
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    mac = hashlib.sha256(b"bench-app" + raw + body["timestamp"].encode() + b"bench-secret").hexdigest()
    return raw, {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}


if __name__ == "__main__":
    main()
