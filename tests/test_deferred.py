"""After this transaction commits, enqueue X (jobs/deferred.py): on commit only, once, never after a rollback."""

from __future__ import annotations

import fakeredis
import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from sqlalchemy import text

from jobs.deferred import enqueue_after_commit, pending_jobs
from jobs.outbox import deliver_messages
from tichdiem.db import make_engine, make_session_factory


@pytest.fixture
def queue() -> Queue:
    return Queue(connection=fakeredis.FakeRedis(server=fakeredis.FakeServer()))


def _sessions(queue: Queue):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine("sqlite://"), queue)


def test_jobs_start_at_commit_not_before(queue: Queue) -> None:
    with _sessions(queue)() as session:
        session.execute(text("SELECT 1"))
        enqueue_after_commit(session, deliver_messages, [1], job_id="d-1")
        with session.begin_nested():  # releasing a savepoint is not the commit
            enqueue_after_commit(session, deliver_messages, [2], job_id="d-2")
        assert queue.count == 0 and len(pending_jobs(session)) == 2
        session.commit()
        assert sorted(queue.job_ids) == ["d-1", "d-2"]
        session.commit()  # nothing more on the next commit
        assert queue.count == 2


def test_a_rollback_or_close_drops_the_jobs(queue: Queue) -> None:
    sessions = _sessions(queue)
    with sessions() as session:
        session.execute(text("SELECT 1"))
        enqueue_after_commit(session, deliver_messages, [1])
        session.rollback()
        session.execute(text("SELECT 1"))
        enqueue_after_commit(session, deliver_messages, [2])
    with sessions() as session:
        session.execute(text("SELECT 1"))
        session.commit()
    assert queue.count == 0


def test_queue_down_at_commit_keeps_the_commit(caplog: pytest.LogCaptureFixture) -> None:
    down = Queue(connection=Redis(port=1, socket_connect_timeout=0.1, retry=Retry(NoBackoff(), 0)))
    with _sessions(down)() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
        enqueue_after_commit(session, deliver_messages, [1])
        session.commit()  # does not raise: the rows are committed and wait for recovery
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    assert "not enqueued (queue down)" in caplog.text


def test_a_session_without_a_queue_refuses_at_once() -> None:
    with make_session_factory(make_engine("sqlite://"))() as session:
        with pytest.raises(RuntimeError, match="no queue"):
            enqueue_after_commit(session, deliver_messages, [1])
