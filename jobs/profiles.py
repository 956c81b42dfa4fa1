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


def fetch_profile(sessions: sessionmaker[Session], zalo: ZaloClient, user_id: str, now: datetime) -> bool:
    """GET /v3.0/oa/user/detail when we have no profile or it is older than a week. True if it was fetched."""
    with sessions() as session, session.begin():
        insert_ignore(session, ZaloUser, {"user_id": user_id, "created_at": now, "is_follower": False}, ["user_id"])
        fetched = session.scalar(select(ZaloUser.profile_fetched_at).where(ZaloUser.user_id == user_id))
    if fetched is not None and now - fetched < PROFILE_TTL:
        return False
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
        user.profile_fetched_at = now
    return True
