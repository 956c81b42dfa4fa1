"""The event path end to end: signed POST -> stored once -> job -> one reply at the mocked Zalo API."""

import json
import threading

import pytest
import responses
from flask import Flask
from flask import request as flask_request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import EventStatus, OutboxMessage, WebhookEvent, ZaloUser
from tests.conftest import HEALTH, REDIS_TEST_URL
from tests.helpers import CS_URL, OPENAPI, ZaloFake, fixture_bytes, post_event, run_jobs, sign, text_event
from tichdiem.extensions import Services

USER_DETAIL_URL = f"{OPENAPI}/v3.0/oa/user/detail"
USER = "8958041078911298472"


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookEvent)) or 0


def test_follow_ends_in_a_welcome_and_a_share_info_card(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.accept_messages("zmsg-1")
    response = post_event(app.test_client(), fixture_bytes("follow"))
    assert response.status_code == 200
    assert zalo.sent_messages() == []  # nothing is sent inside the request
    run_jobs(app)
    calls = zalo.calls_to(CS_URL)
    assert len(calls) == 2
    assert all(c.request.headers["access_token"] == "AT-initial" for c in calls)
    assert "Authorization" not in calls[0].request.headers
    welcome, card = (json.loads(c.request.body) for c in calls)
    assert welcome["recipient"] == {"user_id": USER}
    assert welcome["message"] == {
        "text": "Chào mừng bạn đến với Cà phê Sữa Đá! 🎉\n"
        "Tích điểm mỗi lần mua hàng, đổi điểm lấy quà và nhận ưu đãi sinh nhật.\n\n"
        'Bấm "Chia sẻ thông tin" bên dưới để trở thành thành viên, hoặc nhắn: sđt 0912345678'
    }
    assert card == {
        "recipient": {"user_id": USER},
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "request_user_info",
                    "elements": [
                        {
                            "title": "Thẻ thành viên Cà phê Sữa Đá",
                            "subtitle": "Chia sẻ tên và số điện thoại để tích điểm, đổi quà và nhận quà sinh nhật",
                            "image_url": "http://127.0.0.1:5000/static/logo.png",
                        }
                    ],
                },
            }
        },
    }
    outbox = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(o.status, o.zalo_message_id, o.key) for o in outbox] == [
        ("sent", "zmsg-1", "evt-1:0"),
        ("sent", "zmsg-1", "evt-1:1"),
    ]
    user = session.scalars(select(ZaloUser)).one()
    assert user.user_id == USER and user.is_follower and user.last_interaction_at is not None
    assert user.display_name == "Lan Nguyễn"  # profile fetched lazily from /v3.0/oa/user/detail


def test_same_event_delivered_twice_replies_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.accept_messages()
    client = app.test_client()
    raw = fixture_bytes("follow")
    assert post_event(client, raw).json == {"message": "ok"}
    assert post_event(client, raw).json == {"message": "duplicate"}
    run_jobs(app)
    assert len(zalo.sent_messages()) == 2  # welcome + share-info card, once
    assert count_events(session) == 1


def test_rerunning_a_handled_event_sends_nothing_more(app: Flask, zalo: ZaloFake, services: Services) -> None:
    from jobs.inbound import enqueue_handle_event

    zalo.accept_messages()
    post_event(app.test_client(), fixture_bytes("follow"))
    run_jobs(app)
    enqueue_handle_event(services.queue, 1)  # e.g. `events drain` racing the first job
    run_jobs(app)
    assert len(zalo.sent_messages()) == 2


@pytest.mark.postgres
def test_concurrent_deliveries_of_one_event_reply_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the race is about PostgreSQL's concurrent inserts")
    zalo.accept_messages()
    raw = fixture_bytes("user_send_text")
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(post_event(client, raw).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    run_jobs(app)
    assert count_events(session) == 1
    assert len(zalo.sent_messages()) == 1


@pytest.mark.parametrize(
    "header",
    [None, "mac=" + "0" * 64, "wrong-secret", "tampered"],
)
def test_bad_signatures_get_401_and_store_nothing(app: Flask, session: Session, header: str | None) -> None:
    raw = fixture_bytes("follow")
    headers = {"Content-Type": "application/json"}
    if header == "wrong-secret":
        headers["X-ZEvent-Signature"] = sign(raw, "not-the-secret")
    elif header == "tampered":
        headers["X-ZEvent-Signature"] = sign(raw, "oa-secret-key-abc")
        raw = raw.replace(b"8958041078911298472", b"8958041078911298473")
    elif header:
        headers["X-ZEvent-Signature"] = header
    response = app.test_client().post("/webhooks/zalo", data=raw, headers=headers)
    assert response.status_code == 401
    assert count_events(session) == 0


def test_app_secret_signature_is_accepted(app: Flask, zalo: ZaloFake, session: Session) -> None:
    assert post_event(app.test_client(), fixture_bytes("follow"), secret="app-secret-xyz").status_code == 200
    assert count_events(session) == 1


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_gets_400_never_500(app: Flask, session: Session, raw: bytes) -> None:
    response = app.test_client().post("/webhooks/zalo", data=raw, headers={"X-ZEvent-Signature": "mac=00"})
    assert response.status_code == 400
    assert count_events(session) == 0


def test_signed_body_without_event_name_is_acknowledged(app: Flask, session: Session) -> None:
    raw = b'{"app_id":"3349222483842580322","timestamp":"1724921862647"}'
    response = post_event(app.test_client(), raw)
    assert response.status_code == 200
    assert count_events(session) == 0


def test_oa_echoes_are_dropped(app: Flask, zalo: ZaloFake, session: Session) -> None:
    response = post_event(app.test_client(), fixture_bytes("oa_send_text"))
    assert response.json == {"message": "ignored: echo"}
    run_jobs(app)
    assert count_events(session) == 0 and zalo.sent_messages() == []


def test_unknown_event_is_stored_acknowledged_and_silent(app: Flask, zalo: ZaloFake, session: Session) -> None:
    assert post_event(app.test_client(), fixture_bytes("add_user_to_tag")).status_code == 200
    run_jobs(app)
    event = session.scalars(select(WebhookEvent)).one()
    assert (event.event_name, event.status) == ("add_user_to_tag", EventStatus.PROCESSED)
    assert zalo.sent_messages() == []


def test_receipts_mark_our_message_delivered_and_seen_and_touch_no_one(
    app: Flask, zalo: ZaloFake, session: Session
) -> None:
    """Receipts name the OA as sender (chatwoot's reading): no user for the OA's id, no profile fetched,
    no window opened; the outbox row Zalo's message id names gets its delivered and seen times."""
    from models import OutboxMessage

    zalo.accept_messages(message_id="a7a8e8ff0bbb13bd4ce4")
    post_event(app.test_client(), text_event("trợ giúp", "help-1"))
    run_jobs(app)
    row = session.scalars(select(OutboxMessage)).one()
    assert row.zalo_message_id == "a7a8e8ff0bbb13bd4ce4" and row.delivered_at is None
    user_before = session.scalars(select(ZaloUser)).one()
    interaction = user_before.last_interaction_at
    details = len(zalo.calls_to(USER_DETAIL_URL))
    for receipt in ("user_received_message", "user_seen_message", "user_received_message_template"):
        assert post_event(app.test_client(), fixture_bytes(receipt)).status_code == 200
    run_jobs(app)
    session.expire_all()
    row = session.get(OutboxMessage, row.id)
    assert row.delivered_at is not None and row.seen_at is not None
    assert [u.user_id for u in session.scalars(select(ZaloUser))] == ["8958041078911298472"]  # none for the OA
    assert session.scalars(select(ZaloUser)).one().last_interaction_at == interaction
    assert len(zalo.calls_to(USER_DETAIL_URL)) == details  # receipts fetch no profile


def test_queue_down_still_stores_and_drain_recovers(
    app: Flask, zalo: ZaloFake, services: Services, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    zalo.accept_messages()

    def down(*args: object, **kwargs: object) -> None:
        raise RedisConnectionError("redis is down")

    monkeypatch.setattr(services.queue, "enqueue", down)
    assert post_event(app.test_client(), fixture_bytes("follow")).status_code == 200
    assert session.scalars(select(WebhookEvent)).one().status == EventStatus.RECEIVED
    monkeypatch.undo()

    result = app.test_cli_runner().invoke(args=["events", "drain"])
    assert "1 of 1 waiting event(s) enqueued" in result.output
    run_jobs(app)
    assert len(zalo.sent_messages()) == 2
    session.expire_all()
    assert session.scalars(select(WebhookEvent)).one().status == EventStatus.PROCESSED


def test_database_down_answers_503(app: Flask, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    import webhooks.views

    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(webhooks.views, "store_event", broken)
    assert post_event(app.test_client(), fixture_bytes("follow")).status_code == 503


def test_healthz_reports_database_and_queue(app: Flask) -> None:
    body = app.test_client().get("/healthz", headers=HEALTH).json
    assert body["status"] == "ok"
    assert body["database"]["ok"]
    assert body["queue"] == {"ok": True, "mode": "embedded", "queued": 0, "failed_jobs": 0}


def test_failing_bot_marks_event_failed_and_retries(
    app: Flask, zalo: ZaloFake, services: Services, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    zalo.accept_messages()
    bot = services.bot
    original = bot.handle
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup")
        return original(*args, **kwargs)

    monkeypatch.setattr(bot, "handle", flaky)
    post_event(app.test_client(), fixture_bytes("user_send_text"))
    run_jobs(app)
    event = session.scalars(select(WebhookEvent)).one()
    assert event.status == EventStatus.FAILED and "database hiccup" in (event.error or "")
    assert zalo.sent_messages() == []
    run_jobs(app, include_scheduled=True)  # RQ Retry scheduled the next attempt
    session.expire_all()
    event = session.scalars(select(WebhookEvent)).one()
    assert event.status == EventStatus.PROCESSED and event.attempts == 2
    assert len(zalo.sent_messages()) == 1


def test_real_redis_queue_and_worker(settings, zalo: ZaloFake, real_redis) -> None:
    """The same path with a real Redis server and RQ worker (what production runs)."""
    from jobs.worker import make_worker
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(redis_url=REDIS_TEST_URL), config={"TESTING": True})
    zalo.accept_messages()
    post_event(app.test_client(), text_event("help", "m-redis-1"))
    queue = app.extensions["tichdiem"].queue
    assert queue.connection.connection_pool.connection_kwargs["port"] == 6379
    assert queue.count == 0  # the stored row is the hand-off (jobs.lane): no RQ job per event
    make_worker(app.extensions["tichdiem"], simple=True).work(burst=True, logging_level="WARNING")
    assert len(zalo.sent_messages()) == 1
    assert app.test_client().get("/healthz", headers=HEALTH).json["queue"]["mode"] == "redis"
    app.extensions["tichdiem"].engine.dispose()


def test_no_network_escapes(zalo: ZaloFake) -> None:
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get("https://example.com/")
    assert isinstance(zalo.mock, responses.RequestsMock)


def test_the_webhook_is_answered_in_front_of_flask(app: Flask, zalo: ZaloFake) -> None:
    """Zalo's deliveries never enter Flask's request machinery (a third of the webhook's CPU under wrk, issue 16):
    no request hook runs for them, and the answer is the same JSON with the app's security headers."""
    seen: list[str] = []
    app.before_request(lambda: seen.append(flask_request.path))
    client = app.test_client()
    stored = post_event(client, text_event("điểm", "front-1"))
    assert stored.status_code == 200 and stored.json == {"message": "ok"}
    assert stored.headers["X-Content-Type-Options"] == "nosniff" and stored.headers["X-Frame-Options"] == "DENY"
    assert post_event(client, text_event("điểm", "front-1")).json == {"message": "duplicate"}
    assert client.post("/webhooks/zalo", data=b"{", headers={"X-ZEvent-Signature": "mac=0"}).status_code == 400
    assert post_event(client, text_event("điểm", "front-2"), secret="wrong").status_code == 401
    too_large = client.post("/webhooks/zalo", data=b"x" * (256 * 1024 + 1))
    assert too_large.status_code == 413 and too_large.json == {"message": "body too large"}
    not_post = client.get("/webhooks/zalo")
    assert not_post.status_code == 405 and not_post.headers["Allow"] == "POST"
    assert seen == []
    client.get("/healthz")
    assert seen == ["/healthz"]  # the rest of the app still goes through Flask


def test_the_api_opens_no_cookie_session_and_the_console_does(app: Flask) -> None:
    """The POS API authenticates each request by its key: the console's signed cookie is neither verified nor
    re-signed for it (~5% of a machine request's CPU under load, issue 16)."""
    from flask.sessions import NullSession

    for path, machine in (("/api/v1/members", True), ("/admin/", False)):
        with app.test_request_context(path):
            opened = app.session_interface.open_session(app, flask_request)
            assert isinstance(opened, NullSession) is machine, path


def test_a_delivery_on_a_connection_the_database_dropped_gets_503_and_the_next_is_stored(
    app: Flask, services: Services, session: Session
) -> None:
    """The webhook's insert runs on the pooled driver connection (tichdiem.db.driver_scalar): a connection the
    server dropped (a restart, a failover) answers 503 so Zalo delivers again, and the pool replaces it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    if services.engine.dialect.name != "postgresql":
        pytest.skip("terminating a server connection needs PostgreSQL")
    client = app.test_client()
    assert post_event(client, text_event("điểm", "drop-0")).status_code == 200
    with services.engine.connect() as conn:  # the one pooled connection the next delivery will get
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with create_engine(services.engine.url, poolclass=NullPool).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert post_event(client, text_event("điểm", "drop-1")).status_code == 503
    assert post_event(client, text_event("điểm", "drop-1")).json == {"message": "ok"}  # Zalo's redelivery
    assert post_event(client, text_event("điểm", "drop-1")).json == {"message": "duplicate"}
    assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 2
