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

    @classmethod
    def of(cls, row: Any) -> SendFacts:
        """From a row holding `send_facts_columns()`."""
        return cls(**{name: getattr(row, name) for name in _FACT_NAMES})

    @property
    def recipient(self) -> Recipient | None:
        """The recipient, or None for a message by phone or a user we never saw."""
        if self.user_id is None:
            return None
        return Recipient(self.user_id, bool(self.is_follower), self.last_interaction_at)


@dataclass(frozen=True)
class Recipient:
    user_id: str
    is_follower: bool
    last_interaction_at: datetime | None


_FACT_NAMES = ("broadcast_status", "user_id", "is_follower", "last_interaction_at")


def send_facts_columns() -> list[Any]:
    """What a proactive send checks, as columns correlated to `outbox_messages`: the claim returns them with the
    row (`jobs.outbox`), and a send handed a row without them reads them alone. NULLs for a message of no
    broadcast, by phone, or to a user we never saw."""
    recipient = select(ZaloUser).where(ZaloUser.user_id == OutboxMessage.zalo_user_id)
    status = select(Broadcast.status).where(Broadcast.id == OutboxMessage.broadcast_id)
    of_recipient = [ZaloUser.user_id, ZaloUser.is_follower, ZaloUser.last_interaction_at]
    return [status.scalar_subquery().label("broadcast_status")] + [
        recipient.with_only_columns(column).scalar_subquery().label(name)
        for column, name in zip(of_recipient, _FACT_NAMES[1:], strict=True)
    ]


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
        if facts is None:  # not read with the claim (a row claimed by its writer): the same columns, alone
            with autocommit(self.sessions) as connection:
                facts = SendFacts.of(connection.execute(_facts_statement(), {"outbox_id": row.id}).one())
        status, user = facts.broadcast_status, facts.recipient
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
def _facts_statement() -> Any:
    return select(*send_facts_columns()).where(OutboxMessage.id == bindparam("outbox_id"))
