"""Keeping track of the Zalo users who talk to the OA (and when, for the 7-day window)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ZaloUser, insert_ignore
from zalo.events import ZaloEvent


def touch_user(session: Session, event: ZaloEvent, now: datetime) -> ZaloUser | None:
    """Get or create the event's user and record an interaction if the event opens the window."""
    if not event.user_id:
        return None
    user = session.scalars(select(ZaloUser).where(ZaloUser.user_id == event.user_id)).one_or_none()
    if user is None:  # a first message: the insert tolerates a racing job that made the row meanwhile
        values = {"user_id": event.user_id, "created_at": now, "is_follower": False}
        insert_ignore(session, ZaloUser, values, ["user_id"])
        user = session.scalars(select(ZaloUser).where(ZaloUser.user_id == event.user_id)).one()
    if event.is_interaction:
        at = min(event.occurred_at or now, now)  # a clock-skewed future timestamp must not extend the window
        if user.last_interaction_at is None or at > user.last_interaction_at:
            user.last_interaction_at = at
    user_id_by_app = getattr(event, "user_id_by_app", None)
    if user_id_by_app and not user.user_id_by_app:
        user.user_id_by_app = user_id_by_app
    return user
