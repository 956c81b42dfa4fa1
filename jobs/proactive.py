"""Messages the shop starts (automations, broadcasts): routed by Zalo's rules when they are sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from loyalty.program import load_rules
from models import Broadcast, BroadcastStatus, OutboxMessage, OutboxStatus, ZaloUser, utcnow
from zalo.client import ZaloClient
from zalo.messages import Button, text_message
from zalo.policy import Route, decide


class Hold(Exception):  # noqa: N818 - a control signal, not an error
    """Not now (night ban, paused broadcast): back to pending, tried again at `not_before`."""

    def __init__(self, reason: str, not_before: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason, self.not_before = reason, not_before


class Skip(Exception):  # noqa: N818
    """Never: Zalo's rules or the marketer say this one is not sent. Recorded with the reason."""

    def __init__(self, reason: str, status: str = OutboxStatus.SKIPPED) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def proactive_payload(
    text: str, *, promotional: bool, buttons: list[dict[str, str]] | None = None
) -> tuple[str, dict[str, Any]]:
    """An outbox item (kind, payload) for a message the shop starts."""
    return "proactive", {"text": text, "promotional": promotional, "buttons": buttons or []}


@dataclass
class ProactiveSender:
    sessions: sessionmaker[Session]
    zalo: ZaloClient
    tz: ZoneInfo

    def send(self, row: OutboxMessage) -> str:
        now = utcnow()
        with self.sessions() as session:
            user = session.scalar(select(ZaloUser).where(ZaloUser.user_id == row.zalo_user_id))
            automations = load_rules(session).automations
            broadcast = session.get(Broadcast, row.broadcast_id) if row.broadcast_id else None
        if broadcast is not None:
            if broadcast.status == BroadcastStatus.CANCELLED:
                raise Skip("broadcast cancelled", OutboxStatus.CANCELLED)
            if broadcast.status == BroadcastStatus.PAUSED:
                raise Hold("broadcast paused")
        if user is None or not user.is_follower:
            raise Skip("not following the OA")
        payload = row.message
        decision = decide(
            last_interaction=user.last_interaction_at,
            now=now,
            tz=self.tz,
            promotional=bool(payload.get("promotional")),
            template_configured=bool(automations.template_id),
        )
        if decision.route == Route.DEFER:
            raise Hold(decision.reason, decision.not_before)
        if decision.route == Route.SKIP:
            raise Skip(decision.reason)
        if decision.route == Route.TEMPLATE:
            return self.zalo.send_template(
                row.zalo_user_id, automations.template_id, {automations.template_param: payload["text"][:400]}
            )
        buttons = tuple(Button(b["title"], b["payload"]) for b in payload.get("buttons") or ())
        return self.zalo.send_message(row.zalo_user_id, text_message(payload["text"][:2000], buttons))
