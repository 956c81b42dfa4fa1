"""Staff, their audit trail, POS API keys and counter claims (one-time codes a customer sends to the bot)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class Role(enum.StrEnum):
    OWNER = "owner"  # everything
    MARKETER = "marketer"  # program, broadcasts, reports
    CASHIER = "cashier"  # the counter only


class Staff(Model):
    __tablename__ = "staff"

    username: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), default=Role.CASHIER)
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # Bumped on logout, password change and lock: every session cookie carrying an older value is dead.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiKey(Model):
    """A POS system's key for one store. Only a hash is kept; the key is shown once, at creation."""

    __tablename__ = "api_keys"

    store_id: Mapped[int] = mapped_column(BigId, ForeignKey("stores.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # the first characters, to find the row
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ClaimStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    CANCELLED = "cancelled"


class Claim(Model):
    """Points for a bill waiting for whoever sends its code to the OA first (before it expires)."""

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_store_id_created_at", "store_id", "created_at"),)

    code: Mapped[str] = mapped_column(String(12), unique=True)
    amount: Mapped[int]  # bill amount in đ
    bill_ref: Mapped[str | None] = mapped_column(String(120))
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    channel: Mapped[str] = mapped_column(String(20), default="claim")
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(64))  # "staff:3" or "api:7"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=ClaimStatus.OPEN)
    member_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("members.id"))
    entry_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_entries.id"))
    claimed_at: Mapped[datetime | None]


class AuditLog(Model):
    """Who did what at the counter (or through the API), where and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_store_id_created_at", "store_id", "created_at"),)

    actor: Mapped[str] = mapped_column(String(64))  # "staff:3", "api:7", "system"
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    action: Mapped[str] = mapped_column(String(40))  # earn, reverse, use_voucher, create_claim, ...
    member_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    entry_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_entries.id"))
    voucher_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("vouchers.id"))
    claim_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("claims.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
