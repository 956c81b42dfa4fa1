"""Per-user conversation state in the database, so a pending "trả lời CÓ" survives restarts and times out."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models import ConversationState, insert_ignore

STEP_TOKEN = "step_token"


def live_state(session: Session, state: ConversationState | None, now: datetime) -> ConversationState | None:
    """The user's pending step as read with the user (`bot.users.touch_user`), or None; an expired step is removed
    and not returned."""
    if state is not None and state.expires_at <= now:
        session.delete(state)
        session.flush()
        return None
    return state


def set_state(
    session: Session, user_id: str, name: str, data: dict[str, Any], now: datetime, ttl: timedelta
) -> ConversationState:
    """Start (or replace) the user's pending step.

    Each step gets an unguessable token in its data (`step_token`): the identity of this very question for
    idempotency keys. The row id cannot serve: SQLite hands a deleted row's id to the next insert.
    """
    clear_state(session, user_id)
    data = {**data, STEP_TOKEN: secrets.token_urlsafe(16)}
    insert_ignore(
        session,
        ConversationState,
        {"user_id": user_id, "name": name, "data": data, "expires_at": now + ttl, "created_at": now},
        ["user_id"],
    )
    state = session.scalar(select(ConversationState).where(ConversationState.user_id == user_id))
    assert state is not None
    return state


def step_token(state: ConversationState) -> str | None:
    """The question's own token, or None for a step stored before tokens existed."""
    token = state.data.get(STEP_TOKEN)
    return token if isinstance(token, str) and token else None


def clear_state(session: Session, user_id: str) -> None:
    session.execute(delete(ConversationState).where(ConversationState.user_id == user_id))
