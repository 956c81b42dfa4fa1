"""Webhook intake: POST /webhooks/zalo under gunicorn on PostgreSQL + Redis, next to a bare Flask endpoint.

    .venv/bin/python -m bench.webhook [--requests 5000] [--threads 16] [--workers 2]

Both run under the same gunicorn settings; the bare endpoint only reads the body and answers 200.
Afterwards an RQ worker handles every stored event and the script checks nothing was lost or doubled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from redis import Redis
from sqlalchemy import func, select

from bench.common import scratch_database
from bench.fake_zalo_server import FakeZalo
from bench.load import run, wait_until
from models import EventStatus, WebhookEvent

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/13"
APP_ID, SECRET = "bench-app", "bench-secret"


def signed_bodies(n: int) -> list[tuple[bytes, dict[str, str]]]:
    bodies = []
    for i in range(n):
        raw = json.dumps(
            {
                "app_id": APP_ID,
                "sender": {"id": f"u{i % 500}"},
                "recipient": {"id": "oa"},
                "event_name": "user_send_text",
                "message": {"text": "điểm", "msg_id": f"bench-{i}"},
                "timestamp": str(1_700_000_000_000 + i),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        mac = hashlib.sha256(APP_ID.encode() + raw + str(1_700_000_000_000 + i).encode() + SECRET.encode()).hexdigest()
        bodies.append((raw, {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}))
    return bodies


def procfile_web_threads() -> int:
    """The Procfile's default threads per gunicorn worker (`--threads ${WEB_THREADS:-N}`)."""
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web: "))
    found = re.search(r"--threads \$\{WEB_THREADS:-(\d+)\}", web)
    assert found is not None, "the Procfile's web line names its threads"
    return int(found.group(1))


def gunicorn(app: str, port: int, workers: int, env: dict[str, str], threads: int | None = None) -> subprocess.Popen:
    """gunicorn as the Procfile runs it (its threads per worker unless `threads`)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--threads",
            str(threads or procfile_web_threads()),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(app: str, port: int, args: argparse.Namespace, env: dict[str, str], bodies: list) -> dict[str, float]:  # type: ignore[type-arg]
    server = gunicorn(app, port, args.workers, env, args.web_threads)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 404, 503))
        run(f"http://127.0.0.1:{port}/webhooks/zalo", bodies[:200], args.threads)  # warm-up
        return run(f"http://127.0.0.1:{port}/webhooks/zalo", bodies[200:], args.threads)
    finally:
        server.terminate()
        server.wait(timeout=20)


WRK_SCRIPT = """
local bodies = dofile(os.getenv("BODIES"))
local threads, step, i = {}, 1, 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", #threads - 1)
end
function init(args)
  step = tonumber(os.getenv("THREADS"))
  i = offset
  sent = 0  -- a global of the thread's state, for done()
end
function request()
  local b = bodies[(i % #bodies) + 1]
  i = i + step
  sent = sent + 1
  local headers = {["Content-Type"] = "application/json", ["X-ZEvent-Signature"] = b[2]}
  return wrk.format("POST", "/webhooks/zalo", headers, b[1])
end
function done(summary, latency, requests)
  -- a thread that runs past its share of the bodies sends duplicates (answered 200, stored once): count the
  -- distinct bodies sent, so a duplicate is not taken for a lost event
  local distinct, n = 0, #threads
  for _, t in ipairs(threads) do
    local offset = t:get("offset")
    local share = math.ceil((#bodies - offset) / n)
    distinct = distinct + math.min(t:get("sent"), share)
  end
  io.write(string.format("distinct bodies sent: %d\\n", distinct))
end
"""


def measure_wrk(app: str, port: int, args: argparse.Namespace, env: dict[str, str], bodies: list) -> dict[str, float]:  # type: ignore[type-arg]
    """wrk -t2 -c32 against one app: each thread walks its own share of the signed bodies (no duplicates)."""
    import re
    import tempfile

    server = gunicorn(app, port, args.workers, env, args.web_threads)
    with tempfile.TemporaryDirectory() as tmp:
        lua_bodies = Path(tmp) / "bodies.lua"
        rows = ",".join(f"{{{_lua(raw.decode())},{_lua(headers['X-ZEvent-Signature'])}}}" for raw, headers in bodies)
        lua_bodies.write_text(f"return {{{rows}}}")
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        try:
            wait_until(
                lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 404, 503)
            )
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    f"-c{args.connections}",
                    f"-d{args.seconds}s",
                    "--latency",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}",
                ],
                env={**os.environ, "BODIES": str(lua_bodies), "THREADS": "2"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            server.terminate()
            server.wait(timeout=20)

    def ms(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not found:
            return float("nan")
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50": ms("50"),
        "p99": ms("99"),
        "total": total,
        "ok": total - (int(errors[1]) if errors else 0),
        "distinct": int(re.search(r"distinct bodies sent: (\d+)", out)[1]),  # type: ignore[index]
    }


def _lua(text: str) -> str:
    return "[==[" + text + "]==]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40000, help="distinct signed events (wrk must not run out)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=None, help="threads per worker (the Procfile's default)")
    parser.add_argument("--seconds", type=int, default=10, help="with wrk: how long each app is loaded")
    parser.add_argument("--connections", type=int, default=32, help="with wrk")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None  # the load generator; Python threads hid a 10x gap
    if not use_wrk:
        print("wrk not found (apt-get install wrk): falling back to Python threads, which flatter the webhook")
    Redis.from_url(REDIS_URL).flushdb()
    bodies = signed_bodies(args.requests + 200)
    with scratch_database("postgresql") as engine, FakeZalo(latency=0.005) as zalo:
        env = {
            **os.environ,
            "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "REDIS_URL": REDIS_URL,
            "ZALO_APP_ID": APP_ID,
            "ZALO_OA_SECRET_KEY": SECRET,
            "ZALO_APP_SECRET": "s",
            "ZALO_ACCESS_TOKEN": "t",
            "ZALO_REFRESH_TOKEN": "r",
            "ZALO_OPENAPI_URL": zalo.url,
            "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
        }
        load = measure_wrk if use_wrk else measure
        bare = load("bench.bare_app:app", 5181, args, env, bodies)
        ours = load("tichdiem:create_app()", 5182, args, env, bodies)
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(WebhookEvent))
        start = time.perf_counter()
        worker = subprocess.run(
            [sys.executable, "-m", "tichdiem", "worker", "--burst", "--simple", "--processes", "4"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=1800,
        )
        handled_in = time.perf_counter() - start
        with engine.connect() as conn:
            processed = conn.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.PROCESSED))
    accepted = ours["ok"] + (0 if use_wrk else 200)  # the warm-up requests were accepted too
    if use_wrk and ours["distinct"] < ours["total"]:
        print(
            f"wrk sent {int(ours['total']):,} requests for {int(ours['distinct']):,} distinct events: raise --requests"
        )
        accepted = min(accepted, ours["distinct"])  # the rest were redeliveries, answered 200 and stored once
    threads = args.web_threads or procfile_web_threads()
    print(
        f"webhook intake under gunicorn ({args.workers} workers x {threads} threads), "
        f"{f'wrk -t2 -c{args.connections} for {args.seconds} s' if use_wrk else f'{args.threads} client threads'}, "
        f"{int(ours['total']):,} signed events"
    )
    print(
        f"  bare Flask endpoint ..... {bare['rps']:7.0f} req/s   p50 {bare['p50']:6.1f} ms   p99 {bare['p99']:6.1f} ms"
    )
    print(
        f"  POST /webhooks/zalo ..... {ours['rps']:7.0f} req/s   p50 {ours['p50']:6.1f} ms   p99 {ours['p99']:6.1f} ms"
        f"   ({ours['rps'] / bare['rps']:.0%} of bare)"
    )
    print(
        f"  accepted {accepted:,}, stored {stored:,}, handled {processed:,} (worker exit {worker.returncode}, "
        f"{handled_in:.0f} s), replies at the fake Zalo {sum(zalo.received.values()):,}; "
        f"lost {max(accepted - processed, 0):,}"
        + (" (wrk stops counting with requests still in flight: those are stored too)" if processed > accepted else "")
    )


if __name__ == "__main__":
    main()
