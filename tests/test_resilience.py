"""Faults and bad input: nothing lost, nothing doubled, never a 500 (bounded, loopback only)."""

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.fake_zalo_server import FakeZalo
from jobs.worker import make_worker
from models import EventStatus, OutboxMessage, WebhookEvent, utcnow
from tests.conftest import REDIS_TEST_URL, TEST_SETTINGS
from tests.helpers import FIXTURES, ZaloFake, fixture_bytes, post_event, run_jobs, sign, text_event
from tichdiem.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens, connections are refused at once


def count(session: Session, *where) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(WebhookEvent).where(*where)) or 0


def test_redis_down_events_are_stored_then_drained_once(settings, zalo: ZaloFake, real_redis, session: Session) -> None:
    zalo.accept_messages()
    down = create_app(settings.with_overrides(redis_url=f"redis://{CLOSED_PORT}/0"), config={"TESTING": True})
    client = down.test_client()
    for i in range(5):
        assert post_event(client, text_event("trợ giúp", f"outage-{i}", user_id=f"u{i}")).status_code == 200
    assert post_event(client, text_event("trợ giúp", "outage-0", user_id="u0")).json == {"message": "duplicate"}
    assert count(session, WebhookEvent.status == EventStatus.RECEIVED) == 5
    assert down.test_client().get("/healthz").status_code == 503  # the queue is reported down

    back = create_app(settings.with_overrides(redis_url=REDIS_TEST_URL), config={"TESTING": True})
    assert "5 of 5 waiting event(s) enqueued" in back.test_cli_runner().invoke(args=["events", "drain"]).output
    back.test_cli_runner().invoke(args=["events", "drain"])  # drained twice: still handled once
    make_worker(back.extensions["tichdiem"], simple=True).work(burst=True, logging_level="WARNING")
    session.expire_all()
    assert count(session, WebhookEvent.status == EventStatus.PROCESSED) == 5
    assert sorted(m["recipient"]["user_id"] for m in zalo.sent_messages()) == [f"u{i}" for i in range(5)]
    for app in (down, back):
        app.extensions["tichdiem"].engine.dispose()


def test_database_down_answers_503_so_zalo_retries() -> None:
    app = create_app(
        TEST_SETTINGS.with_overrides(database_url=f"postgresql+psycopg://postgres@{CLOSED_PORT}/x"),
        config={"TESTING": True},
    )
    response = post_event(app.test_client(), fixture_bytes("follow"))
    assert response.status_code == 503
    assert app.test_client().get("/healthz").status_code == 503


def test_replayed_old_event_is_handled_once(app, zalo: ZaloFake, session: Session) -> None:
    zalo.accept_messages()
    raw = fixture_bytes("user_send_text")
    post_event(app.test_client(), raw)
    run_jobs(app)
    with time_machine.travel(utcnow() + timedelta(days=3)):  # Zalo's last retry comes after an hour; an attacker later
        assert post_event(app.test_client(), raw).json == {"message": "duplicate"}
        run_jobs(app)
    assert len(zalo.sent_messages()) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_worker_killed_while_replying(settings, real_redis, session: Session) -> None:
    """Kill the worker while Zalo handles the reply: the event is handled once, the reply sent once."""
    proc: dict[str, subprocess.Popen] = {}

    def kill(number: int) -> None:
        if number == 2:  # the second message of the welcome (the share-info card)
            os.kill(proc["worker"].pid, signal.SIGKILL)

    with FakeZalo(latency=0.02, on_request=kill) as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            DATABASE_URL=settings.database_url,
            REDIS_URL=REDIS_TEST_URL,
            ZALO_APP_ID=settings.zalo_app_id,
            SECRET_KEY=settings.secret_key,
            ZALO_OA_SECRET_KEY=settings.zalo_oa_secret_key,
            ZALO_APP_SECRET=settings.zalo_app_secret,
            ZALO_ACCESS_TOKEN="AT",
            ZALO_REFRESH_TOKEN="RT",
            ZALO_OPENAPI_URL=fake.url,
        )
        app = create_app(
            settings.with_overrides(redis_url=REDIS_TEST_URL, zalo_openapi_url=fake.url), config={"TESTING": True}
        )
        post_event(app.test_client(), fixture_bytes("follow"))
        command = [sys.executable, "-m", "tichdiem", "worker", "--burst", "--simple"]
        proc["worker"] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert proc["worker"].wait(timeout=60) == -signal.SIGKILL
        with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=3)):
            drained = app.test_cli_runner().invoke(args=["outbox", "drain"])  # marks the interrupted send
            assert "1 interrupted send(s) marked unknown" in drained.output, drained.output
            app.test_cli_runner().invoke(args=["events", "drain"])
        proc["worker"] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert proc["worker"].wait(timeout=60) == 0
    session.expire_all()
    assert count(session, WebhookEvent.status == EventStatus.PROCESSED) == 1
    statuses = sorted(s for (s,) in session.execute(select(OutboxMessage.status)))
    assert statuses == ["sent", "unknown"]
    assert fake.received == {"8958041078911298472": 2}  # the welcome and the card, each once
    app.extensions["tichdiem"].engine.dispose()


# --- fuzzing the webhook ------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
REAL = [json.loads((FIXTURES / f).read_bytes()) for f in sorted(os.listdir(FIXTURES)) if f.endswith(".json")]


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A real payload with some fields replaced by arbitrary JSON (wrong types, missing parts, huge text)."""
    body = json.loads(json.dumps(draw(st.sampled_from(REAL))))
    for key in draw(st.lists(st.sampled_from(sorted({k for p in REAL for k in p})), max_size=3)):
        if draw(st.booleans()):
            body[key] = draw(JSON)
        else:
            body.pop(key, None)
    body["timestamp"] = str(draw(st.integers(0, 2**62)))
    if isinstance(body.get("message"), dict) and draw(st.booleans()):
        body["message"]["text"] = draw(st.text(max_size=3000))
    body.setdefault("app_id", TEST_SETTINGS.zalo_app_id)
    return json.dumps(body, ensure_ascii=False).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(mutated_event(), min_size=10, max_size=20))
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_signed_mutated_events_never_500_and_never_fail(app, zalo: ZaloFake, batch: list[bytes]) -> None:
    zalo.accept_messages()
    zalo.accept_uploads()
    client = app.test_client()
    for raw in batch:
        assert post_event(client, raw).status_code in (200, 400)
    run_jobs(app)
    services = app.extensions["tichdiem"]
    with services.sessions() as session:
        failed = session.scalars(select(WebhookEvent).where(WebhookEvent.status == EventStatus.FAILED)).all()
        assert failed == [], failed[0].error if failed else ""


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=400) | mutated_event(),
    header=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80),
)  # HTTP has no newlines in headers
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unsigned_or_garbage_bodies_store_nothing(app, raw: bytes, header: str) -> None:
    response = app.test_client().post("/webhooks/zalo", data=raw, headers={"X-ZEvent-Signature": header})
    assert response.status_code in (400, 401)
    with app.extensions["tichdiem"].sessions() as session:
        assert count(session) == 0


def test_signature_of_the_wrong_body_is_refused(app) -> None:
    raw = fixture_bytes("follow")
    other = text_event("x", "m")
    response = app.test_client().post(
        "/webhooks/zalo", data=other, headers={"X-ZEvent-Signature": sign(raw, "oa-secret-key-abc")}
    )
    assert response.status_code == 401
