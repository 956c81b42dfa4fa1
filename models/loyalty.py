"""The loyalty domain's tables: members, the append-only ledger and its point lots, tiers, rewards, vouchers."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class MemberStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    ERASED = "erased"  # the customer asked to be forgotten: no personal field left, the ledger kept exact


class Member(Model):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("points_balance >= 0", name="balance_not_negative"),)

    code: Mapped[str] = mapped_column(String(16), unique=True)  # referral code, shown to the member
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)  # 84xxxxxxxxx
    birthday: Mapped[date | None]
    zalo_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    zalo_tag: Mapped[str | None] = mapped_column(String(64))  # the OA tag this app last gave them (jobs/tags.py)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.ACTIVE)
    tier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tiers.id"), index=True)
    tier_since: Mapped[datetime | None]
    # A tier the owner assigned by hand (a pilot group, staff, partners): held until then whatever the points.
    tier_held_until: Mapped[datetime | None]
    tier_held_reason: Mapped[str | None] = mapped_column(String(200))
    tier_held_by: Mapped[str | None] = mapped_column(String(64))
    referred_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    # Caches of what the ledger says, updated in the same transaction as each entry (checked by tests).
    points_balance: Mapped[int] = mapped_column(default=0)
    points_lifetime: Mapped[int] = mapped_column(default=0)  # all points ever credited by earning
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When points were last earned: "active in 30 days" without scanning the ledger (dashboard, filters, segments).
    last_earned_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(16), default="zalo")  # zalo | import | counter
    # The member card's QR token embeds this; "đổi thẻ" increments it, revoking every older card.
    card_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # Marketing consent (the latest record of `consents`): "unknown" until the customer answers; only
    # "granted" receives offers (broadcasts, birthday offers); service messages need none.
    marketing_consent: Mapped[str] = mapped_column(String(16), default="unknown", server_default="unknown")
    consent_at: Mapped[datetime | None]
    consent_asked_at: Mapped[datetime | None]  # the chat asks once


class EntryKind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    EXPIRE = "expire"
    ADJUST = "adjust"
    REVERSE = "reverse"
    REFERRAL_BONUS = "referral_bonus"
    PAY = "pay"  # points paying part of a bill at the till (loyalty.payments)
    BONUS = "bonus"  # a sign-up or profile bonus (loyalty.bonuses)
    DONATE = "donate"  # points given to a cause (loyalty.charity)


class ActorType(enum.StrEnum):
    STAFF = "staff"
    SYSTEM = "system"
    MEMBER = "member"


class LedgerEntry(Model):
    """One business operation on a member's points. Rows are only ever inserted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_member_id_id", "member_id", "id"),
        Index("ix_ledger_entries_member_id_qualifying_at", "member_id", "qualifying_at"),
        Index("ix_ledger_entries_member_id_kind_created_at", "member_id", "kind", "created_at"),
        Index("ix_ledger_entries_created_at", "created_at"),  # this month's totals, exports by period
    )

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(20))
    points: Mapped[int]  # signed: credits > 0, debits < 0
    balance_after: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_type: Mapped[str] = mapped_column(String(16), default=ActorType.SYSTEM)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    source_ref: Mapped[str | None] = mapped_column(String(120), index=True)  # bill number, voucher code, ...
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    channel: Mapped[str | None] = mapped_column(String(20))
    bill_amount: Mapped[int | None]  # đ, for earns
    # Set on entries that count toward tier qualification: the earn's time (a reversal carries the time
    # of the earn it cancels, so both fall in the same rolling window).
    qualifying_at: Mapped[datetime | None]
    # The entry this one reverses; unique, so an entry can be reversed once.
    reverses_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_entries.id"), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # how the points were computed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointLot(Model):
    """Credited points not yet spent, with their expiry: the FIFO state derived from the ledger."""

    __tablename__ = "point_lots"
    __table_args__ = (
        Index("ix_point_lots_member_id_remaining", "member_id", "remaining"),
        Index("ix_point_lots_expires_at_remaining", "expires_at", "remaining"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
    )

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_entries.id"), unique=True)
    points: Mapped[int]
    remaining: Mapped[int]
    earned_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class LotDraw(Model):
    """How many points a debit entry took from which lot, so a reversal can put them back exactly."""

    __tablename__ = "lot_draws"

    entry_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(BigId, ForeignKey("point_lots.id"), index=True)
    points: Mapped[int]


class Tier(Model):
    __tablename__ = "tiers"

    name: Mapped[str] = mapped_column(String(60), unique=True)
    threshold: Mapped[int] = mapped_column(unique=True)  # qualifying points needed
    benefits: Mapped[str] = mapped_column(Text, default="")
    earn_multiplier_pct: Mapped[int] = mapped_column(default=100)  # 150 = earns x1.5
    reward_discount_pct: Mapped[int] = mapped_column(default=0)  # 5 = pays 5% fewer points per voucher


class TierEvent(Model):
    __tablename__ = "tier_events"

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), index=True)
    from_tier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tiers.id"))
    to_tier_id: Mapped[int] = mapped_column(BigId, ForeignKey("tiers.id"))
    direction: Mapped[str] = mapped_column(String(8))  # up | down
    reason: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(index=True)  # set by the congratulation job


class Store(Model):
    __tablename__ = "stores"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="retail")  # retail | outlet | online
    # Optional store-specific earn rate: earn_points per earn_unit_amount đ.
    earn_points: Mapped[int | None]
    earn_unit_amount: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True)


class Reward(Model):
    __tablename__ = "rewards"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    points_cost: Mapped[int]
    stock: Mapped[int | None]  # None = unlimited; decremented on each issue
    validity_days: Mapped[int] = mapped_column(default=30)
    per_member_limit: Mapped[int | None]
    active_from: Mapped[datetime | None]
    active_until: Mapped[datetime | None]
    min_tier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tiers.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VoucherStatus(enum.StrEnum):
    ISSUED = "issued"
    USED = "used"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Voucher(Model):
    __tablename__ = "vouchers"
    __table_args__ = (
        Index("ix_vouchers_member_id_status", "member_id", "status"),
        UniqueConstraint("idempotency_key"),
    )

    code: Mapped[str] = mapped_column(String(16), unique=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(BigId, ForeignKey("rewards.id"), index=True)
    points_spent: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(String(20), default="redeem")  # redeem | gift | birthday | campaign
    status: Mapped[str] = mapped_column(String(16), default=VoucherStatus.ISSUED)
    idempotency_key: Mapped[str] = mapped_column(String(160))
    redeem_entry_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_entries.id"))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_key: Mapped[str | None] = mapped_column(String(160))
    used_by: Mapped[str | None] = mapped_column(String(64))
    used_store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    cancelled_at: Mapped[datetime | None]


class ProgramSettings(Model):
    """The program's rules as one validated JSON document (loyalty.program.ProgramRules)."""

    __tablename__ = "program_settings"

    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class AppendOnlyViolation(RuntimeError):
    """Ledger entries are never changed or deleted; corrections are new entries."""


@event.listens_for(LedgerEntry, "before_update")
@event.listens_for(LedgerEntry, "before_delete")
def _refuse_ledger_changes(_mapper: object, _connection: object, target: LedgerEntry) -> None:
    raise AppendOnlyViolation(f"ledger entry {target.id} is append-only")


class MemberGroup(Model):
    """A named group a member belongs to ("Khách sỉ", "Sinh nhật tháng 12"): from an import's "Nhóm" column or
    picked in the member list; broadcasts and gifts may target one."""

    __tablename__ = "member_groups"
    __table_args__ = (UniqueConstraint("member_id", "name"), Index("ix_member_groups_name", "name"))

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
