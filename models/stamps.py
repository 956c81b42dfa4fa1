"""Stamp cards ("mua 5 ly tặng 1"): the cards a shop runs, each member's progress, and the append-only stamps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Model, utcnow


class StampCard(Model):
    """A card the shop runs: `stamps_needed` stamps earn the reward's voucher, then a new card starts."""

    __tablename__ = "stamp_cards"

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    stamps_needed: Mapped[int]
    reward_id: Mapped[int] = mapped_column(BigId, ForeignKey("rewards.id"))
    # None: every qualifying bill stamps it once. A name ("Cà phê"): only bills the cashier or the POS says hold
    # that group stamp it, one stamp per item up to max_per_bill.
    product_group: Mapped[str | None] = mapped_column(String(60))
    max_per_bill: Mapped[int] = mapped_column(default=1)
    min_bill_amount: Mapped[int] = mapped_column(default=0)  # đ
    min_hours_between: Mapped[int] = mapped_column(default=0)  # 0: every bill; 4: at most one stamp per 4 hours
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))  # None: every store
    valid_days: Mapped[int | None]  # a card's stamps lapse this many days after its first stamp (None: never)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberStampCard(Model):
    """A member's progress on one card: the stamps on the card in hand and how many cards they filled."""

    __tablename__ = "member_stamp_cards"
    __table_args__ = (UniqueConstraint("member_id", "stamp_card_id"),)

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    stamp_card_id: Mapped[int] = mapped_column(BigId, ForeignKey("stamp_cards.id"), index=True)
    stamps: Mapped[int] = mapped_column(default=0)  # on the current card, 0..stamps_needed-1
    cards_completed: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]  # the current card's first stamp
    expires_at: Mapped[datetime | None]  # the current card's stamps lapse then
    last_stamp_at: Mapped[datetime | None]


class StampKind:
    STAMP = "stamp"
    REVERSE = "reverse"  # a refunded bill's stamps taken back
    EXPIRE = "expire"  # a card's stamps lapsed


class Stamp(Model):
    """One change to a member's stamps. Rows are only ever inserted, like the ledger's."""

    __tablename__ = "stamps"
    __table_args__ = (
        Index("ix_stamps_visit_key", "visit_key"),
        Index("ix_stamps_bill_ref", "bill_ref"),  # a stamp-only shop's duplicate-bill check
        Index("ix_stamps_member_id_id", "member_id", "id"),
        Index("ix_stamps_stamp_card_id_created_at", "stamp_card_id", "created_at"),
    )

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    stamp_card_id: Mapped[int] = mapped_column(BigId, ForeignKey("stamp_cards.id"))
    kind: Mapped[str] = mapped_column(String(10), default=StampKind.STAMP)
    count: Mapped[int]  # signed
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    visit_key: Mapped[str | None] = mapped_column(String(160))  # the bill's earn key: a refund finds its stamps
    bill_ref: Mapped[str | None] = mapped_column(String(120))
    bill_amount: Mapped[int | None]
    store_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stores.id"))
    actor_type: Mapped[str] = mapped_column(String(16), default="system")
    actor_id: Mapped[str | None] = mapped_column(String(64))
    reverses_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stamps.id"), unique=True)
    voucher_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("vouchers.id"))  # the card this filled
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StampAppendOnly(RuntimeError):
    """Stamps are never changed or deleted; a refund or a lapse is a new row."""


@event.listens_for(Stamp, "before_update")
@event.listens_for(Stamp, "before_delete")
def _refuse_stamp_changes(_mapper: object, _connection: object, target: Stamp) -> None:
    raise StampAppendOnly(f"stamp {target.id} is append-only")
