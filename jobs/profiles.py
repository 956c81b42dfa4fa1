"""Zalo profiles (display name, avatar), fetched lazily and cached for a week."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import ZaloUser, insert_ignore
from zalo.client import ZaloClient
from zalo.errors import ZaloError

log = logging.getLogger(__name__)
PROFILE_TTL = timedelta(days=7)
PROFILE_RETRY = timedelta(hours=1)  # after a failed user/detail


def fetch_profile(sessions: sessionmaker[Session], zalo: ZaloClient, user_id: str, now: datetime) -> bool:
    """GET /v3.0/oa/user/detail when we have no profile or it is older than a week. True if it was fetched.

    Each call is remembered first (profile_tried_at), so a profile Zalo will not give (a permission the OA
    lacks, a user who blocked the OA) is asked for once an hour at most, not on every message."""
    with sessions() as session:  # nearly always: a known user with a fresh profile, one read and done
        known = session.execute(
            select(ZaloUser.profile_fetched_at, ZaloUser.profile_tried_at).where(ZaloUser.user_id == user_id)
        ).first()
    if known is not None and not profile_due(known.profile_fetched_at, known.profile_tried_at, now):
        return False
    with sessions() as session, session.begin():
        insert_ignore(session, ZaloUser, {"user_id": user_id, "created_at": now, "is_follower": False}, ["user_id"])
        user = session.scalars(select(ZaloUser).where(ZaloUser.user_id == user_id).with_for_update()).one()
        if not profile_due(user.profile_fetched_at, user.profile_tried_at, now):
            return False  # another job fetched it meanwhile
        user.profile_tried_at = now
    try:
        data = zalo.user_detail(user_id)
    except ZaloError as exc:
        log.warning("profile of %s not fetched: %s", user_id, exc)
        return False
    with sessions() as session, session.begin():
        user = session.scalars(select(ZaloUser).where(ZaloUser.user_id == user_id)).one()
        user.display_name = str(data.get("display_name") or user.display_name or "")[:200] or None
        user.avatar_url = str(data.get("avatar") or user.avatar_url or "") or None
        user.user_id_by_app = user.user_id_by_app or (str(data.get("user_id_by_app") or "") or None)
        if isinstance(data.get("user_is_follower"), bool):  # Zalo's word on following, whenever it was
            user.is_follower = data["user_is_follower"]
        user.profile_fetched_at = now
    return True


def profile_due(fetched: datetime | None, tried: datetime | None, now: datetime) -> bool:
    """No profile or a week-old one, and no failed try within the hour."""
    if fetched is not None and now - fetched < PROFILE_TTL:
        return False
    return tried is None or now - tried >= PROFILE_RETRY
