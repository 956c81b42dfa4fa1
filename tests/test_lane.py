"""The inbound lane (jobs.lane): the events table is the queue; a claim is a lease; RQ only retries."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask import Flask
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from jobs import lane
from jobs.context import Services
from loyalty.members import create_member
from models import EventStatus, OutboxMessage, OutboxStatus, WebhookEvent, utcnow
from tests.helpers import CS_URL, ZaloFake, post_event, run_jobs, text_event


def _store(app: Flask, n: int, prefix: str = "lane") -> None:
    client = app.test_client()
    for i in range(n):
        assert post_event(
            client, text_event("trợ giúp", f"{prefix}-{i}", user_id=f"71000000000000000{i:02d}")
        ).json == {"message": "ok"}


def test_the_webhook_enqueues_nothing_and_a_lane_claims_each_event_once(app: Flask, services: Services) -> None:
    _store(app, 2)
    assert services.queue.count == 0  # no RQ job per event: the row is the hand-off
    first, second = lane.claim_next(services.sessions), lane.claim_next(services.sessions)
    assert first is not None and second is not None and first < second  # oldest first
    assert lane.claim_next(services.sessions) is None  # both are leased
    assert lane.waiting(services.sessions) == 0


def test_a_lease_that_lapsed_is_claimed_again(app: Flask, services: Services, session: Session) -> None:
    """A lane that died between its claim and its commit: the event waits only until the lease ends."""
    _store(app, 1)
    event_id = lane.claim_next(services.sessions)
    assert event_id is not None and lane.claim_next(services.sessions) is None
    session.execute(
        update(WebhookEvent).where(WebhookEvent.id == event_id).values(claimed_until=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert lane.waiting(services.sessions) == 1
    assert lane.claim_next(services.sessions) == event_id


def test_a_burst_worker_drains_the_lane_and_answers_once(app: Flask, zalo: ZaloFake, session: Session) -> None:
    zalo.accept_messages()
    _store(app, 3)
    run_jobs(app)
    run_jobs(app)  # nothing left: nobody is answered twice
    assert {e.status for e in session.scalars(select(WebhookEvent))} == {EventStatus.PROCESSED}
    assert len(zalo.sent_messages()) == 3


def test_a_failed_first_attempt_becomes_the_rq_job_with_the_rest_of_the_retry_policy(
    app: Flask, zalo: ZaloFake, services: Services, session: Session
) -> None:
    zalo.mock.add("POST", CS_URL, status=502)  # Zalo down for the lane's attempt
    _store(app, 1)
    event_id = lane.claim_next(services.sessions)
    assert event_id is not None
    lane.handle_or_retry(services, event_id)
    registry = ScheduledJobRegistry(queue=services.queue)
    assert registry.get_job_ids() == [f"evt-{event_id}"]
    job = services.queue.fetch_job(f"evt-{event_id}")
    assert job is not None and job.retries_left == 4 and job.retry_intervals == [30, 120, 600, 1800]
    assert lane.claim_next(services.sessions) is None  # the retry owns it now, not the lanes

    zalo.mock.replace("POST", CS_URL, json={"error": 0, "message": "Success", "data": {"message_id": "m1"}})
    run_jobs(app, include_scheduled=True)
    assert len(zalo.sent_messages()) == 2  # the try Zalo refused with its 502, then the retry
    assert session.get(WebhookEvent, event_id).status == EventStatus.PROCESSED  # type: ignore[union-attr]
    assert session.scalars(select(OutboxMessage.status)).all() == [OutboxStatus.SENT]


def test_a_lane_thread_answers_and_stops_when_asked(app: Flask, zalo: ZaloFake, services: Services) -> None:
    zalo.accept_messages()
    inbound = lane.Lane(services)
    inbound.start()
    try:
        _store(app, 2, prefix="thread")
        deadline = utcnow() + timedelta(seconds=30)
        while len(zalo.sent_messages()) < 2 and utcnow() < deadline:
            threading.Event().wait(0.05)
    finally:
        inbound.stop()
        inbound.join(timeout=10)
    assert not inbound.is_alive()
    assert len(zalo.sent_messages()) == 2


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_racing_lanes_never_take_the_same_event(app: Flask, services: Services) -> None:
    _store(app, 40, prefix="race")
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while (event_id := lane.claim_next(services.sessions)) is not None:
            with lock:
                claimed.append(event_id)

    threads = [threading.Thread(target=claim_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 40 and len(set(claimed)) == 40


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_listening_lane_is_woken_by_the_webhooks_insert(app: Flask, services: Services) -> None:
    wakeup = lane.WakeUp(services.engine, threading.Event())
    try:
        wakeup.listen()
        assert wakeup.listening
        assert wakeup.wait(0.2) is False  # nothing stored: the timeout
        _store(app, 1, prefix="wake")
        assert wakeup.wait(30) is True  # the insert's pg_notify
        post_event(app.test_client(), text_event("trợ giúp", "wake-0", user_id="7100000000000000000"))
        assert wakeup.wait(0.2) is False  # a redelivery stores nothing and wakes nobody
        wakeup.unlisten()
        _store(app, 1, prefix="busy")
        assert wakeup.wait(0.2) is False  # a busy lane is not signalled
    finally:
        wakeup.close()


def test_a_members_balance_question_takes_few_sql_statements(
    app: Flask, zalo: ZaloFake, services: Services, session: Session
) -> None:
    """The cost of a customer message is mostly its round trips to the database (each ~0.5 ms of a worker's CPU,
    issue 16's profile). A member's second "điểm", from the lane's claim to its next (empty) claim: the user, their
    step and their member come in one statement, the reply is stored already claimed, the program's rules and tiers
    come from the configuration cache (models.config) and a shop without tiers counts no qualifying points. 16
    statements on PostgreSQL before issue 16 (17 on SQLite), 13 before the cache; a new query on this path must be
    a choice, not an accident."""
    zalo.accept_messages()
    user_id = "7100000000000000777"
    create_member(session, now=utcnow(), name="Lan", zalo_user_id=user_id)
    session.commit()
    client = app.test_client()
    post_event(client, text_event("điểm", "cost-1", user_id=user_id, ts="1724921900000"))
    run_jobs(app)  # the first message: the profile is fetched, the privacy notice asked once
    post_event(client, text_event("điểm", "cost-2", user_id=user_id, ts="1724921960000"))
    sent_before = len(zalo.sent_messages())
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = services.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert lane.drain(services) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(zalo.sent_messages()) == sent_before + 1
    assert zalo.sent_messages()[-1]["message"]["text"].startswith("Bạn đang có 0 điểm.")
    limit = 10 if engine.dialect.name == "postgresql" else 11  # SQLite: lock_row's no-op UPDATE first
    assert len(statements) <= limit, "\n".join(s.split("\n")[0] for s in statements)


class _RecordingWakeUp:
    """A WakeUp that records what the lane asked of it (the real one needs PostgreSQL's LISTEN)."""

    def __init__(self) -> None:
        self.listening = False
        self.calls: list[str] = []

    def listen(self) -> None:
        self.listening = True
        self.calls.append("listen")

    def unlisten(self) -> None:
        self.listening = False
        self.calls.append("unlisten")

    def discard_pending(self) -> None:
        self.calls.append("discard")

    def wait(self, timeout: float) -> bool:
        self.calls.append("wait")
        return False


def test_a_lane_listens_while_idle_and_handling_one_event_and_stops_on_a_backlog(
    app: Flask, zalo: ZaloFake, services: Services
) -> None:
    """Under a trickle a lane keeps its LISTEN around the event that woke it (two round trips per event saved);
    a second event found right after one means a backlog, where listening is work for nobody."""
    zalo.accept_messages()
    inbound = lane.Lane(services)
    wakeup = _RecordingWakeUp()
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    assert wakeup.calls == ["discard", "listen", "wait"] and wakeup.listening  # idle: listens, looks twice
    _store(app, 1, prefix="trickle")
    wakeup.calls.clear()
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    assert wakeup.calls == ["discard", "discard", "wait"]  # handled while listening; no LISTEN/UNLISTEN around it
    _store(app, 2, prefix="backlog")
    wakeup.calls.clear()
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    assert wakeup.calls == ["discard", "discard", "unlisten"] and not wakeup.listening  # the second in a row
    inbound._once(services.sessions, wakeup)  # type: ignore[arg-type]
    assert wakeup.calls[-2:] == ["listen", "wait"]  # the backlog done: idle again
    assert len(zalo.sent_messages()) == 3
