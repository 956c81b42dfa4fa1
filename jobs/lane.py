"""The inbound lane: how a stored event reaches a worker without an RQ job of its own.

The events table is the queue. The webhook's one INSERT stores the event "received" and, on PostgreSQL, wakes
the lanes in the same statement (`pg_notify`); every worker process runs a lane that claims the oldest waiting
event (one UPDATE ... FOR UPDATE SKIP LOCKED: two lanes never take the same one) and handles it. An RQ job per
event cost the webhook a second round trip (Redis) that was ~40% of its time under wrk, and the worker 3–4 ms
of bookkeeping per event (issue 16's profile, `bench.event_profile`).

Self-healing by construction: an event waits in the table, not in Redis, so a Redis restart strands nothing;
a claim is a lease (LEASE), so an event whose lane died mid-way is claimed again once it lapses; handling is
once-only by the event's row lock and status (`jobs.inbound.process_event`).

RQ still owns retries: an event whose handling fails in a lane becomes the RQ job `evt-<id>`, due 5 s later with
the rest of the one retry policy, so it is retried exactly as an RQ job would have been (six attempts in all).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.sql
from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy import Engine, bindparam, create_engine, func, literal_column, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from jobs.context import Services, use_services
from jobs.deferred import FAILED_JOB_TTL, RETRY
from jobs.inbound import enqueue_handle_event, handle_event, once_more_if_disconnected
from models import EventStatus, WebhookEvent, ZaloUser, utcnow
from tichdiem.db import autocommit

log = logging.getLogger(__name__)

# The wake-up channel is per schema (tichdiem_inbound_<schema>, at most 63 characters: PostgreSQL's limit), so two
# installations sharing a database in schemas of their own never wake each other's lanes. One SQL expression for
# the webhook's NOTIFY and the lanes' LISTEN, so the two cannot drift apart.
CHANNEL_SQL = "left(concat('tichdiem_inbound_', current_schema()), 63)"
LEASE = timedelta(minutes=2)  # far longer than handling an event takes (Zalo's read timeout is 10 s)
IDLE_WAIT_SECONDS = 1.0  # without a wake-up, how often an idle lane looks anyway (and notices a stop)
PAUSE_SECONDS = 2.0  # after the database failed a claim
# The lane's own attempt is the policy's first run: RQ takes the rest (5 s, then 30 s, 2 min, 10 min, 30 min).
FIRST_RETRY = timedelta(seconds=RETRY.intervals[0])
LATER_RETRIES = Retry(max=RETRY.max - 1, interval=RETRY.intervals[1:])


def claim_next(sessions: sessionmaker[Session]) -> int | None:
    """Take the oldest waiting event for LEASE; its id, or None when none waits."""
    claimed = claim_next_event(sessions)
    return claimed.id if claimed is not None else None


def claim_next_event(sessions: sessionmaker[Session]) -> Any:
    """Take the oldest waiting event for LEASE; None when none waits. One statement that commits by itself (run
    again at once on a fresh connection if the pooled one had died: a claim that failed took nothing). It also
    returns what handling reads first (status, payload, the user's profile dates): one statement fewer."""

    def claim() -> Any:
        now = utcnow()
        with autocommit(sessions) as connection:
            params = {"now": now, "until": now + LEASE}
            return connection.execute(_claim_statement(connection.dialect.name), params).first()

    return once_more_if_disconnected(claim)


def waiting(sessions: sessionmaker[Session]) -> int:
    """Events waiting for a lane (health, the embedded worker)."""
    now = utcnow()
    stmt = select(func.count()).select_from(WebhookEvent).where(*_waiting(now))
    with autocommit(sessions) as connection:
        return int(connection.scalar(stmt) or 0)


def drain(services: Services) -> int:
    """Handle every event waiting now, then return how many (burst workers, the embedded worker, tests)."""
    handled = 0
    while (claimed := claim_next_event(services.sessions)) is not None:
        handle_or_retry(services, claimed.id, claimed)
        handled += 1
    return handled


def handle_or_retry(services: Services, event_id: int, claimed: Any = None) -> None:
    """Handle one claimed event now; a failure becomes the RQ job `evt-<id>` with the rest of the retry policy."""
    with use_services(services):
        try:
            handle_event(event_id, claimed)
        except Exception:  # noqa: BLE001 - every failure is retried the same way, as RQ would
            log.warning("event %s: first attempt failed; RQ retries it in %s", event_id, FIRST_RETRY, exc_info=True)
            schedule_retry(services.queue, event_id)


def schedule_retry(queue: Queue, event_id: int) -> None:
    try:
        queue.enqueue_in(
            FIRST_RETRY,
            handle_event,
            event_id,
            job_id=f"evt-{event_id}",
            retry=LATER_RETRIES,
            failure_ttl=FAILED_JOB_TTL,
            description=f"handle webhook event {event_id} (retry)",
        )
    except RedisError:
        # The row says `failed` (or `processed` with replies pending, which recovery sends): /healthz counts it.
        log.exception("event %s: its retry could not be scheduled (queue down)", event_id)


class Lane(threading.Thread):
    """A worker process's lane, beside RQ's work loop in the main thread (jobs, retries, broadcasts): claims
    waiting events and handles them until stopped, and sleeps on the database's wake-up when none waits.

    `convert=True` (a forking worker) turns each claimed event into the RQ job it used to be, and claims on a
    connection of its own: a thread that used the shared pools or called Zalo while the worker forks a work
    horse could leave the horse holding their locks.
    """

    def __init__(self, services: Services, *, convert: bool = False) -> None:
        super().__init__(name="inbound-lane", daemon=True)
        self.services = services
        self.convert = convert
        self.stopping = threading.Event()
        self.backlog = False  # the last look found an event too

    def stop(self) -> None:
        """Finish the event in hand, then end (within IDLE_WAIT_SECONDS when idle)."""
        self.stopping.set()

    def run(self) -> None:
        engine: Engine = self.services.sessions.kw["bind"]
        own = create_engine(engine.url, poolclass=NullPool) if self.convert else None
        sessions = sessionmaker(own) if own is not None else self.services.sessions
        wakeup = WakeUp(engine, self.stopping)
        try:
            while not self.stopping.is_set():
                try:
                    self._once(sessions, wakeup)
                except DBAPIError as exc:
                    log.warning("inbound lane: claim failed (%s); trying again in %.0f s", exc, PAUSE_SECONDS)
                    self.stopping.wait(PAUSE_SECONDS)
                except Exception:  # noqa: BLE001 - a lane that died would leave its process deaf to customers
                    log.exception("inbound lane: unexpected error; going on in %.0f s", PAUSE_SECONDS)
                    self.stopping.wait(PAUSE_SECONDS)
        finally:
            wakeup.close()
            if own is not None:
                own.dispose()

    def _once(self, sessions: sessionmaker[Session], wakeup: WakeUp) -> None:
        claimed = self._next(sessions, wakeup)
        if claimed is None:
            self.backlog = False
            return
        if self.backlog:  # a second event in a row: a backlog, stay deaf until it is done
            wakeup.unlisten()
        self.backlog = True
        if self.convert:
            _enqueue_job(self.services.queue, claimed.id)
        else:
            handle_or_retry(self.services, claimed.id, claimed)

    @staticmethod
    def _next(sessions: sessionmaker[Session], wakeup: WakeUp) -> Any:
        """The next waiting event, or None after waiting for one.

        A lane listens for wake-ups while idle, and keeps listening while it handles the event that woke it: under
        a steady trickle (issue 16: 100 messages/s over 8 lanes) LISTEN and UNLISTEN around every event were two
        round trips each. It stops listening once it finds a backlog (`_once`): every stored event signals every
        listening server process, which under a burst (all lanes busy) was work for nobody. Wake-ups that came
        while it was busy are dropped before it looks: the look sees their events (or another lane took them),
        and each would have cost an empty claim."""
        wakeup.discard_pending()
        claimed = claim_next_event(sessions)
        if claimed is None and not wakeup.listening:
            wakeup.listen()
            claimed = claim_next_event(sessions)  # one stored between the first look and LISTEN
        if claimed is None:
            wakeup.wait(IDLE_WAIT_SECONDS)
        return claimed


class WakeUp:
    """ "An event was stored": PostgreSQL's NOTIFY on a connection of the lane's own (LISTEN while idle), or, on
    SQLite or while that connection is down, the timeout alone."""

    def __init__(self, engine: Engine, stopping: threading.Event) -> None:
        self.engine = engine
        self.stopping = stopping
        self.connection: psycopg.Connection[Any] | None = None
        self.channel: psycopg.sql.Composable | None = None  # read once per connection
        self.listening = False

    def listen(self) -> None:
        if self.listening or self.engine.dialect.name != "postgresql":
            return
        try:
            if self.connection is None or self.channel is None:
                args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
                self.connection = psycopg.connect(*args, **kwargs, autocommit=True)
                row = self.connection.execute(f"SELECT {CHANNEL_SQL}").fetchone()
                assert row is not None  # a SELECT without FROM returns one row
                self.channel = psycopg.sql.Identifier(row[0])
            self.connection.execute(psycopg.sql.SQL("LISTEN {}").format(self.channel))
            self.listening = True
        except psycopg.Error as exc:
            log.warning("inbound lane: cannot listen for wake-ups (%s)", exc)
            self.close()

    def unlisten(self) -> None:
        if not self.listening or self.connection is None:
            return
        try:
            self.connection.execute("UNLISTEN *")
            self.listening = False
        except psycopg.Error as exc:
            log.warning("inbound lane: wake-ups lost (%s)", exc)
            self.close()

    def discard_pending(self) -> None:
        """Drop the wake-ups already received (no round trip: what the connection has read or can read now)."""
        if not self.listening or self.connection is None:
            return
        try:
            for _ in self.connection.notifies(timeout=0):
                pass
        except psycopg.Error as exc:
            log.warning("inbound lane: wake-ups lost (%s)", exc)
            self.close()

    def wait(self, timeout: float) -> bool:
        """True when woken by a stored event, False after the timeout (or without a listening connection)."""
        if not self.listening or self.connection is None:
            self.stopping.wait(timeout)
            return False
        try:
            for _ in self.connection.notifies(timeout=timeout, stop_after=1):
                return True
        except psycopg.Error as exc:
            log.warning("inbound lane: wake-ups lost (%s); listening again", exc)
            self.close()
            self.stopping.wait(timeout)
        return False

    def close(self) -> None:
        self.listening = False
        self.channel = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def notify_statement() -> Any:
    """What the webhook's insert adds on PostgreSQL: wake this schema's lanes, in the same statement and
    transaction."""
    return func.pg_notify(literal_column(CHANNEL_SQL), "")


def _waiting(now: Any) -> list[Any]:
    return [
        WebhookEvent.status == EventStatus.RECEIVED,
        or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now),
    ]


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Any:
    """Built once per dialect and executed with parameters (compiled once)."""
    now = bindparam("now", type_=WebhookEvent.claimed_until.type)
    oldest = select(WebhookEvent.id).where(*_waiting(now)).order_by(WebhookEvent.id).limit(1)
    if dialect == "postgresql":  # SQLite has one writer at a time: nothing to skip
        oldest = oldest.with_for_update(skip_locked=True)
    profile = select(ZaloUser).where(ZaloUser.user_id == WebhookEvent.zalo_user_id)
    return (
        update(WebhookEvent)
        .where(WebhookEvent.id == oldest.scalar_subquery())
        .values(claimed_until=bindparam("until", type_=WebhookEvent.claimed_until.type))
        .returning(
            WebhookEvent.id,
            WebhookEvent.status,
            WebhookEvent.payload,
            profile.with_only_columns(ZaloUser.profile_fetched_at).scalar_subquery().label("profile_fetched_at"),
            profile.with_only_columns(ZaloUser.profile_tried_at).scalar_subquery().label("profile_tried_at"),
        )
    )


def _enqueue_job(queue: Queue, event_id: int) -> None:
    try:
        enqueue_handle_event(queue, event_id)
    except RedisError:
        log.exception("inbound lane: event %s not enqueued (queue down); its lease lapses and a lane retries", event_id)
