"""Where one customer message's time goes: a profile of one worker handling stored "điểm" events (issue 16).

    .venv/bin/python -m bench.event_profile [--events 600] [--top 40]
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python -m bench.event_profile --events 130 --instructions

Stores N signed-and-parsed "điểm" events from 50 members in a scratch PostgreSQL schema (as the webhook does),
then runs one in-process worker over them under cProfile, with a fake Zalo answering in 20 ms. Prints events per
second, SQL statements per event, and the functions that took the time. No baseline: this is a microscope for
bench.burst's figure, not a figure of its own.

`--instructions` (under callgrind, as above) counts the instructions of the worker's part only, without cProfile:
a count that does not vary with the machine's noise. Run it with two event counts (30 and 130, say) and divide the
difference of the totals by 100 for the instructions per event, the worker's start-up cancelled out.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import time

from redis import Redis
from sqlalchemy import event

from bench.broadcast import seed
from bench.common import scratch_database, shop_env
from bench.fake_zalo_server import FakeZalo
from jobs.worker import make_worker
from tichdiem.app import build_services
from tichdiem.config import load_settings
from webhooks.intake import store_event
from zalo.events import parse_event

REDIS_URL = "redis://127.0.0.1:6379/11"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--instructions", action="store_true", help="callgrind counts the worker's part only")
    args = parser.parse_args()
    with scratch_database("postgresql") as engine, FakeZalo(latency=0.02) as zalo:
        seed(engine, 50)
        Redis.from_url(REDIS_URL).flushdb()
        env = shop_env(engine, REDIS_URL, zalo.url)
        services = build_services(load_settings({k: v for k, v in env.items() if k.isupper()}))
        for i in range(args.events):
            body = {
                "app_id": "bench-app",
                "sender": {"id": f"z{i % 50}"},
                "recipient": {"id": "oa"},
                "event_name": "user_send_text",
                "message": {"text": "điểm", "msg_id": f"profile-{i}"},
                "timestamp": str(1_764_000_000_000 + i),
            }
            store_event(services.sessions, parse_event(body), body)
        statements = [0]
        event.listen(
            services.sessions.kw["bind"],
            "before_cursor_execute",
            lambda *_: statements.__setitem__(0, statements[0] + 1),
        )
        worker = make_worker(services, simple=True)
        profile = cProfile.Profile()
        started = time.perf_counter()
        _collect(profile, args.instructions, True)
        worker.work(burst=True, logging_level="ERROR")
        _collect(profile, args.instructions, False)
        elapsed = time.perf_counter() - started
    print(
        f"{args.events:,} events in {elapsed:.1f} s: {args.events / elapsed:.1f}/s in one process, "
        f"{statements[0] / args.events:.1f} SQL statements per event, {len(zalo.arrivals):,} replies at the fake Zalo"
    )
    if not args.instructions:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


def _collect(profile: cProfile.Profile, instructions: bool, on: bool) -> None:
    """cProfile, or callgrind's instruction count (this process runs under valgrind --instr-atstart=no)."""
    if instructions:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True)
    elif on:
        profile.enable()
    else:
        profile.disable()


if __name__ == "__main__":
    main()
