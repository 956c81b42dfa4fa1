"""Keeping track of the Zalo users who talk to the OA (and when, for the 7-day window)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from models import ConversationState, Member, ZaloUser, insert_ignore
from models.config import remember_token, token_column
from zalo.events import ZaloEvent


@dataclass(frozen=True)
class Caller:
    """Who wrote: the Zalo user's row, their pending conversation step (maybe expired) and their member, if any."""

    user: ZaloUser
    state: ConversationState | None
    member: Member | None


def touch_user(session: Session, event: ZaloEvent, now: datetime) -> Caller | None:
    """Get or create the event's user and record an interaction if the event opens the window.

    The user, their conversation step and their member come in one statement: every message needs all three, and
    each round trip to the database cost a worker about half a millisecond of CPU (issue 16, bench.event_profile).
    The same statement reads the configuration's token (models.config): the program's rules and tiers come from the
    process's cache while they have not changed."""
    if not event.user_id:
        return None
    found = session.execute(_caller_statement(), {"user_id": event.user_id}).first()
    if found is None:  # a first message: the insert tolerates a racing job that made the row meanwhile
        values = {"user_id": event.user_id, "created_at": now, "is_follower": False}
        insert_ignore(session, ZaloUser, values, ["user_id"])
        found = session.execute(_caller_statement(), {"user_id": event.user_id}).one()
    user, state, member, config_token = found
    remember_token(session, config_token)  # the rules and tiers this event reads need no statement of their own
    if event.is_interaction:
        at = min(event.occurred_at or now, now)  # a clock-skewed future timestamp must not extend the window
        if user.last_interaction_at is None or at > user.last_interaction_at:
            user.last_interaction_at = at
    user_id_by_app = getattr(event, "user_id_by_app", None)
    if user_id_by_app and not user.user_id_by_app:
        user.user_id_by_app = user_id_by_app
    return Caller(user=user, state=state, member=member)


@lru_cache(maxsize=1)
def _caller_statement() -> Any:
    """Built once (with a bound parameter), so each message does not pay for building and caching it again.
    At most one row: a conversation step per user and a member per Zalo user are unique."""
    return (
        select(ZaloUser, ConversationState, Member, token_column())
        .outerjoin(ConversationState, ConversationState.user_id == ZaloUser.user_id)
        .outerjoin(Member, Member.zalo_user_id == ZaloUser.user_id)
        .where(ZaloUser.user_id == bindparam("user_id"))
    )
