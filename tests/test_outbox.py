"""Replies go out after commit through the outbox: a retried job never re-sends a delivered reply."""

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.outbox import MAX_SEND_ATTEMPTS, deliver_one, queue_messages
from models import OutboxMessage, OutboxStatus
from tests.conftest import HEALTH
from tests.helpers import ZaloFake, post_event, run_jobs, text_event
from tichdiem.extensions import Services
from zalo.errors import ZaloRateLimited

LONG_TEXT = "dòng chữ dài " * 400  # > 2,000 characters: the reply must be split


def test_retry_after_partial_delivery_sends_only_the_rest(
    app: Flask, zalo: ZaloFake, session: Session, services: Services
) -> None:
    with services.sessions() as s, s.begin():
        queue_messages(s, key="test", user_id="u1", messages=[{"text": "một"}, {"text": "hai"}])
    ids = list(session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    zalo.accept_messages("m1")
    zalo.answer_messages({"error": -32, "message": "reached limit call api"})
    zalo.accept_messages("m2")
    from jobs.outbox import deliver_all

    with pytest.raises(ZaloRateLimited):
        deliver_all(services.sessions, services.zalo, ids)
    deliver_all(services.sessions, services.zalo, ids)  # the retry
    assert [m["message"]["text"] for m in zalo.sent_messages()] == ["một", "hai", "hai"]
    rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(r.status, r.zalo_message_id, r.attempts) for r in rows] == [("sent", "m1", 1), ("sent", "m2", 2)]


def test_queue_messages_is_idempotent(services: Services, session: Session) -> None:
    for _ in range(3):
        with services.sessions() as s, s.begin():
            queue_messages(s, key="k", user_id="u1", messages=[{"text": "a"}])
    assert len(session.scalars(select(OutboxMessage)).all()) == 1


def test_permanent_error_is_recorded_not_retried(services: Services, zalo: ZaloFake, session: Session) -> None:
    with services.sessions() as s, s.begin():
        queue_messages(s, key="k", user_id="u1", messages=[{"text": "a"}])
    zalo.answer_messages({"error": -230, "message": "User has not interacted in 7 days"})
    row_id = session.scalars(select(OutboxMessage.id)).one()
    assert deliver_one(services.sessions, services.zalo, row_id) == OutboxStatus.FAILED
    assert deliver_one(services.sessions, services.zalo, row_id) == OutboxStatus.FAILED
    assert len(zalo.sent_messages()) == 1
    row = session.get(OutboxMessage, row_id)
    assert row is not None and "-230" in (row.last_error or "")


def test_retryable_error_gives_up_after_max_attempts(services: Services, zalo: ZaloFake, session: Session) -> None:
    with services.sessions() as s, s.begin():
        queue_messages(s, key="k", user_id="u1", messages=[{"text": "a"}])
    row_id = session.scalars(select(OutboxMessage.id)).one()
    zalo.answer_messages(*[{"error": -32, "message": "limit"}] * (MAX_SEND_ATTEMPTS + 2))
    for _ in range(MAX_SEND_ATTEMPTS):
        with pytest.raises(ZaloRateLimited):
            deliver_one(services.sessions, services.zalo, row_id)
    assert deliver_one(services.sessions, services.zalo, row_id) == OutboxStatus.FAILED
    assert len(zalo.sent_messages()) == MAX_SEND_ATTEMPTS


def test_send_interrupted_by_a_dead_worker_is_never_repeated(
    app: Flask, zalo: ZaloFake, services: Services, session: Session
) -> None:
    from datetime import timedelta

    from jobs.outbox import mark_interrupted
    from models import utcnow

    with services.sessions() as s, s.begin():
        queue_messages(s, key="k", user_id="u1", messages=[{"text": "a"}])
        row = s.scalars(select(OutboxMessage)).one()
        row.status, row.claimed_at = OutboxStatus.SENDING, utcnow() - timedelta(seconds=30)
    zalo.accept_messages("m1")
    # Zalo may already have it: a claimed row is never sent again, fresh or stale.
    assert deliver_one(services.sessions, services.zalo, row.id) == OutboxStatus.SENDING
    with services.sessions() as s, s.begin():
        assert mark_interrupted(s) == 0  # 30 s: the worker may still be waiting for Zalo's answer
        s.get(OutboxMessage, row.id).claimed_at = utcnow() - timedelta(minutes=5)
    with services.sessions() as s, s.begin():
        assert mark_interrupted(s) == 1
    assert deliver_one(services.sessions, services.zalo, row.id) == OutboxStatus.UNKNOWN
    assert zalo.sent_messages() == []
    assert app.test_client().get("/healthz", headers=HEALTH).json["database"]["messages_unknown"] == 1


def test_job_retry_after_send_failure_does_not_rerun_the_bot(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.mock.add("POST", "https://openapi.zalo.me/v3.0/oa/message/cs", status=503, body="down")
    zalo.accept_messages("m-ok")
    post_event(app.test_client(), text_event("trợ giúp", "m-1"))
    run_jobs(app)
    run_jobs(app, include_scheduled=True)
    texts = [m["message"]["text"] for m in zalo.sent_messages()]
    assert len(texts) == 2 and texts[0] == texts[1]  # the same reply tried twice, sent once
    rows = session.scalars(select(OutboxMessage)).all()
    assert [(r.status, r.attempts) for r in rows] == [("sent", 2)]


def test_long_replies_are_split_under_zalo_limit() -> None:
    from bot.replies import Reply
    from zalo.messages import Button

    messages = Reply(text=LONG_TEXT, buttons=(Button("Xem", "#X"),)).to_messages()
    assert len(messages) >= 3
    assert all(len(m["text"]) <= 2000 for m in messages)
    assert "attachment" in messages[-1] and all("attachment" not in m for m in messages[:-1])
    assert " ".join(m["text"] for m in messages).split() == LONG_TEXT.split()


def test_outbox_drain_sends_messages_whose_job_was_lost(app: Flask, zalo: ZaloFake, services: Services) -> None:
    from datetime import timedelta

    import time_machine

    from models import utcnow

    zalo.accept_messages("m1")
    with services.sessions() as s, s.begin():
        queue_messages(s, key="lost", user_id="u1", messages=[{"text": "xin chào"}])  # never enqueued
    with time_machine.travel(utcnow() + timedelta(minutes=2)):
        result = app.test_cli_runner().invoke(args=["outbox", "drain"])
    assert "1 pending message(s) enqueued; 0 interrupted send(s) marked unknown" in result.output
    run_jobs(app)
    assert [m["message"]["text"] for m in zalo.sent_messages()] == ["xin chào"]


def test_a_proactive_message_is_claimed_and_checked_in_one_statement(
    services: Services, zalo: ZaloFake, session: Session
) -> None:
    """A broadcast sends thousands of rows: the recipient's follow state and last interaction (Zalo's 7-day
    window) and the broadcast's status come back with the row's claim, not in a read of their own (issue 16)."""
    from datetime import timedelta

    from sqlalchemy import event

    from jobs.proactive import proactive_payload
    from models import ZaloUser, utcnow

    session.add(ZaloUser(user_id="u0", is_follower=True, last_interaction_at=utcnow() - timedelta(days=1)))
    session.add(ZaloUser(user_id="u1", is_follower=True, last_interaction_at=utcnow() - timedelta(days=1)))
    session.add(ZaloUser(user_id="u2", is_follower=False, last_interaction_at=utcnow() - timedelta(days=1)))
    session.commit()
    item = proactive_payload("Ưu đãi cuối tuần", promotional=False)
    with services.sessions() as s, s.begin():
        warm = queue_messages(s, key="p0", user_id="u0", messages=[item])[0]
        first = queue_messages(s, key="p1", user_id="u1", messages=[item])[0]
        second = queue_messages(s, key="p2", user_id="u2", messages=[item])[0]
    zalo.accept_messages("m1")
    # The first send reads the OA token and the shop's template (each kept for 30 s per process).
    assert deliver_one(services.sessions, services.zalo, warm, proactive=services.proactive) == "sent"
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement.split("\n")[0])

    engine = services.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert deliver_one(services.sessions, services.zalo, first, proactive=services.proactive) == "sent"
        assert len(statements) == 2, "\n".join(statements)  # the claim with its facts, the "sent" mark
        assert deliver_one(services.sessions, services.zalo, second, proactive=services.proactive) == "skipped"
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [m["recipient"] for m in zalo.sent_messages()] == [{"user_id": "u0"}, {"user_id": "u1"}]


def test_a_sender_carries_each_sent_mark_to_its_next_claim(
    services: Services, zalo: ZaloFake, session: Session
) -> None:
    """A broadcast sender writes a message's "sent" mark with its next claim (PostgreSQL: one statement), and
    what it still carries at the end with `write_marks`: every row ends "sent" with Zalo's message id."""
    from sqlalchemy import event

    from jobs.outbox import Marks, write_marks

    with services.sessions() as s, s.begin():
        ids = [queue_messages(s, key=f"c{i}", user_id=f"u{i}", messages=[{"text": "x"}])[0] for i in range(3)]
    for i in range(3):
        zalo.accept_messages(f"m{i}")
    assert deliver_one(services.sessions, services.zalo, ids[0]) == "sent"  # warms the OA token
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = services.sessions.kw["bind"]
    carry: Marks = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert deliver_one(services.sessions, services.zalo, ids[1], carry=carry) == "sent"
        assert len(carry) == 1 and len(statements) == 1  # the claim; the mark waits
        assert deliver_one(services.sessions, services.zalo, ids[2], carry=carry) == "sent"
        pg = engine.dialect.name == "postgresql"
        assert len(carry) == 1 and len(statements) == (2 if pg else 3)  # PostgreSQL: the mark rode on the claim
    finally:
        event.remove(engine, "before_cursor_execute", count)
    write_marks(services.sessions, carry)
    assert carry == []
    rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(r.status, r.zalo_message_id, r.attempts) for r in rows] == [
        ("sent", "m0", 1),
        ("sent", "m1", 1),
        ("sent", "m2", 1),
    ]


def test_a_proactive_row_handed_over_without_its_facts_reads_them(services: Services, session: Session) -> None:
    """A row claimed by its writer (not by `_claim`) comes without SendFacts: the sender reads the same columns."""
    from datetime import timedelta

    from jobs.proactive import ProactiveSender, Skip, proactive_payload
    from models import ZaloUser, utcnow

    session.add(ZaloUser(user_id="u2", is_follower=False, last_interaction_at=utcnow() - timedelta(days=1)))
    session.commit()
    with services.sessions() as s, s.begin():
        row_id = queue_messages(s, key="p", user_id="u2", messages=[proactive_payload("Ưu đãi", promotional=False)])[0]
    row = session.get(OutboxMessage, row_id)
    assert row is not None and isinstance(services.proactive, ProactiveSender)
    with pytest.raises(Skip, match="not following the OA"):
        services.proactive.send(row)
