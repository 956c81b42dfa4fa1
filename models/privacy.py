"""What customers agreed to: an append-only log of consents and withdrawals (Law 91/2025/QH15)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class ConsentState(enum.StrEnum):
    UNKNOWN = "unknown"  # imported, or joined before consent was asked: service messages only
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class Consent(Model):
    """One consent or withdrawal, never changed or deleted: who, to what notice, when, through which channel.
    `members.marketing_consent` caches the latest, written in the same transaction."""

    __tablename__ = "consents"

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    zalo_user_id: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(24), default="marketing")
    granted: Mapped[bool]
    notice_version: Mapped[str] = mapped_column(String(16))  # the privacy notice the customer was shown
    channel: Mapped[str] = mapped_column(String(16))  # chat | counter | console
    actor: Mapped[str] = mapped_column(String(64))  # "chat:<zalo user>", "staff:3"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivacyNotice(Model):
    """The shop's privacy notice, one row per version (never edited): consents name the version shown."""

    __tablename__ = "privacy_notices"

    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequestKind(enum.StrEnum):
    ACCESS = "access"  # "what do you hold about me?"
    ERASURE = "erasure"  # "delete my account"


class RequestStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    REFUSED = "refused"  # with the reason, told to the customer


class DataRequest(Model):
    """A customer's request about their personal data, with the date it is due (Decree 356/2025)."""

    __tablename__ = "data_requests"

    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # chat | counter | console
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.OPEN, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
