"""Broadcast benchmark: N members, a local fake Zalo answering in ~20 ms, W worker processes.

    .venv/bin/python -m bench.broadcast [--members 100000] [--workers 4] [--latency 0.02]

Needs the PostgreSQL and Redis servers. Prints the fan-out time, messages per second and the wall time,
next to a baseline measured in the same run: as many threads as the senders keep messages in flight
(workers × TICHDIEM_BROADCAST_IN_FLIGHT) posting straight to the fake Zalo with requests, in one process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from redis import Redis
from sqlalchemy import insert

from bench.common import scratch_database
from bench.fake_zalo_server import FakeZalo
from models import Member, ZaloUser, utcnow
from tichdiem.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/14"


def seed(engine, members: int) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with engine.begin() as conn:
        for start in range(0, members, 5000):
            rows = range(start, min(start + 5000, members))
            conn.execute(
                insert(Member),
                [
                    {
                        "code": f"B{i:07d}",
                        "name": f"Khách {i}",
                        "zalo_user_id": f"z{i}",
                        "status": "active",
                        "points_balance": 0,
                        "points_lifetime": 0,
                        "joined_at": now,
                        "source": "import",
                        "card_version": 1,
                        "marketing_consent": "granted",  # they agreed to offers: a broadcast reaches them
                    }
                    for i in rows
                ],
            )
            conn.execute(
                insert(ZaloUser),
                [
                    {
                        "user_id": f"z{i}",
                        "is_follower": True,
                        "last_interaction_at": now,
                        "created_at": now,
                        "failed_claims": 0,
                    }
                    for i in rows
                ],
            )


def rss_mib(procs: list[subprocess.Popen]) -> float:  # type: ignore[type-arg]
    """The resident memory of these processes and their children (a worker forks its pool and RQ's scheduler)."""
    pids = {proc.pid for proc in procs if proc.poll() is None}
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # the process ended meanwhile
            continue
        if int(fields.get("Pid", "0")) in pids or int(fields.get("PPid", "0")) in pids:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def baseline(url: str, messages: int, threads: int) -> float:
    def post(count: int) -> None:
        http = requests.Session()
        for i in range(count):
            http.post(
                f"{url}/v3.0/oa/message/cs",
                json={"recipient": {"user_id": f"b{i}"}, "message": {"text": "x"}},
                headers={"access_token": "t"},
                timeout=10,
            )

    start = time.perf_counter()
    workers = [threading.Thread(target=post, args=(messages // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (messages // threads * threads) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    Redis.from_url(REDIS_URL).flushdb()
    with scratch_database("postgresql") as engine, FakeZalo(latency=args.latency) as zalo:
        url = engine.url.render_as_string(hide_password=False)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "ZALO_APP_ID": "bench",
            "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
            "ZALO_APP_SECRET": "s",
            "ZALO_OA_SECRET_KEY": "s",
            "ZALO_ACCESS_TOKEN": "t",
            "ZALO_REFRESH_TOKEN": "r",
            "ZALO_OPENAPI_URL": zalo.url,
            "TICHDIEM_BROADCAST_SENDERS": str(args.workers),
        }
        os.environ.update(env)
        seed(engine, args.members)
        from jobs import broadcasts
        from loyalty.segments import Segment
        from marketing import campaigns
        from tichdiem.app import create_app

        app = create_app()
        sessions = app.extensions["tichdiem"].sessions
        with app.app_context(), sessions() as session:
            b = campaigns.create_broadcast(
                session,
                name="bench",
                text="Chào {ten}!",
                segment=Segment(),
                send_at=None,
                now=utcnow(),
                promotional=False,
            )
            session.commit()
            broadcasts.start_due_broadcasts()
            start = time.perf_counter()
            broadcasts.fan_out(b.id)  # in this process, timed on its own
            fan_out_seconds = time.perf_counter() - start
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tichdiem", "worker", "--burst", "--simple"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        memory = [rss_mib(procs)]  # the workers' resident memory, sampled every 10 s: it must stay flat
        while any(proc.poll() is None for proc in procs):
            time.sleep(0.5)
            if time.perf_counter() - start >= 10 * len(memory):
                memory.append(rss_mib(procs))
        wall = time.perf_counter() - start
        with sessions() as session:
            report = campaigns.progress(session, b.id)
        sent = report["counts"].get("sent", 0)
        duplicates = sum(1 for n in zalo.received.values() if n > 1)
        in_flight = args.workers * load_settings().broadcast_in_flight  # what the senders have on the wire at once
        base = baseline(zalo.url, min(args.members, 4000), in_flight)
        print(
            f"broadcast benchmark: {args.members:,} members, {args.workers} worker processes, "
            f"fake Zalo latency {args.latency * 1000:.0f} ms"
        )
        print(f"  fan-out (rows written) ....... {fan_out_seconds:8.1f} s")
        print(f"  sent {sent:,} in {wall:.1f} s ......... {sent / wall:8.0f} messages/s   status {report['status']}")
        print(
            f"  baseline raw HTTP posts ...... {base:8.0f} messages/s  ({sent / wall / base:.0%} of baseline; "
            f"{in_flight} threads in one process, as many as the senders keep in flight)"
        )
        print(f"  recipients with >1 message ... {duplicates}")
        samples = [m for m in memory if m > 0]
        if samples:
            print(
                f"  workers' memory (RSS, all {args.workers}) {samples[0]:.0f} MiB at 0 s, peak {max(samples):.0f} MiB,"
                f" {samples[-1]:.0f} MiB at {10 * (len(samples) - 1)} s"
            )


if __name__ == "__main__":
    main()
