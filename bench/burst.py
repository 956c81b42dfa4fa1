"""A burst of customer messages: how long until the last one is answered? (issue 16)

    .venv/bin/python -m bench.burst [--messages 3000] [--users 50] [--steady 100 --seconds 60] [--skip-baseline]

The Procfile's gunicorn serves the webhook; the workers run as configured below, against a scratch
PostgreSQL schema, a Redis database of their own and a fake Zalo answering in 20 ms. N "điểm" messages from
U members are posted as fast as 16 client threads can; the figure is the time from the first post to the
last reply, and the time each message waited for its reply (the k-th reply to arrive is matched with the k-th
message posted: the queue is first in, first out). Two worker set-ups run in the same run, one after the
other: the old Procfile line (`tichdiem worker`, forking a work horse per job, two of them) as the baseline,
and the Procfile's line as it is now (two of it). Then a steady load on the Procfile's line: `--steady` messages
per second on a fixed schedule for `--seconds` (100/s for a minute by default; issue 16 asks p99 ≤ 1 s), the
figure being the same time-to-reply; the offered rate is its reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import threading
import time

import requests
from redis import Redis

from bench.broadcast import seed
from bench.common import scratch_database, shop_env
from bench.fake_zalo_server import FakeZalo
from bench.load import wait_until
from bench.webhook import ROOT, gunicorn

REDIS_URL = "redis://127.0.0.1:6379/10"
PORT = 5185
OLD_WORKER = "tichdiem worker"
POSTERS = 16  # client threads posting the messages


def procfile_worker() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line.split(": ", 1)[1] for line in lines if line.startswith("worker: "))


def bodies(messages: int, users: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    """Signed "điểm" events: message i from member z(i % users), each with its own msg_id."""
    out = []
    for i in range(messages):
        timestamp = str(int(time.time() * 1000) + i)
        raw = json.dumps(
            {
                "app_id": "bench-app",
                "sender": {"id": f"z{i % users}"},
                "recipient": {"id": "oa"},
                "event_name": "user_send_text",
                "message": {"text": "điểm", "msg_id": f"{tag}-{i}"},
                "timestamp": timestamp,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        mac = hashlib.sha256(b"bench-app" + raw + timestamp.encode() + b"bench-secret").hexdigest()
        out.append((raw, {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}))
    return out


def run(
    command: str, messages: int, users: int, env: dict[str, str], zalo: FakeZalo, rate: float | None = None
) -> dict[str, float]:
    """Post the messages (all at once, or `rate` per second on a fixed schedule) and wait for every reply."""
    Redis.from_url(REDIS_URL).flushdb()
    zalo.arrivals.clear()
    events = bodies(messages, users, f"b{time.time_ns()}")
    workers = [
        subprocess.Popen(
            ["sh", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    posted: list[float] = []
    lock = threading.Lock()

    def post(first: int, chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        http = requests.Session()
        for n, (raw, headers) in enumerate(chunk):
            if rate is not None:  # message i is due at start + i / rate, whoever posts it
                time.sleep(max(0.0, start + (first + n * POSTERS) / rate - time.perf_counter()))
            at = time.perf_counter()
            http.post(f"http://127.0.0.1:{PORT}/webhooks/zalo", data=raw, headers=headers, timeout=30)
            with lock:
                posted.append(at)

    try:
        time.sleep(3)  # the workers are up
        busy_before = busy_core_seconds()
        start = time.perf_counter()
        threads = [threading.Thread(target=post, args=(i, events[i::POSTERS])) for i in range(POSTERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.perf_counter() + 900
        while len(zalo.arrivals) < messages and time.perf_counter() < deadline:
            time.sleep(0.2)
        last = max(zalo.arrivals) if zalo.arrivals else float("nan")
        busy = busy_core_seconds() - busy_before
    finally:
        for w in workers:
            os.killpg(w.pid, 15)
        for w in workers:
            w.wait(timeout=60)
    waits = sorted(r - p for r, p in zip(sorted(zalo.arrivals), sorted(posted), strict=False))
    return {
        "answered": len(zalo.arrivals),
        "total": last - start,
        "p50": statistics.median(waits) if waits else float("nan"),
        "p99": waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else float("nan"),
        "core_ms": busy * 1000 / messages,
    }


def busy_core_seconds() -> float:
    """CPU time the whole machine spent busy (every process: the app, PostgreSQL, Redis, the fake Zalo and this
    script's clients), from /proc/stat. Per message it is steadier than the wall-clock time on a noisy machine."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--steady", type=float, default=100, help="then this many messages per second ...")
    parser.add_argument("--seconds", type=int, default=60, help="... for this long (0: no steady run)")
    args = parser.parse_args()
    with scratch_database("postgresql") as engine, FakeZalo(latency=0.02) as zalo:
        seed(engine, args.users)
        env = shop_env(engine, REDIS_URL, zalo.url)
        server = gunicorn("tichdiem:create_app()", PORT, 2, env)
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).status_code in (200, 503))
            setups = [("now: 2 × " + procfile_worker(), procfile_worker())]
            if not args.skip_baseline:
                setups.insert(0, (f"before: 2 × {OLD_WORKER} (a fork per job)", OLD_WORKER))
            print(f"burst: {args.messages:,} 'điểm' from {args.users} members, fake Zalo 20 ms, PostgreSQL + Redis")
            for label, command in setups:
                figures = run(command, args.messages, args.users, env, zalo)
                print(
                    f"  {label:<60} answered {figures['answered']:,}/{args.messages:,} in {figures['total']:6.1f} s"
                    f"   wait p50 {figures['p50']:6.1f} s  p99 {figures['p99']:6.1f} s"
                    f"   machine busy {figures['core_ms']:.1f} core-ms per message",
                    flush=True,
                )
            if args.seconds:
                count = int(args.steady * args.seconds)
                figures = run(procfile_worker(), count, args.users, env, zalo, rate=args.steady)
                print(
                    f"  steady: {args.steady:.0f}/s for {args.seconds} s, the same workers:{'':<13} answered"
                    f" {figures['answered']:,}/{count:,}, the last {figures['total'] - args.seconds:5.1f} s after"
                    f" the last post   wait p50 {figures['p50']:6.2f} s  p99 {figures['p99']:6.2f} s"
                    f"   machine busy {figures['core_ms']:.1f} core-ms per message",
                    flush=True,
                )
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
