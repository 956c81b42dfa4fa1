"""Broadcasts: fan out one outbox row per recipient, then send them through rate-limited jobs.

Exactly once per recipient: rows are unique per (broadcast, member) by their key, a row is claimed before
its send, and a row whose send was interrupted by a crash is marked "unknown" and never sent again (a
duplicate promotion costs the shop money and goodwill; the report shows how many are unknown).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jobs.context import current_services, use_services
from jobs.deferred import enqueue_after_commit
from jobs.outbox import Marks, deliver_one, mark_interrupted, write_marks
from jobs.proactive import proactive_payload
from loyalty import format as fmt
from loyalty import rewards
from loyalty.codes import pretty_voucher_code
from loyalty.errors import MemberBlocked, RewardUnavailable
from loyalty.placeholders import follower_fields, member_fields, personalize
from loyalty.segments import Segment, audience_query, follower_query, left_out_without_consent
from models import (
    Broadcast,
    BroadcastStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
    Reward,
    ZaloUser,
    rows_updated,
    utcnow,
)
from zalo.errors import ZaloError, ZaloOutOfQuota
from zalo.policy import is_night, next_morning

log = logging.getLogger(__name__)
# Parallel send jobs per broadcast (Settings.broadcast_senders, >= the workers you run); each owns the rows
# with id % senders == its number.
BATCH = 50
FANOUT_CHUNK = 1000
THROTTLE_START, THROTTLE_MAX = 5, 300  # seconds; doubled on each -32, reset after a clean batch
LIVENESS = timedelta(seconds=20)  # a sender that has not refreshed its key for this long (4 beats) is gone
BEAT_EVERY = 5.0  # seconds: how often a sender refreshes it in the middle of a batch
QUEUED = timedelta(minutes=10)  # a sender job waiting in the queue
RESTART_AFTER = timedelta(minutes=1)  # rows younger than this may simply not have been reached yet


def start_due_broadcasts() -> int:
    """Cron tick: scheduled broadcasts whose time has come start fanning out."""
    context = current_services()
    now = utcnow()
    with context.sessions() as session:
        due = list(
            session.scalars(
                select(Broadcast.id).where(Broadcast.status == BroadcastStatus.SCHEDULED, Broadcast.send_at <= now)
            )
        )
        for broadcast_id in due:
            session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id)
                .values(status=BroadcastStatus.SENDING, started_at=now)
            )
            job_id = f"bc-{broadcast_id}-fanout-{secrets.token_hex(3)}"
            enqueue_after_commit(session, fan_out, broadcast_id, job_id=job_id, job_timeout=3600)
        session.commit()
    return len(due)


def fan_out(broadcast_id: int) -> int:
    """One outbox row per recipient, personalised ({ten}, {diem}, {hang}); safe to run again."""
    context = current_services()
    now = utcnow()
    with context.sessions() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast is None or broadcast.status == BroadcastStatus.CANCELLED:
            return 0
        segment = Segment.from_dict(broadcast.segment)
        query = follower_query() if segment.followers else audience_query(segment, now)
        recipients = list(session.scalars(query))  # member ids, or Zalo user ids for the follower audience
        left_out = left_out_without_consent(session, segment, now, consented=len(recipients))
    rows_for = _follower_rows if segment.followers else _member_rows
    for start in range(0, len(recipients), FANOUT_CHUNK):
        with context.sessions() as session:
            broadcast = session.get(Broadcast, broadcast_id)
            assert broadcast is not None
            chunk = recipients[start : start + FANOUT_CHUNK]
            _insert_rows(session, rows_for(session, broadcast, chunk, now, context.shop_name()))
            session.commit()
    with context.sessions() as session:
        session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id)
            .values(audience=len(recipients), left_out_no_consent=left_out, fanned_out_at=utcnow())
        )
        senders_after_commit(session, broadcast_id)
        session.commit()
    return len(recipients)


def send_broadcast(broadcast_id: int, part: int = 0) -> str:
    """Send this part's pending rows until done, paused, throttled or night; then reschedule itself.

    Each batch goes out with up to `broadcast_in_flight` messages on their way at once (a message mostly waits
    for Zalo's answer), paced to this part's share of the shop's `send_rate` when one is set."""
    context = current_services()
    settings = context.settings
    pacer = Pacer(settings.send_rate / max(settings.broadcast_senders, 1)) if settings.send_rate > 0 else None
    with ThreadPoolExecutor(max_workers=max(settings.broadcast_in_flight, 1)) as pool:
        while True:
            now = utcnow()
            _beat(context.redis, broadcast_id, part, LIVENESS)
            with context.sessions() as session:
                broadcast = session.get(Broadcast, broadcast_id)
                if broadcast is None or broadcast.status != BroadcastStatus.SENDING:
                    return broadcast.status if broadcast else "missing"
                if broadcast.throttle_until is not None and broadcast.throttle_until > now:
                    return _later(context.queue, broadcast_id, part, broadcast.throttle_until, "throttled")
                if broadcast.promotional and is_night(now, settings.tz):
                    return _later(context.queue, broadcast_id, part, next_morning(now, settings.tz), "night")
                ids = _next_rows(session, broadcast_id, part, now)
            if not ids:
                _finish_if_done(broadcast_id)
                return "idle"
            try:
                _deliver_batch(pool, pacer, ids, lambda: _beat(context.redis, broadcast_id, part, LIVENESS))
            except ZaloOutOfQuota as exc:  # -211: every next row would fail too, until the quota renews
                return _pause_for_quota(broadcast_id, exc)
            except ZaloError as exc:  # -32, 5xx, timeouts: the whole broadcast slows down
                until = _throttle(broadcast_id, exc)
                return _later(context.queue, broadcast_id, part, until, f"throttled by {exc.code}")
            _reset_throttle(broadcast_id)


def _deliver_batch(
    pool: ThreadPoolExecutor, pacer: Pacer | None, ids: list[int], beat: Callable[[], None] | None = None
) -> None:
    """Deliver the rows concurrently; on the first Zalo error the rows not started yet are left pending (never
    claimed) and, once the ones in flight have their answer, the error is raised. Each row is still claimed
    before its send and sent at most once. `beat` is called every BEAT_EVERY seconds meanwhile: a slow,
    paced batch is not taken for a dead sender."""
    context = current_services()
    stop = threading.Event()
    # Each pool thread carries its last "sent" mark to its next claim (one round trip per message instead of two);
    # what is still carried when the batch ends is written below, once no thread is using it.
    carried: dict[int, Marks] = {}

    def deliver(outbox_id: int) -> None:
        if stop.is_set():
            return
        if pacer is not None:
            pacer.wait()
        if stop.is_set():
            return
        carry = carried.setdefault(threading.get_ident(), [])
        with use_services(context):  # the pool's threads do not inherit the job's context
            deliver_one(context.sessions, context.zalo, outbox_id, context.cards, context.proactive, carry=carry)

    futures = [pool.submit(deliver, outbox_id) for outbox_id in ids]
    waiting = set(futures)
    try:
        while waiting:
            finished, waiting = wait(waiting, timeout=BEAT_EVERY, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in finished):
                stop.set()
            if beat is not None:
                beat()
    finally:
        stop.set()
        wait(waiting)  # only after an interruption: the threads finish the message in hand
        for carry in carried.values():
            write_marks(context.sessions, carry)
    errors = [error for f in futures if (error := f.exception()) is not None]
    for error in errors:
        if not isinstance(error, ZaloError):
            raise error  # the database, a bug: as a job failure, not a throttle
    if errors:
        raise errors[0]


class Pacer:
    """At most `rate` calls of wait() per second from any number of threads (evenly spaced)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(self._next, now)
            self._next = at + self._interval
        if at > now:
            time.sleep(at - now)


def senders_after_commit(session: Session, broadcast_id: int) -> None:
    """The broadcast's sender jobs (one per part) start once the caller commits."""
    for part in range(current_services().settings.broadcast_senders):
        _start_sender_after_commit(session, broadcast_id, part)


def _start_sender_after_commit(session: Session, broadcast_id: int, part: int) -> None:
    # Queued counts as alive (a backlog is no reason to start a second sender); running, it beats every batch.
    _beat(current_services().redis, broadcast_id, part, QUEUED)
    job_id = f"bc-{broadcast_id}-part{part}-{secrets.token_hex(4)}"
    enqueue_after_commit(session, send_broadcast, broadcast_id, part, job_id=job_id, job_timeout=3600)


def recover_broadcasts() -> int:
    """Cron tick (every 15 s): mark interrupted sends "unknown" and restart each sender that stopped.

    Every sender keeps a liveness key in Redis (refreshed each batch, or until its scheduled restart when it
    waits for the morning or a throttle). A part whose key is gone while it still has rows due was killed
    (worker -9, Redis emptied): only that part is started again (at once when it died mid-send, else once its
    rows are a minute old), and its rows still go out once each (claims).
    """
    context = current_services()
    now = utcnow()
    restarted = 0
    with context.sessions() as session:
        mark_interrupted(session, now)  # every outbox row, replies and broadcasts alike
        sending = list(session.scalars(select(Broadcast.id).where(Broadcast.status == BroadcastStatus.SENDING)))
        for broadcast_id in sending:
            killed = set()
            for part in _parts_mid_send(session, broadcast_id):
                if not context.redis.exists(_liveness_key(broadcast_id, part)):
                    _mark_part_interrupted(session, broadcast_id, part)
                    killed.add(part)
            # A part caught dead mid-send has certainly been reached: restart it now, however young its rows
            # (the minute's wait is for parts whose sender may simply not have started yet).
            due = set(_parts_with_rows_due(session, broadcast_id, now))
            if killed:
                due |= killed & set(_parts_with_rows_due(session, broadcast_id, now, started=True))
            for part in sorted(due):
                if not context.redis.exists(_liveness_key(broadcast_id, part)):
                    restarted += 1
                    _start_sender_after_commit(session, broadcast_id, part)
        session.commit()
    for broadcast_id in sending:  # the last rows may have been the interrupted ones: nobody else would end it
        _finish_if_done(broadcast_id)
    if restarted:
        log.warning("broadcasts: %s stopped sender(s) restarted", restarted)
    return restarted


def _parts_mid_send(session: Session, broadcast_id: int) -> list[int]:
    return _parts(session, broadcast_id, OutboxMessage.status == OutboxStatus.SENDING)


def _mark_part_interrupted(session: Session, broadcast_id: int, part: int) -> None:
    """A part whose sender stopped beating (killed) left its sends in flight "sending": they may have reached
    Zalo, so they become "unknown" now (not after STALE_CLAIM) and the broadcast can end."""
    count = rows_updated(
        session,
        update(OutboxMessage)
        .where(
            OutboxMessage.broadcast_id == broadcast_id,
            OutboxMessage.status == OutboxStatus.SENDING,
            _part_of_row() == part,
        )
        .values(status=OutboxStatus.UNKNOWN, last_error="the sender died mid-send; not sent again")
        .execution_options(synchronize_session=False),
    )
    log.warning("broadcasts: %s sends of broadcast %s part %s interrupted, marked unknown", count, broadcast_id, part)


def _parts_with_rows_due(session: Session, broadcast_id: int, now: datetime, started: bool = False) -> list[int]:
    """Parts with pending rows due now; unless the part is known to have `started`, only rows older than
    RESTART_AFTER count (a sender job may still be on its way to a worker)."""
    return _parts(
        session,
        broadcast_id,
        OutboxMessage.status == OutboxStatus.PENDING,
        OutboxMessage.created_at < (now if started else now - RESTART_AFTER),
        (OutboxMessage.not_before.is_(None)) | (OutboxMessage.not_before <= now),
    )


def _parts(session: Session, broadcast_id: int, *conditions: Any) -> list[int]:
    """The parts (senders) owning at least one of the broadcast's rows that meet `conditions`."""
    part = _part_of_row()
    stmt = select(part).where(OutboxMessage.broadcast_id == broadcast_id, *conditions).group_by(part)
    return [int(p) for p in session.scalars(stmt)]


def _part_of_row() -> Any:
    """Which sender owns a row: its id modulo the number of senders."""
    return OutboxMessage.id % current_services().settings.broadcast_senders


def _liveness_key(broadcast_id: int, part: int) -> str:
    return f"tichdiem:broadcast:{broadcast_id}:sender:{part}"


def _beat(redis: Redis, broadcast_id: int, part: int, ttl: timedelta) -> None:
    redis.set(_liveness_key(broadcast_id, part), "1", ex=max(int(ttl.total_seconds()), 1))


# --- internals -----------------------------------------------------------------------------------------


def _member_rows(
    session: Session, broadcast: Broadcast, member_ids: list[Any], now: datetime, shop: str
) -> list[dict[str, Any]]:
    members = list(session.scalars(select(Member).where(Member.id.in_(member_ids))))
    rows = []
    for m in members:
        fields = member_fields(session, m, shop)
        row_key = f"bc:{broadcast.id}:{m.id}"
        if broadcast.reward_id is not None:
            gift = _gift(session, broadcast, m, now)
            if gift is None:  # out of stock (or the member blocked meanwhile): recorded, not sent without it
                rows.append(_skipped_row(broadcast, row_key, m.zalo_user_id, "Hết quà để tặng.", now))
                continue
            fields.update(gift)
        rows.append(_row(broadcast, row_key, m.zalo_user_id, fields, m.phone, now))
    return rows


def gift_key(broadcast_id: int, member_id: int) -> str:
    """The voucher's idempotency key: a fan-out run again (a retry, a restart) finds it instead of a second."""
    return f"bc:{broadcast_id}:gift:{member_id}"


def _gift(session: Session, broadcast: Broadcast, member: Member, now: datetime) -> dict[str, str] | None:
    """The member's voucher of the broadcast's reward, issued once: its fields for the text ({qua}, {ma}, {han})."""
    assert broadcast.reward_id is not None
    try:
        with session.begin_nested():
            voucher, _ = rewards.issue_gift(
                session,
                member.id,
                broadcast.reward_id,
                key=gift_key(broadcast.id, member.id),
                now=now,
                source="campaign",
            )
    except (RewardUnavailable, MemberBlocked):
        return None
    reward = session.get(Reward, voucher.reward_id)
    return {
        "qua": reward.name if reward else "",
        "ma": pretty_voucher_code(voucher.code),
        "han": fmt.day(voucher.expires_at, current_services().settings.tz),
    }


def _skipped_row(broadcast: Broadcast, key: str, user_id: str | None, reason: str, now: datetime) -> dict[str, Any]:
    """A recipient the broadcast could not serve (its gift ran out): recorded with the reason, never sent."""
    message = {"text": "", "promotional": broadcast.promotional, "buttons": []}
    return _outbox_row(broadcast, key, user_id, message, now, status=OutboxStatus.SKIPPED, last_error=reason)


def _follower_rows(
    session: Session, broadcast: Broadcast, user_ids: list[Any], now: datetime, shop: str
) -> list[dict[str, Any]]:
    """Everyone following, members or not: a member gets their own fields, anyone else their Zalo name."""
    users = session.scalars(select(ZaloUser).where(ZaloUser.user_id.in_(user_ids)))
    members = {m.zalo_user_id: m for m in session.scalars(select(Member).where(Member.zalo_user_id.in_(user_ids)))}
    rows = []
    for user in users:
        member = members.get(user.user_id)
        fields = member_fields(session, member, shop) if member else follower_fields(user.display_name, shop)
        phone = member.phone if member else None
        rows.append(_row(broadcast, f"bc:{broadcast.id}:u:{user.user_id}", user.user_id, fields, phone, now))
    return rows


def _row(
    broadcast: Broadcast, key: str, user_id: str | None, fields: dict[str, Any], phone: str | None, now: datetime
) -> dict[str, Any]:
    """One recipient's row: the text made from their fields, which also fill the broadcast template's
    parameters when they are outside the 7-day window (by phone if the template refuses UIDs)."""
    _, message = proactive_payload(
        personalize(broadcast.text, **fields),
        promotional=broadcast.promotional,
        buttons=broadcast.buttons,
        purpose="broadcast",
        fields=fields,
        phone=phone,
    )
    return _outbox_row(broadcast, key, user_id, message, now)


def _outbox_row(
    broadcast: Broadcast,
    key: str,
    user_id: str | None,
    message: dict[str, Any],
    now: datetime,
    *,
    status: str = OutboxStatus.PENDING,
    last_error: str | None = None,
) -> dict[str, Any]:
    """One row for the multi-row INSERT: every row names the same columns."""
    return {
        "key": key,
        "zalo_user_id": user_id,
        "kind": "proactive",
        "message": message,
        "broadcast_id": broadcast.id,
        "status": status,
        "last_error": last_error,
        "attempts": 0,
        "created_at": now,
    }


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(OutboxMessage).values(rows).on_conflict_do_nothing(index_elements=["key"]))


def _next_rows(session: Session, broadcast_id: int, part: int, now: datetime) -> list[int]:
    stmt = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.broadcast_id == broadcast_id,
            OutboxMessage.status == OutboxStatus.PENDING,
            _part_of_row() == part,
        )
        .where((OutboxMessage.not_before.is_(None)) | (OutboxMessage.not_before <= now))
        .order_by(OutboxMessage.id)
        .limit(BATCH)
    )
    return list(session.scalars(stmt))


def _finish_if_done(broadcast_id: int) -> None:
    context = current_services()
    with context.sessions() as session:
        open_rows = session.scalar(
            select(func.count()).where(
                OutboxMessage.broadcast_id == broadcast_id,
                OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
            )
        )
        if not open_rows:
            session.execute(
                update(Broadcast)
                .where(
                    Broadcast.id == broadcast_id,
                    Broadcast.status == BroadcastStatus.SENDING,
                    Broadcast.fanned_out_at.is_not(None),  # senders resumed mid-fan-out must not end it early
                )
                .values(status=BroadcastStatus.DONE, finished_at=utcnow())
            )
            session.commit()


def _pause_for_quota(broadcast_id: int, exc: ZaloError) -> str:
    """Pause with the reason instead of failing every row; the marketer resumes once the quota renews."""
    what = f"Tạm dừng: OA đã hết hạn mức tin của Zalo (lỗi {exc.code})."
    reason = f"{what} Tiếp tục khi hạn mức được gia hạn hoặc mua thêm."
    with current_services().sessions() as session, session.begin():
        session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.SENDING)
            .values(status=BroadcastStatus.PAUSED, pause_reason=reason)
        )
    log.warning("broadcasts: %s paused, out of quota: %s", broadcast_id, exc)
    return BroadcastStatus.PAUSED


def _throttle(broadcast_id: int, exc: ZaloError) -> datetime:
    context = current_services()
    with context.sessions() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        seconds = min(max(broadcast.throttle_seconds * 2, THROTTLE_START), THROTTLE_MAX)
        until = utcnow() + timedelta(seconds=seconds)
        broadcast.throttle_seconds, broadcast.throttle_until = seconds, until
        session.commit()
    log.warning("broadcast %s slowed down for %ss: %s", broadcast_id, seconds, exc)
    return until


def _reset_throttle(broadcast_id: int) -> None:
    context = current_services()
    with context.sessions() as session:
        session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.throttle_seconds > 0)
            .values(throttle_seconds=0, throttle_until=None)
        )
        session.commit()


def _later(queue: Queue, broadcast_id: int, part: int, when: datetime, why: str) -> str:
    _schedule(queue, broadcast_id, part, when)
    _beat(current_services().redis, broadcast_id, part, when - utcnow() + LIVENESS)  # alive, only waiting
    return why


def _schedule(queue: Queue, broadcast_id: int, part: int, at: datetime | None) -> None:
    job_id = f"bc-{broadcast_id}-part{part}-{secrets.token_hex(4)}"
    if at is None:
        queue.enqueue(send_broadcast, broadcast_id, part, job_id=job_id, job_timeout=3600)
    else:
        queue.enqueue_at(at, send_broadcast, broadcast_id, part, job_id=job_id, job_timeout=3600)
