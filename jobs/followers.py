"""The OA's followers, from Zalo's own list.

Only a `follow` event says someone follows, and only from the day the bot exists: an OA that has had
followers for years would look almost empty to segments and proactive sends. A sync pages through
GET /v3.0/oa/user/getlist (50 a page), one transaction per page, and records where it is (next_offset), so a
sync that stops (a killed worker, Zalo's rate limit) goes on from there. Users it sees become followers.

A follower missing from a complete pass is not dropped at once: offset paging over a list that changes while
it is read can skip one. Missing from two complete passes in a row, they are marked as no longer following
(an `unfollow` event or a -213 on a send says so sooner).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from jobs.context import current_services
from jobs.deferred import FAILED_JOB_TTL, RETRY, enqueue_after_commit
from models import FollowerSync, SyncStatus, ZaloUser, insert_ignore, lock_row, rows_updated, utcnow
from zalo.client import FOLLOWER_PAGE, MAX_FOLLOWER_OFFSET
from zalo.errors import ZaloAuthError, ZaloError

log = logging.getLogger(__name__)

PAGE_PAUSE = 0.2  # seconds between pages: about 5 calls a second, below every rate reported (reference §2.5)
STALLED = timedelta(minutes=5)  # a running sync without a new page for this long is resumed
EVERY = timedelta(hours=20)  # a new pass about once a day (the tick runs hourly)
RETRY_WAIT = timedelta(minutes=1)  # after -32 or a transport error


def follower_sync_tick() -> str:
    """Cron, hourly (and at once when `tichdiem cron` starts): the first sync of a newly connected OA, a new
    pass once a day, and resuming a sync whose job was lost."""
    services = current_services()
    now = utcnow()
    with services.sessions() as session:
        latest = session.scalar(select(FollowerSync).order_by(FollowerSync.id.desc()).limit(1))
        if latest is not None and latest.status == SyncStatus.RUNNING:
            if latest.updated_at >= now - STALLED:
                return "running"
            latest.updated_at = now  # one resume per stall, however many ticks see it
            _enqueue_after_commit(session, latest.id)
            session.commit()
            log.warning("followers: sync %s stalled at offset %s, resumed", latest.id, latest.next_offset)
            return "resumed"
        if latest is not None and latest.started_at >= now - EVERY:
            return "recent"
        start_sync(session, "first" if latest is None else "daily", now)
        session.commit()
        return "started"


def start_sync(session: Session, trigger: str, now: datetime) -> tuple[FollowerSync, bool]:
    """A new pass (after the caller commits), unless one is running: then that one. True if it is new."""
    running = session.scalar(
        select(FollowerSync).where(FollowerSync.status == SyncStatus.RUNNING).order_by(FollowerSync.id).limit(1)
    )
    if running is not None:
        return running, False
    sync = FollowerSync(trigger=trigger, status=SyncStatus.RUNNING, started_at=now, updated_at=now)
    session.add(sync)
    session.flush()
    _enqueue_after_commit(session, sync.id)
    return sync, True


def sync_followers(sync_id: int) -> str:
    """Page through Zalo's follower list from the sync's offset to the end."""
    context = current_services()
    while True:
        with context.sessions() as session:
            sync = session.get(FollowerSync, sync_id)
            if sync is None or sync.status != SyncStatus.RUNNING:
                return sync.status if sync else "missing"
            offset = sync.next_offset
        try:
            total, ids = context.zalo.followers(offset)
        except ZaloError as exc:
            return _stopped(sync_id, exc)
        with context.sessions() as session, session.begin():
            sync = lock_row(session, FollowerSync, sync_id)
            if sync is None or sync.status != SyncStatus.RUNNING or sync.next_offset != offset:
                return "superseded"  # a resumed copy of this job got here first
            now = utcnow()
            sync.new_users += _mark_following(session, ids, now)
            sync.seen += len(ids)
            sync.total = total
            sync.next_offset = offset + len(ids)
            sync.updated_at = now
            sync.error = None
            if len(ids) < FOLLOWER_PAGE or sync.next_offset >= total or sync.next_offset > MAX_FOLLOWER_OFFSET:
                _finish(session, sync, now)
                return SyncStatus.DONE
        time.sleep(PAGE_PAUSE)


def follower_summary(session: Session) -> dict[str, object]:
    """What the console shows: followers known, the last finished pass, the one running."""
    followers = session.scalar(select(func.count()).select_from(ZaloUser).where(ZaloUser.is_follower.is_(True)))
    last = session.scalar(
        select(FollowerSync).where(FollowerSync.status != SyncStatus.RUNNING).order_by(FollowerSync.id.desc()).limit(1)
    )
    running = session.scalar(select(FollowerSync).where(FollowerSync.status == SyncStatus.RUNNING).limit(1))
    return {"followers": int(followers or 0), "last": last, "running": running}


# --- internals -----------------------------------------------------------------------------------------------


def _enqueue_after_commit(session: Session, sync_id: int) -> None:
    job_id = f"followers-{sync_id}-{secrets.token_hex(3)}"
    enqueue_after_commit(
        session, sync_followers, sync_id, job_id=job_id, job_timeout=3600, retry=RETRY, failure_ttl=FAILED_JOB_TTL
    )


def _mark_following(session: Session, ids: list[str], now: datetime) -> int:
    """These users follow the OA (Zalo's list says so); returns how many we had never heard of."""
    if not ids:
        return 0
    known = set(session.scalars(select(ZaloUser.user_id).where(ZaloUser.user_id.in_(ids))))
    for user_id in dict.fromkeys(ids):
        if user_id not in known:
            row = {"user_id": user_id, "is_follower": True, "follower_seen_at": now, "created_at": now}
            insert_ignore(session, ZaloUser, row, ["user_id"])
    session.execute(update(ZaloUser).where(ZaloUser.user_id.in_(ids)).values(is_follower=True, follower_seen_at=now))
    return len(set(ids) - known)


def _finish(session: Session, sync: FollowerSync, now: datetime) -> None:
    sync.status, sync.finished_at = SyncStatus.DONE, now
    complete = sync.total is not None and sync.seen >= sync.total
    previous = session.scalar(
        select(FollowerSync.started_at)
        .where(
            FollowerSync.status == SyncStatus.DONE, FollowerSync.id != sync.id, FollowerSync.seen >= FollowerSync.total
        )
        .order_by(FollowerSync.id.desc())
        .limit(1)
    )
    if complete and previous is not None:  # missing from this pass and the one before it
        sync.no_longer_following = rows_updated(
            session,
            update(ZaloUser)
            .where(
                ZaloUser.is_follower.is_(True),
                or_(ZaloUser.follower_seen_at.is_(None), ZaloUser.follower_seen_at < previous),
                or_(ZaloUser.followed_at.is_(None), ZaloUser.followed_at < previous),
            )
            .values(is_follower=False),
        )
    log.info(
        "followers: sync %s done: %s seen of %s, %s new, %s no longer following",
        sync.id,
        sync.seen,
        sync.total,
        sync.new_users,
        sync.no_longer_following,
    )


def _stopped(sync_id: int, exc: ZaloError) -> str:
    """Zalo refused the page: wait and go on (-32, transport), or stop with the reason (permission, token)."""
    context = current_services()
    with context.sessions() as session, session.begin():
        sync = lock_row(session, FollowerSync, sync_id)
        if sync is None:
            return "missing"
        sync.error = str(exc)[:2000]
        sync.updated_at = utcnow()
        if not exc.retryable or isinstance(exc, ZaloAuthError):  # no token: tomorrow's pass tries again
            sync.status, sync.finished_at = SyncStatus.FAILED, sync.updated_at
            log.error("followers: sync %s stopped: %s", sync_id, exc)
            return SyncStatus.FAILED
    context.queue.enqueue_in(RETRY_WAIT, sync_followers, sync_id, job_timeout=3600)
    log.warning("followers: sync %s waits %s after %s", sync_id, RETRY_WAIT, exc)
    return "waiting"
