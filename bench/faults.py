"""Faults on the production shape, one at a time: does everything heal by itself, and is anything sent twice?

    .venv/bin/python -m bench.faults [--only redis-empty,redis-down,worker-kill,zalo-late,pg-killed]

The Procfile's own command lines run as separate processes: gunicorn (`web`), two `tichdiem worker`, one
`tichdiem cron`, against a PostgreSQL database of their own (`tichdiem_faults`, dropped afterwards), a
redis-server of their own (a free port, no persistence, so a restart comes back empty as in the issue) and a
fake Zalo on loopback answering in 20 ms. Customers are simulated by signed "điểm" webhooks (every one must
be answered exactly once) and a broadcast to 3,000 followers. Nothing is restarted by hand but what a
supervisor restarts (the killed worker, after 5 s).

Prints one row per fault: sent (events posted or recipients), stored (events or outbox rows), answered
(recipients Zalo received a message for), lost, duplicated, unknown (rows honestly marked "maybe sent"),
time to heal (from the fault to the last answer), and whether every process is still up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from redis import Redis
from sqlalchemy import Engine, text

from bench.broadcast import seed
from bench.fake_zalo_server import FakeZalo
from tichdiem import migrate
from tichdiem.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DATABASE = "tichdiem_faults"
APP_ID, WEBHOOK_SECRET = "fault-app", "fault-webhook-secret"
PORT = 5191
HEALTH_TOKEN = "fault-bench-health-token"
FOLLOWERS = 3000
WAIT = 240  # seconds a fault may take to heal before the row says "not healed"
ALL = ["redis-empty", "redis-down", "worker-kill", "zalo-late", "pg-killed"]


# --- the servers and processes -------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of this script's own, restarted empty (as the machine's Redis keeps nothing on disk)."""

    def __init__(self, directory: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server") or "redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([server, *args, "--dir", self.directory], stdout=subprocess.DEVNULL)
        wait_for(lambda: bool(Redis(port=self.port).ping()), 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Shop:
    """The Procfile's processes, started from its own lines (web, worker ×2, cron)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        lines = (ROOT / "Procfile").read_text().splitlines()
        self.commands = dict(line.split(": ", 1) for line in lines if ": " in line)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, kind: str) -> None:
        self.procs[name] = subprocess.Popen(
            ["sh", "-c", f"exec {self.commands[kind]}"],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # its own process group: a kill -9 takes the work horse with it
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def signal(self, name: str, signum: int) -> None:
        os.killpg(self.procs[name].pid, signum)

    def down(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop_all(self) -> None:
        for name in self.procs:
            try:
                self.signal(name, signal.SIGCONT)
                self.signal(name, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def database() -> Iterator[Engine]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}", pool_pre_ping=True)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def kill_database_connections() -> int:
    """Every connection the shop's processes hold to its database is cut (a failover, a restart)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
        ).fetchall()
    return len(rows)


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    return False


# --- customers -----------------------------------------------------------------------------------------------


def signed_event(user_id: str, msg_id: str) -> tuple[bytes, dict[str, str]]:
    timestamp = str(int(time.time() * 1000))
    raw = json.dumps(
        {
            "app_id": APP_ID,
            "sender": {"id": user_id},
            "recipient": {"id": "oa"},
            "event_name": "user_send_text",
            "message": {"text": "điểm", "msg_id": msg_id},
            "timestamp": timestamp,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    mac = hashlib.sha256(APP_ID.encode() + raw + timestamp.encode() + WEBHOOK_SECRET.encode()).hexdigest()
    return raw, {"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"}


def post_events(users: list[str], tag: str, threads: int = 16) -> int:
    """Each user sends "điểm" once; a refused POST is sent again (Zalo retries a webhook that failed)."""
    accepted = 0
    lock = threading.Lock()

    def send(chunk: list[str]) -> None:
        nonlocal accepted
        http = requests.Session()
        for user in chunk:
            raw, headers = signed_event(user, f"{tag}-{user}")
            for _ in range(5):
                try:
                    if http.post(f"http://127.0.0.1:{PORT}/webhooks/zalo", data=raw, headers=headers).ok:
                        with lock:
                            accepted += 1
                        break
                except requests.RequestException:
                    pass
                time.sleep(1)

    pool = [threading.Thread(target=send, args=(users[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return accepted


# --- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    sent: int
    stored: int
    answered: int
    duplicated: int
    unknown: int
    heal_seconds: float | None
    down: list[str]
    goal: str
    passed: bool
    lost: int = 0  # recipients Zalo got nothing for and whose row is not honestly "unknown" either

    def line(self) -> str:
        heal = f"{self.heal_seconds:6.1f} s" if self.heal_seconds is not None else "not healed"
        down = ",".join(self.down) or "-"
        return (
            f"{self.fault:<12} {self.sent:>6} {self.stored:>7} {self.answered:>9} {self.lost:>5} {self.duplicated:>6}"
            f" {self.unknown:>8} {heal:>10}  {down:<8} {'PASS' if self.passed else 'FAIL'}  {self.goal}"
        )


HEADER = (
    f"{'fault':<12} {'sent':>6} {'stored':>7} {'answered':>9} {'lost':>5} {'double':>6} {'unknown':>8}"
    f" {'heal':>10}  {'down':<8} goal"
)


class Run:
    def __init__(self, engine: Engine, zalo: FakeZalo, shop: Shop, redis: RedisServer) -> None:
        self.engine, self.zalo, self.shop, self.redis = engine, zalo, shop, redis
        self.next_user = 0
        self.before: dict[str, int] = {}

    def users(self, count: int) -> list[str]:
        """Members who have not written yet (one message each, so each must get exactly one answer)."""
        start, self.next_user = self.next_user, self.next_user + count
        users = [f"z{i}" for i in range(start, start + count)]
        self.before.update({u: self.zalo.received[u] for u in users})  # what they had before (broadcasts)
        return users

    def scalar(self, sql: str, **params: object) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar() or 0)

    def lost(self, users: list[str], unknown_sql: str, **params: object) -> int:
        """Users Zalo received nothing for, less those whose message is marked unknown (an unknown row may
        also have reached Zalo, so sent - answered - unknown would count it twice)."""
        with self.engine.connect() as conn:
            unknown = set(conn.execute(text(unknown_sql), params).scalars())
        return sum(1 for u in users if not self.zalo.received[u] - self.before.get(u, 0) and u not in unknown)

    def answered(self, users: list[str]) -> tuple[int, int, float]:
        """(users answered, users answered more than once, when the last first answer arrived)."""
        got = [self.zalo.received[u] - self.before.get(u, 0) for u in users]
        last = max((self.zalo.last_at.get(u, 0.0) for u in users), default=0.0)
        return sum(1 for n in got if n), sum(1 for n in got if n > 1), last

    def settle(self, users: list[str], since: float, expected: Callable[[], int] | None = None) -> float | None:
        """Wait until every user is answered (or `expected()` rows are settled); seconds from `since`."""
        done = expected or (lambda: self.answered(users)[0])
        if not wait_for(lambda: done() >= len(users), WAIT):
            return None
        time.sleep(5)  # anything sent twice would arrive now
        return self.answered(users)[2] - since

    def event_row(self, fault: str, users: list[str], tag: str, heal: float | None, goal: str, ok: bool) -> Row:
        stored = self.scalar("SELECT count(*) FROM webhook_events WHERE payload::text LIKE :tag", tag=f"%{tag}-%")
        unknown = self.scalar(
            "SELECT count(*) FROM outbox_messages o JOIN webhook_events e ON e.id = o.event_id "
            "WHERE o.status = 'unknown' AND e.payload::text LIKE :tag",
            tag=f"%{tag}-%",
        )
        answered, duplicated, _ = self.answered(users)
        row = Row(fault, len(users), stored, answered, duplicated, unknown, heal, self.shop.down(), goal, ok)
        row.lost = self.lost(
            users,
            "SELECT o.zalo_user_id FROM outbox_messages o JOIN webhook_events e ON e.id = o.event_id "
            "WHERE o.status = 'unknown' AND e.payload::text LIKE :tag",
            tag=f"%{tag}-%",
        )
        row.passed = ok and row.duplicated == 0 and row.lost <= 0 and not row.down and heal is not None
        return row

    # --- the faults ------------------------------------------------------------------------------------------

    def redis_empty(self) -> Row:
        """600 events queued (both workers frozen), then Redis restarted empty."""
        users = self.users(600)
        for name in ("worker-1", "worker-2"):
            self.shop.signal(name, signal.SIGSTOP)
        sent = post_events(users, "redis-empty")
        self.redis.stop()
        self.redis.start()
        fault_at = time.perf_counter()
        for name in ("worker-1", "worker-2"):
            self.shop.signal(name, signal.SIGCONT)
        heal = self.settle(users, fault_at)
        goal = "all answered within 120 s"
        row = self.event_row("redis-empty", users, "redis-empty", heal, goal, heal is not None and heal <= 120)
        row.sent = sent
        return row

    def redis_down(self) -> Row:
        """Redis away for 20 s while idle; afterwards every first send fails (a gateway 502), so the answers
        need RQ's scheduler (retries with backoff) as well as the workers."""
        users = self.users(20)
        self.redis.stop()
        time.sleep(20)
        self.redis.start()
        back_at = time.perf_counter()
        refused: set[str] = set()

        def first_send_fails(user: str) -> int | None:
            if user in users and user not in refused:
                refused.add(user)
                return 502
            return None

        self.zalo.refuse = first_send_fails
        post_events(users, "redis-down", threads=4)
        heal = self.settle(users, back_at)
        self.zalo.refuse = None
        goal = "retries resume within 60 s"
        return self.event_row("redis-down", users, "redis-down", heal, goal, heal is not None and heal <= 60)

    def broadcast(self, kill: bool) -> tuple[int, float | None, int, int, int]:
        """A broadcast to every follower: (broadcast id, seconds to done, answered, duplicated, unknown)."""
        from jobs import broadcasts
        from loyalty.segments import Segment
        from marketing import campaigns
        from models import Broadcast, BroadcastStatus, utcnow
        from tichdiem.app import create_app

        users = [f"z{i}" for i in range(FOLLOWERS)]
        before = {u: self.zalo.received[u] for u in users}
        self.before.update(before)
        app = create_app()
        services = app.extensions["tichdiem"]
        with app.app_context(), services.sessions() as session:
            b = campaigns.create_broadcast(
                session,
                name="kill" if kill else "baseline",
                text="Chào {ten}!",
                segment=Segment(),
                send_at=None,
                now=utcnow(),
                promotional=False,
            )
            session.commit()
            broadcast_id = b.id
            broadcasts.start_due_broadcasts()
        start = time.perf_counter()
        sent = lambda: self.scalar(  # noqa: E731
            "SELECT count(*) FROM outbox_messages WHERE broadcast_id = :b AND status = 'sent'", b=broadcast_id
        )
        if kill:
            wait_for(lambda: sent() >= FOLLOWERS // 4, WAIT)
            self.shop.signal("worker-1", signal.SIGKILL)  # the worker and its work horse, mid-send
            time.sleep(5)  # the supervisor's restart delay (systemd RestartSec=5)
            self.shop.start("worker-1", "worker")

        def done() -> bool:
            with services.sessions() as session:
                return session.get(Broadcast, broadcast_id).status == BroadcastStatus.DONE  # type: ignore[union-attr]

        healed = wait_for(done, WAIT + 300)
        seconds = time.perf_counter() - start if healed else None
        time.sleep(5)
        new = [self.zalo.received[u] - before[u] for u in users]
        unknown = self.scalar(
            "SELECT count(*) FROM outbox_messages WHERE broadcast_id = :b AND status = 'unknown'", b=broadcast_id
        )
        services.engine.dispose()
        return broadcast_id, seconds, sum(1 for n in new if n), sum(1 for n in new if n > 1), unknown

    def worker_kill(self) -> Row:
        _, baseline, *_ = self.broadcast(kill=False)
        broadcast_id, seconds, answered, duplicated, unknown = self.broadcast(kill=True)
        stored = self.scalar("SELECT count(*) FROM outbox_messages WHERE broadcast_id = :b", b=broadcast_id)
        late = None if seconds is None or baseline is None else seconds - baseline
        goal = f"done ≤ 60 s after the fault-free run ({baseline or 0:.0f} s)"
        row = Row("worker-kill", FOLLOWERS, stored, answered, duplicated, unknown, late, self.shop.down(), goal, False)
        users = [f"z{i}" for i in range(FOLLOWERS)]
        unknown_sql = "SELECT zalo_user_id FROM outbox_messages WHERE broadcast_id = :b AND status = 'unknown'"
        row.lost = self.lost(users, unknown_sql, b=broadcast_id)
        row.passed = late is not None and late <= 60 and duplicated == 0 and row.lost <= 0 and not row.down
        return row

    def zalo_late(self) -> Row:
        """Zalo keeps every 7th message but answers after the client's 10 s read timeout."""
        users = self.users(40)
        self.zalo.on_request = lambda number: time.sleep(12) if number % 7 == 0 else None
        start = time.perf_counter()
        post_events(users, "zalo-late", threads=4)
        heal = self.settle(users, start)
        time.sleep(10)  # let every late answer land before counting
        self.zalo.on_request = None
        causes = self.scalar(
            "SELECT count(*) FROM outbox_messages WHERE status = 'unknown' AND last_error LIKE '%timeout%'"
        )
        goal = f"none sent twice; late ones 'unknown' ({causes} with cause 'timeout')"
        row = self.event_row("zalo-late", users, "zalo-late", heal, goal, True)
        row.unknown = 0  # Zalo did receive them: they count as answered, not as "maybe"
        row.passed = row.passed and causes > 0
        return row

    def pg_killed(self) -> Row:
        """Every 5th message: all database connections are cut after Zalo has it, before it is marked sent."""
        users = self.users(40)

        def cut_after_receiving(number: int) -> None:
            if number % 5 == 0:
                kill_database_connections()

        self.zalo.on_request = cut_after_receiving
        start = time.perf_counter()
        post_events(users, "pg-killed", threads=4)
        heal = self.settle(users, start)
        self.zalo.on_request = None
        goal = "none sent twice; marked sent after the reconnect"
        return self.event_row("pg-killed", users, "pg-killed", heal, goal, True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated faults to run")
    args = parser.parse_args()
    faults = [f for f in args.only.split(",") if f]
    with socket.socket() as probe:  # a web process left from an earlier run would answer instead of ours
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            raise SystemExit(f"port {PORT} is in use (a shop left from an earlier run?): stop it first")
    with tempfile.TemporaryDirectory() as tmp, database() as engine, FakeZalo(latency=0.02) as zalo:
        redis = RedisServer(tmp)
        redis.start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "TICHDIEM_"))},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "REDIS_URL": redis.url,
            "SECRET_KEY": "fault-bench-secret-key-of-at-least-32-characters",
            "ZALO_APP_ID": APP_ID,
            "ZALO_OA_SECRET_KEY": WEBHOOK_SECRET,
            "ZALO_APP_SECRET": "s",
            "ZALO_ACCESS_TOKEN": "t",
            "ZALO_REFRESH_TOKEN": "r",
            "ZALO_OPENAPI_URL": zalo.url,
            "ZALO_OAUTH_URL": zalo.url,  # the token keeper refreshes the pair at its first run
            "PORT": str(PORT),
            "HEALTH_TOKEN": HEALTH_TOKEN,
        }
        os.environ.update(env)
        seed(engine, FOLLOWERS)
        shop = Shop(env)
        shop.start("web", "web")
        shop.start("worker-1", "worker")
        shop.start("worker-2", "worker")
        shop.start("cron", "cron")
        run = Run(engine, zalo, shop, redis)
        rows = []
        try:
            health_url = f"http://127.0.0.1:{PORT}/healthz"
            if not wait_for(lambda: requests.get(health_url, timeout=1).ok, 60):
                raise SystemExit(f"/healthz never became ok: {requests.get(health_url, headers=_HEALTH).json()}")
            print(f"processes: {', '.join(f'{n}: {shlex.split(shop.commands[k])[0]}' for n, k in _KINDS.items())}")
            print(HEADER, flush=True)
            for fault in faults:
                row = getattr(run, fault.replace("-", "_"))()
                rows.append(row)
                print(row.line(), flush=True)
                for name in shop.down():  # a supervisor would restart it; say so and go on
                    shop.start(name, _KINDS[name])
            health = requests.get(health_url, headers=_HEALTH, timeout=5).json()
            print(f"/healthz after the run: {health['status']} {', '.join(health.get('problems', []))}")
        finally:
            shop.stop_all()
            redis.stop()
    return 0 if all(r.passed for r in rows) else 1


_HEALTH = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
_KINDS = {"web": "web", "worker-1": "worker", "worker-2": "worker", "cron": "cron"}

if __name__ == "__main__":
    raise SystemExit(main())
