"""After this transaction commits, enqueue X: one way for every writer to start a job.

A job must never see a row that was rolled back, nor miss one that was committed, so a job that reads what a
transaction wrote is enqueued only after that transaction commits. Writers say so on their Session
(`enqueue_after_commit(session, func, ...)`); an `after_commit` listener enqueues the list on the queue the
Session factory was made with, and a rollback drops it (pypi/warehouse does the same with its transaction
manager). If Redis is down at that moment the rows are committed and the job is not: the recovery job
(`jobs.cron`) and `tichdiem events drain` / `outbox drain` find them by their state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from tichdiem.db import QUEUE_KEY

log = logging.getLogger(__name__)

_PENDING_KEY = "tichdiem.after_commit"
# The one retry policy of every job: 5 s, 30 s, 2 min, 10 min, 30 min; then the job stays failed (kept a
# month for inspection and requeue). Every job is safe to run again: keys, row states and claims make sure.
RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
FAILED_JOB_TTL = 30 * 24 * 3600


def enqueue_after_commit(session: Session, func: Callable[..., Any], *args: Any, **options: Any) -> None:
    """Enqueue `func(*args)` with RQ `options` once the session's current transaction commits.

    A job deferred inside a savepoint that is rolled back still runs after the outer commit; every job
    reads the rows' state first, so it finds nothing to do.
    """
    if QUEUE_KEY not in session.info:
        raise RuntimeError("this Session has no queue: make it with tichdiem.db.make_session_factory(engine, queue)")
    session.info.setdefault(_PENDING_KEY, []).append((func, args, options))


def pending_jobs(session: Session) -> list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    """What will be enqueued at the next commit (for tests and diagnostics)."""
    return list(session.info.get(_PENDING_KEY, []))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the outer transaction may still roll back
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    try:
        enqueue_all(session.info[QUEUE_KEY], pending)
    except RedisError:
        # Committed already: never undo the writer's work. The rows wait, by their state, for recovery.
        names = ", ".join(f"{func.__name__}{args!r}" for func, args, _ in pending[:5])
        log.exception("after commit: %s not enqueued (queue down); recovery finds their rows", names)


def enqueue_all(queue: Queue, calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]) -> None:
    """Enqueue `func(*args)` with RQ `options` for each call, in one round trip to Redis (RQ writes a job with
    several commands in two transactions when it is left to itself)."""
    with queue.connection.pipeline() as pipe:
        for func, args, options in calls:
            options = dict(options)
            if "job_timeout" in options:  # enqueue()'s name for enqueue_call()'s `timeout`
                options["timeout"] = options.pop("job_timeout")
            queue.enqueue_call(func, args=args, pipeline=pipe, **options)
        pipe.execute()


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended without a commit (rollback, close): its jobs must not run.

    (After a commit the list is already gone: after_commit runs first.) A savepoint's end changes nothing.
    """
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)
