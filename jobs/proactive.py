"""Messages the shop starts (automations, broadcasts): routed by Zalo's rules when they are sent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import (
    Broadcast,
    BroadcastStatus,
    OutboxMessage,
    OutboxStatus,
    ZaloTemplate,
    ZaloUser,
    usable_template,
    utcnow,
)
from tichdiem.db import autocommit
from zalo.client import ZaloClient
from zalo.errors import ZaloTemplateUidRefused
from zalo.messages import Button, text_message
from zalo.policy import Route, decide, is_night, next_morning
from zalo.templates import TemplateDataError, template_data


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
    text: str,
    *,
    promotional: bool,
    buttons: list[dict[str, str]] | None = None,
    purpose: str = "broadcast",
    fields: dict[str, Any] | None = None,
    phone: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """An outbox item (kind, payload) for a message the shop starts.

    `purpose` picks the shop's ZBS template for members outside the 7-day window, `fields` fill its typed
    parameters (by the marketer's mapping) and `phone` ("84…") lets it go by phone: to a member who never
    chatted with the OA, or when the template refuses UIDs."""
    payload: dict[str, Any] = {"text": text, "promotional": promotional, "buttons": buttons or [], "purpose": purpose}
    if fields:
        payload["fields"] = {k: str(v) for k, v in fields.items()}
    if phone:
        payload["phone"] = phone
    return "proactive", payload


@dataclass(frozen=True)
class Template:
    """What a send needs of a registered ZaloTemplate (read in the claim's short session)."""

    row_id: int
    template_id: str
    params: list[dict[str, Any]]
    mapping: dict[str, str]
    uid_refused: bool


@dataclass(frozen=True)
class SendFacts:
    """What a proactive send checks, read with the row's claim (one statement, `jobs.outbox`): the broadcast's
    status (None for a message of no broadcast) and the recipient (user_id None: a user we never saw)."""

    broadcast_status: str | None
    user_id: str | None
    is_follower: bool | None
    last_interaction_at: datetime | None


TEMPLATE_CACHE_SECONDS = 30.0  # a broadcast sends thousands of rows: its template is read twice a minute


@dataclass
class ProactiveSender:
    sessions: sessionmaker[Session]
    zalo: ZaloClient
    tz: ZoneInfo
    # purpose -> (its template, time.monotonic() it was read)
    _templates: dict[str, tuple[Template | None, float]] = field(default_factory=dict, init=False, repr=False)

    def send(self, row: OutboxMessage, facts: SendFacts | None = None) -> str:
        now = utcnow()
        payload = row.message
        purpose = str(payload.get("purpose") or "broadcast")
        if facts is None:  # not read with the claim: the recipient and the broadcast's status in one read
            with autocommit(self.sessions) as connection:
                found = connection.execute(
                    _recipient_and_status(), {"user_id": row.zalo_user_id, "bid": row.broadcast_id}
                )
                status, user = _split(found.first())
        else:
            status, user = facts.broadcast_status, (facts if facts.user_id is not None else None)
        template = self._template(purpose)
        if status == BroadcastStatus.CANCELLED:
            raise Skip("broadcast cancelled", OutboxStatus.CANCELLED)
        if status == BroadcastStatus.PAUSED:
            raise Hold("broadcast paused")
        promotional = bool(payload.get("promotional"))
        phone = payload.get("phone") or None
        if user is None or not user.is_follower:
            if template is None or phone is None:
                raise Skip("not following the OA" if row.zalo_user_id else "no Zalo account and no template by phone")
            if promotional and is_night(now, self.tz):
                raise Hold("night: promotions wait until 06:00", next_morning(now, self.tz))
            return self._by_template(row, template, None, phone)
        decision = decide(
            last_interaction=user.last_interaction_at,
            now=now,
            tz=self.tz,
            promotional=promotional,
            template_configured=template is not None,
        )
        if decision.route == Route.DEFER:
            raise Hold(decision.reason, decision.not_before)
        if decision.route == Route.SKIP:
            raise Skip(decision.reason)
        if decision.route == Route.TEMPLATE:
            assert template is not None
            return self._by_template(row, template, user.user_id, phone)
        buttons = tuple(Button(b["title"], b["payload"]) for b in payload.get("buttons") or ())
        return self.zalo.send_message(user.user_id, text_message(payload["text"][:2000], buttons))

    def _template(self, purpose: str) -> Template | None:
        cached = self._templates.get(purpose)
        if cached is not None and time.monotonic() - cached[1] < TEMPLATE_CACHE_SECONDS:
            return cached[0]
        with autocommit(self.sessions) as connection, Session(connection) as session:
            template = _template(session, purpose)
        self._templates[purpose] = (template, time.monotonic())
        return template

    def _by_template(self, row: OutboxMessage, template: Template, user_id: str | None, phone: str | None) -> str:
        """By UID when we have one and the template takes UIDs, else by phone. -249 (this template refuses
        UIDs) means Zalo sent nothing, so the phone is tried at once, and the template is remembered."""
        try:
            data = template_data(template.params, template.mapping, row.message.get("fields") or {})
        except TemplateDataError as exc:
            raise Skip(f"mẫu tin {template.template_id}: {exc}") from exc
        if user_id is not None and not template.uid_refused:
            try:
                return self.zalo.send_template(user_id, template.template_id, data)
            except ZaloTemplateUidRefused:
                with self.sessions() as session, session.begin():
                    session.execute(
                        update(ZaloTemplate).where(ZaloTemplate.id == template.row_id).values(uid_refused=True)
                    )
                self._templates.clear()  # once stored: the next read has uid_refused set
        if phone is None:
            raise Skip("mẫu tin chỉ gửi được qua số điện thoại, thành viên chưa có số")
        return self.zalo.send_template_by_phone(phone, template.template_id, data, tracking_id=row.key)


def template_enabled(session: Session, purpose: str) -> bool:
    return usable_template(session, purpose) is not None


def _template(session: Session, purpose: str) -> Template | None:
    """The shop's enabled, mapped template for this purpose (read in the claim's short session)."""
    row = usable_template(session, purpose)
    if row is None:
        return None
    return Template(row.id, row.template_id, list(row.params), dict(row.mapping), row.uid_refused)


@lru_cache(maxsize=1)
def _recipient_and_status() -> Any:
    """One row: the broadcast's status (NULL for a message of no broadcast) and the recipient's follow state and
    last interaction, by outer join (NULLs for a message by phone, or a user we never saw). Built once."""
    status = select(Broadcast.status).where(Broadcast.id == bindparam("bid")).scalar_subquery()
    anchor = select(status.label("broadcast_status")).subquery()
    return select(
        anchor.c.broadcast_status, ZaloUser.user_id, ZaloUser.is_follower, ZaloUser.last_interaction_at
    ).select_from(anchor.outerjoin(ZaloUser, ZaloUser.user_id == bindparam("user_id")))


def _split(found: Any) -> tuple[str | None, Any]:
    """(the broadcast's status, the recipient's row or None)."""
    if found is None:
        return None, None
    return found.broadcast_status, (found if found.user_id is not None else None)
