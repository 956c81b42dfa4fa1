"""Self-healing (issue 15): once a request has gone out, a read timeout is as uncertain as a dead worker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from urllib3.exceptions import NewConnectionError

from models import OutboxMessage
from tests.helpers import CS_URL, ZaloFake, post_event, run_jobs, text_event


def _refused() -> requests.ConnectionError:
    return requests.ConnectionError(NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (requests.ReadTimeout("read timed out"), "timeout after sending"),
        (requests.ConnectionError("Connection aborted: RemoteDisconnected"), "connection lost after sending"),
    ],
)
def test_an_answer_lost_after_sending_marks_the_reply_unknown_and_never_resends(
    app: Flask, zalo: ZaloFake, session: Session, failure: Exception, why: str
) -> None:
    zalo.mock.add("POST", CS_URL, body=failure)
    zalo.accept_messages("m-ok")
    post_event(app.test_client(), text_event("trợ giúp", "m-1"))
    run_jobs(app)
    run_jobs(app, include_scheduled=True)
    assert len(zalo.calls_to(CS_URL)) == 1  # Zalo may have it: not sent again
    (row,) = session.scalars(select(OutboxMessage)).all()
    assert row.status == "unknown" and why in (row.last_error or "")


@pytest.mark.parametrize("first", ["refused", "504"])
def test_only_what_certainly_did_not_reach_zalo_is_retried(
    app: Flask, zalo: ZaloFake, session: Session, first: str
) -> None:
    if first == "refused":
        zalo.mock.add("POST", CS_URL, body=_refused())
    else:
        zalo.mock.add("POST", CS_URL, status=504, json={"error": -1})
    zalo.accept_messages("m-ok")
    post_event(app.test_client(), text_event("trợ giúp", "m-2"))
    run_jobs(app)
    run_jobs(app, include_scheduled=True)
    (row,) = session.scalars(select(OutboxMessage)).all()
    if first == "refused":  # no connection was made: safe to try again (refused, then delivered)
        assert (row.status, row.attempts, len(zalo.calls_to(CS_URL))) == ("sent", 2, 2)
    else:  # the gateway gave up waiting for Zalo, which may have delivered it
        assert row.status == "unknown" and len(zalo.calls_to(CS_URL)) == 1


# --- no human step: the recovery tick re-enqueues what a lost queue left behind ------------------------------


def _recover(app: Flask, minutes: int = 2) -> dict[str, int]:
    from datetime import UTC, datetime, timedelta

    import time_machine

    from jobs.recovery import recover

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=minutes)), app.app_context():
        return recover()


def test_events_stored_before_redis_restarted_empty_are_answered_once(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    from models import WebhookEvent

    zalo.accept_messages()
    for i in range(5):
        post_event(app.test_client(), text_event("trợ giúp", f"lost-{i}", user_id=f"70000000000000000{i:02d}"))
    app.extensions["tichdiem"].redis.flushall()  # Redis came back empty: every queued job is gone
    assert _recover(app, minutes=0) == {"events": 0, "messages": 0, "interrupted": 0}  # not yet a minute
    assert _recover(app)["events"] == 5
    assert _recover(app)["events"] == 0  # already queued: not twice
    run_jobs(app)
    assert {e.status for e in session.scalars(select(WebhookEvent))} == {"processed"}
    assert len(zalo.sent_messages()) == 5
    assert _recover(app) == {"events": 0, "messages": 0, "interrupted": 0}


def test_messages_whose_delivery_job_was_lost_are_delivered_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    from datetime import UTC, datetime

    from jobs.outbox import queue_messages
    from zalo.messages import text_message

    zalo.accept_messages()
    with app.extensions["tichdiem"].sessions() as s:
        queue_messages(s, key="lost", user_id="8958041078911298472", messages=[text_message("+25 điểm")])
        s.commit()  # written, but its delivery job never made it to Redis
    assert _recover(app)["messages"] == 1
    run_jobs(app)
    assert [m["message"]["text"] for m in zalo.sent_messages()] == ["+25 điểm"]
    waiting = session.scalars(select(OutboxMessage)).one()
    assert waiting.status == "sent" and waiting.sent_at <= datetime.now(UTC)
    assert _recover(app)["messages"] == 0


def test_a_message_waiting_for_its_retry_backoff_is_left_alone(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.answer_messages({"error": -32, "message": "rate limit"})
    zalo.accept_messages()
    post_event(app.test_client(), text_event("trợ giúp", "retry-1"))
    run_jobs(app)  # -32: back to pending, RQ holds a retry with backoff
    row = session.scalars(select(OutboxMessage)).one()
    assert (row.status, row.attempts) == ("pending", 1)
    assert _recover(app)["messages"] == 0  # the retry is RQ's, not ours
    assert _recover(app, minutes=40)["messages"] == 1  # …unless that retry was lost with Redis


# --- health that tells the truth -----------------------------------------------------------------------------


def test_events_waiting_too_long_make_health_degraded_and_show_the_owner_a_banner(app: Flask, session: Session) -> None:
    from datetime import UTC, datetime, timedelta

    import time_machine

    from console.staff import create_staff
    from tests.conftest import HEALTH
    from tests.console_support import login, text_of

    for username, role in (("chu", "owner"), ("thu-ngan", "cashier")):
        create_staff(session, username=username, password="mat-khau-123", role=role, name=username)
    session.commit()
    post_event(app.test_client(), text_event("trợ giúp", "slow-1"))  # stored and queued; nobody works it off
    assert app.test_client().get("/healthz").json == {"status": "ok"}
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=3)):
        response = app.test_client().get("/healthz", headers=HEALTH)
        assert response.status_code == 503 and response.json["problems"] == ["events_waiting"]
        owner = text_of(login(app, "chu").get("/admin/"))
        assert "Có tin nhắn của khách chờ quá 2 phút chưa được trả lời." in owner
        assert "chờ quá 2 phút" not in text_of(login(app, "thu-ngan").get("/counter/"))


def test_redis_mode_needs_a_live_worker_the_scheduler_and_cron(settings, zalo, real_redis) -> None:  # type: ignore[no-untyped-def]
    from rq import cron_scheduler_registry
    from rq.scheduler import RQScheduler

    from jobs.worker import make_worker
    from tests.conftest import HEALTH, REDIS_TEST_URL
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(redis_url=REDIS_TEST_URL), config={"TESTING": True})
    body = app.test_client().get("/healthz", headers=HEALTH).json
    assert body["status"] == "degraded" and body["problems"] == ["no_worker", "no_scheduler", "no_cron"]
    worker = make_worker(app.extensions["tichdiem"], simple=True)
    worker.register_birth()
    worker.heartbeat()
    real_redis.set(RQScheduler.get_locking_key("default"), "scheduler-1", ex=60)
    registry = cron_scheduler_registry.get_registry_key()
    real_redis.zadd(registry, {"cron-gone": time.time() - 600})  # a cron that died without unregistering
    assert app.test_client().get("/healthz", headers=HEALTH).json["problems"] == ["no_cron"]
    real_redis.zadd(registry, {"cron-1": time.time()})
    body = app.test_client().get("/healthz", headers=HEALTH).json
    assert body["status"] == "ok" and body["queue"]["workers"] == 1 and body["queue"]["scheduler"] is True
    assert body["queue"]["cron"] is True
    worker.register_death()
    app.extensions["tichdiem"].engine.dispose()


def test_database_lost_between_the_send_and_recording_it(
    app: Flask, zalo: ZaloFake, session: Session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from jobs import outbox
    from jobs.outbox import deliver_one, queue_messages
    from zalo.messages import text_message

    monkeypatch.setattr(outbox, "MARK_SENT_PAUSE", 0)
    zalo.accept_messages("zalo-m-1")
    services = app.extensions["tichdiem"]
    with services.sessions() as s:
        (row_id,) = queue_messages(s, key="k", user_id="8958041078911298472", messages=[text_message("+25 điểm")])
        s.commit()
    drops = {"left": 2}

    def drop_connection(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if (
            statement.startswith("UPDATE outbox_messages SET status")
            and "zalo_message_id=" in statement  # the "sent" mark, not the claim's RETURNING
            and drops["left"]
        ):
            drops["left"] -= 1
            raise OperationalError(statement, parameters, Exception("server closed the connection unexpectedly"))

    event.listen(services.engine, "before_cursor_execute", drop_connection)
    try:
        assert deliver_one(services.sessions, services.zalo, row_id) == "sent"
    finally:
        event.remove(services.engine, "before_cursor_execute", drop_connection)
    row = session.get(OutboxMessage, row_id)
    assert (row.status, row.zalo_message_id, len(zalo.sent_messages())) == ("sent", "zalo-m-1", 1)


def test_database_lost_before_the_send_puts_the_row_back_for_the_retry(
    app: Flask, zalo: ZaloFake, session: Session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The fault drill found it: the OA token is read from the database after the claim; a cut connection there
    left the row "sending" although nothing reached Zalo, so recovery called it unknown and the customer never
    got an answer. Now it is pending again and the job's retry sends it, once."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from jobs import outbox
    from jobs.outbox import deliver_one, queue_messages
    from zalo.messages import text_message

    monkeypatch.setattr(outbox, "MARK_SENT_PAUSE", 0)
    zalo.accept_messages("zalo-m-2")
    services = app.extensions["tichdiem"]
    services.zalo.tokens._cached = None  # the token is read from the database on this send
    with services.sessions() as s:
        (row_id,) = queue_messages(s, key="k2", user_id="8958041078911298472", messages=[text_message("+5 điểm")])
        s.commit()
    drops = {"left": 1}

    def drop_connection(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM oa_tokens" in statement and drops["left"]:
            drops["left"] -= 1
            raise OperationalError(statement, parameters, Exception("server closed the connection unexpectedly"))

    event.listen(services.engine, "before_cursor_execute", drop_connection)
    try:
        with pytest.raises(OperationalError):
            deliver_one(services.sessions, services.zalo, row_id)
    finally:
        event.remove(services.engine, "before_cursor_execute", drop_connection)
    row = session.get(OutboxMessage, row_id)
    assert (row.status, row.attempts, len(zalo.sent_messages())) == ("pending", 0, 0)
    assert deliver_one(services.sessions, services.zalo, row_id) == "sent"  # the job's retry
    session.refresh(row)
    assert (row.status, len(zalo.sent_messages())) == ("sent", 1)


# --- processes survive: a worker and the cron outlive their Redis -------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own (never the shared one), to stop and start again empty."""

    def __init__(self, directory: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server not installed")
        self.server, self.directory = server, directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([self.server, *args, "--dir", str(self.directory)], stdout=subprocess.DEVNULL)
        self.wait_for(lambda: bool(self.client().ping()), 5, "redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self):  # type: ignore[no-untyped-def]
        from redis import Redis

        return Redis(port=self.port)

    @staticmethod
    def wait_for(check, seconds: float, failure: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.2)
        raise AssertionError(failure)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def _spawn(command: str, settings, redis_url: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=settings.secret_key,
        ZALO_APP_ID=settings.zalo_app_id,
        ZALO_OPENAPI_URL="http://127.0.0.1:1",  # nothing to send in these tests
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tichdiem", *command.split()],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def _restart_empty(redis: PrivateRedis, proc: subprocess.Popen[str]) -> None:
    """Redis goes away for a few seconds, the process stays up, Redis comes back with nothing in it."""
    redis.stop()
    time.sleep(3)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    redis.start()


@pytest.mark.slow
def test_worker_survives_redis_restarting_empty(settings, zalo: ZaloFake, private_redis: PrivateRedis) -> None:  # type: ignore[no-untyped-def]
    """Under a running `tichdiem worker`, Redis restarts empty: the worker stays up and answers the next job."""
    from tichdiem.app import create_app

    worker = _spawn("worker --simple", settings, private_redis.url)
    try:
        time.sleep(2)
        _restart_empty(private_redis, worker)
        private_redis.wait_for(lambda: private_redis.client().keys("rq:worker:*"), 40, "the worker did not register")
        assert worker.poll() is None
        app = create_app(settings.with_overrides(redis_url=private_redis.url), config={"TESTING": True})
        job = app.extensions["tichdiem"].queue.enqueue("tests.test_wiring.report_shop_name")
        private_redis.wait_for(lambda: job.get_status(refresh=True) == "finished", 20, "the job was not run")
        app.extensions["tichdiem"].engine.dispose()
    finally:
        _stop(worker)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["worker", "cron"])
def test_a_stop_request_while_redis_is_down_still_stops(settings, private_redis: PrivateRedis, command: str) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM (a deploy, systemctl stop) during a Redis outage: RQ's unregistering on the way out raised a
    Redis error over the stop request, and the loop that outlives Redis started a new worker instead."""
    proc = _spawn(command, settings, private_redis.url)
    time.sleep(3)  # up and working
    private_redis.stop()
    time.sleep(3)  # RQ retries its connection
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"`tichdiem {command}` ignored SIGTERM while Redis was down")


@pytest.mark.slow
def test_cron_survives_redis_restarting_empty(settings, private_redis: PrivateRedis) -> None:  # type: ignore[no-untyped-def]
    """RQ's CronScheduler ends on the first Redis error; `tichdiem cron` starts a new one when Redis is back,
    and the recovery tick is enqueued again (it runs at once on start)."""
    from rq import Queue

    cron = _spawn("cron", settings, private_redis.url)
    try:
        queue = Queue("default", connection=private_redis.client())
        recovery_enqueued = lambda: any(j.func_name == "jobs.recovery.recover" for j in queue.jobs)  # noqa: E731
        private_redis.wait_for(recovery_enqueued, 20, "the cron did not enqueue the recovery tick")
        _restart_empty(private_redis, cron)
        private_redis.wait_for(recovery_enqueued, 40, "the cron did not come back with Redis")
        assert cron.poll() is None
        assert private_redis.client().zcard("rq:cron_schedulers") == 1
    finally:
        _stop(cron)


def test_a_long_broadcast_is_not_reported_as_overdue_messages(app: Flask, session: Session) -> None:
    """A broadcast to many takes minutes by design; its senders own its rows (recover_broadcasts)."""
    from datetime import UTC, datetime, timedelta

    import time_machine

    from jobs.outbox import queue_messages
    from models import Broadcast
    from tests.conftest import HEALTH
    from zalo.messages import text_message

    with app.extensions["tichdiem"].sessions() as s:
        now = datetime.now(UTC)
        broadcast = Broadcast(name="b", text="t", segment={}, send_at=now, status="sending", created_at=now)
        s.add(broadcast)
        s.flush()
        ids = queue_messages(s, key="bc", user_id="8958041078911298472", messages=[text_message("Chào")])
        s.get(OutboxMessage, ids[0]).broadcast_id = broadcast.id
        s.commit()
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=5)):
        assert app.test_client().get("/healthz", headers=HEALTH).json["problems"] == []


def test_health_is_not_fooled_by_a_connection_the_database_dropped(app: Flask, services) -> None:  # type: ignore[no-untyped-def]
    """After a database restart the pool still holds dead connections; the first use drops one. That is no
    outage: /healthz tries once more on a fresh connection (the fault bench saw 'database_down' here)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from tests.conftest import HEALTH

    if services.engine.dialect.name != "postgresql":
        pytest.skip("terminating a server connection needs PostgreSQL")
    client = app.test_client()
    assert client.get("/healthz", headers=HEALTH).json["status"] == "ok"
    with services.engine.connect() as conn:  # the one pooled connection /healthz will get next
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with create_engine(services.engine.url, poolclass=NullPool).connect() as admin:  # not from the app's pool
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    body = client.get("/healthz", headers=HEALTH).json
    assert body["status"] == "ok", body


def slow_job() -> str:
    time.sleep(1)
    return "done"


def test_the_embedded_worker_stops_after_the_job_a_sigterm_interrupted(app: Flask) -> None:
    """SIGTERM during a job: RQ finishes it and stops its worker; the embedded loop must stop too, not spin on
    a worker that will not take jobs any more (`tichdiem run` hung on SIGTERM)."""
    import threading

    from tichdiem.queue import run_embedded_worker

    services = app.extensions["tichdiem"]
    services.queue.enqueue(slow_job)
    services.queue.enqueue(slow_job)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    stop = threading.Event()
    threading.Timer(10, stop.set).start()  # the old behaviour: only this would end it
    started = time.monotonic()
    try:
        run_embedded_worker(services, stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert not stop.is_set() and time.monotonic() - started < 5
    stop.set()


@pytest.mark.slow
def test_a_worker_pool_restarts_a_killed_member_and_stops_as_one(settings, private_redis: PrivateRedis) -> None:  # type: ignore[no-untyped-def]
    """The Procfile's `tichdiem worker --simple --processes N`: N workers under one process the supervisor sees;
    a member killed (OOM, -9) is replaced, SIGTERM stops them all."""
    from rq import Worker

    pool = _spawn("worker --simple --processes 3", settings, private_redis.url)
    redis = private_redis.client()
    try:
        private_redis.wait_for(lambda: len(Worker.all(connection=redis)) == 3, 30, "three workers did not register")
        members = [w.pid for w in Worker.all(connection=redis)]
        assert pool.pid not in members  # the parent only supervises
        os.kill(members[0], signal.SIGKILL)
        private_redis.wait_for(
            lambda: {w.pid for w in Worker.all(connection=redis)} - set(members),
            30,
            "the killed member was not replaced",
        )
        assert pool.poll() is None
        os.killpg(pool.pid, signal.SIGTERM)
        assert pool.wait(timeout=20) == 0
    finally:
        if pool.poll() is None:
            os.killpg(pool.pid, signal.SIGKILL)


def test_an_event_whose_pooled_connections_died_is_answered_at_once(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    """Connections cut by the server (a restart, a failover) fail the first statement on each. The job runs
    again at once on fresh connections instead of waiting for RQ's retry (the fault drill's pg-killed healed in
    158 s on the retry delays; 5 s before the per-event reads)."""
    from sqlalchemy import text

    from models import WebhookEvent
    from tests.conftest import PG_BASE_URL
    from tichdiem.db import make_engine

    services = app.extensions["tichdiem"]
    if services.engine.dialect.name != "postgresql":
        pytest.skip("cutting a server's connections needs the PostgreSQL server")
    zalo.accept_messages()
    assert post_event(app.test_client(), text_event("giúp", "m-cut")).status_code == 200
    connections = [services.engine.connect() for _ in range(3)]  # fill the pool with connections to cut
    pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in connections]
    for c in connections:
        c.close()
    admin = make_engine(PG_BASE_URL)
    with admin.begin() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    run_jobs(app)  # no scheduled retries: only what runs now
    session.expire_all()
    assert session.scalar(select(WebhookEvent.status)) == "processed"
    sent = zalo.sent_messages()  # the newcomer's welcome and the share-info card, each once
    assert len(sent) == 2 and sent[0]["message"]["text"].startswith("Chào mừng")


def _nothing() -> None:
    """A job that does nothing (RQ imports it by name)."""


def test_a_burst_worker_forks_no_scheduler(app: Flask, services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """RQ's maintenance forked a scheduler even in burst mode, and the SIGTERM at the burst's end could reach it
    before it installed its own handlers: it ran on, and the worker waited for it forever (a bench.broadcast
    burst hung with everything sent). A burst worker enqueues the due scheduled jobs once, at its start."""
    from rq.scheduler import RQScheduler

    from tichdiem import queue

    started: list[RQScheduler] = []
    monkeypatch.setattr(RQScheduler, "start", lambda scheduler: started.append(scheduler))
    monkeypatch.setattr(queue, "MAINTENANCE_SECONDS", 0)  # maintenance due at every turn of the work loop
    for _ in range(3):
        services.queue.enqueue(_nothing)
    queue._run_rq_worker(services, burst=True, simple=True)
    assert services.queue.count == 0
    assert started == []
