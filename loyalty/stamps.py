"""Stamp cards ("mua 5 ly tặng 1", LINE's reward card): stamps per qualifying bill, a voucher when a card is full.

A bill stamps every active card it qualifies for in the same transaction and under the same key as its points
(`earning.earn` calls `stamp_bill`), so the counter's one scan, a counter claim and the POS API give both and a
retried request gives neither twice. A card without a product group takes one stamp per bill; a card for a
group ("Cà phê") takes one per item of that group the bill holds, up to `max_per_bill`. A full card issues the
card's reward as a voucher (once: keyed by the bill that filled it) and the next stamp starts a new card.
The member's row lock (taken by the caller) serialises every change to their cards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from loyalty import ledger, rewards
from loyalty.errors import KeyReused
from loyalty.locks import lock_member
from loyalty.text import fold
from models import (
    Member,
    MemberStampCard,
    Reward,
    Stamp,
    StampCard,
    StampKind,
    Voucher,
    VoucherStatus,
)
from models.config import cached_rows

MAX_STAMPS_NEEDED = 30  # a card the customer can see filled in one picture


@dataclass(frozen=True)
class StampProgress:
    """Where one card stands after a bill: what the bill added (or why it added nothing) and what is on it."""

    card: StampCard
    added: int
    stamps: int  # on the card in hand now
    voucher: Voucher | None = None  # the reward, when this bill filled the card
    skipped: str | None = None  # min_bill | cooldown
    expires_at: datetime | None = None
    stamp_id: int | None = None  # the stamp row (a refund of a bill without points names it)

    def as_json(self) -> dict[str, Any]:
        return {
            "stamp_id": self.stamp_id,
            "stamp_card_id": self.card.id,
            "name": self.card.name,
            "added": self.added,
            "stamps": self.stamps,
            "stamps_needed": self.card.stamps_needed,
            "skipped": self.skipped,
            "voucher_code": self.voucher.code if self.voucher else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass(frozen=True)
class Unstamped:
    """A refunded bill's stamps on one card: how many came off, and what was kept because it was already used."""

    card: StampCard
    taken: int
    kept: int
    voucher_cancelled: Voucher | None = None


def all_cards(session: Session) -> list[StampCard]:
    """Every card, running or paused (a handful of rows): an earn reads them once, and a shop without any
    pays no other stamp query."""
    return cached_rows(session, StampCard, lambda s: s.scalars(select(StampCard).order_by(StampCard.id)))


def active_cards(session: Session) -> list[StampCard]:
    return [c for c in all_cards(session) if c.is_active]


def group_cards(session: Session, store_id: int | None) -> list[StampCard]:
    """The active cards of a product group this store stamps: the counter asks how many items of each."""
    return [c for c in active_cards(session) if c.product_group and _in_store(c, store_id)]


def stamp_bill(
    session: Session,
    member: Member,
    *,
    visit_key: str,
    amount: int,
    now: datetime,
    items: Mapping[str, int] | None = None,
    store_id: int | None = None,
    bill_ref: str | None = None,
    actor: ledger.Actor = ledger.SYSTEM,
    cards: list[StampCard] | None = None,
) -> list[StampProgress]:
    """Stamp every card this bill qualifies for; `member` must be locked by the caller, who checked with
    `visit_progress` that this `visit_key` stamped nothing yet (the stamps' unique keys refuse a second time).

    `items`: how many items of each product group the bill holds ({"Cà phê": 2}), matched without diacritics
    or case; None when nobody said (a claim, a bill typed at the counter without groups). `cards`: the shop's
    cards if the caller read them already.
    """
    folded = {fold(name): qty for name, qty in (items or {}).items()}
    results = []
    for card in cards if cards is not None else all_cards(session):
        if not card.is_active:
            continue
        wanted = _stamps_for(card, folded)
        if wanted <= 0 or not _in_store(card, store_id):
            continue
        progress = _progress(session, member.id, card.id)
        _lapse_if_expired(session, card, progress, now)
        if amount < card.min_bill_amount:
            results.append(_as_is(card, progress, "min_bill"))
            continue
        cooldown = timedelta(hours=card.min_hours_between)
        if card.min_hours_between and progress.last_stamp_at and now - progress.last_stamp_at < cooldown:
            results.append(_as_is(card, progress, "cooldown"))
            continue
        results.append(_add(session, member, card, progress, wanted, visit_key, now, bill_ref, amount, store_id, actor))
    return results


def visit_progress(session: Session, member_id: int, visit_key: str) -> list[StampProgress]:
    """What a bill already stamped (empty if nothing): a retried request answers with it, stamping nothing.
    Raises KeyReused if the key stamped another member's bill."""
    rows = _visit_rows(session, visit_key)
    if any(row.member_id != member_id for row in rows):
        raise KeyReused(visit_key)
    return _replayed(session, member_id, rows)


def unstamp_visit(session: Session, visit_key: str, *, now: datetime, actor: ledger.Actor) -> list[Unstamped]:
    """Take back a refunded bill's stamps, once. A card the bill filled whose voucher is still unused is
    cancelled and the card reopens; stamps already turned into a used voucher stay (the result says how many)."""
    results = []
    for row in _visit_rows(session, visit_key):
        lock_member(session, row.member_id, allow_blocked=True)
        if row.kind != StampKind.STAMP or row.count <= 0 or _reversal_of(session, row.id) is not None:
            continue
        card = session.get(StampCard, row.stamp_card_id)
        progress = _progress(session, row.member_id, row.stamp_card_id)
        assert card is not None
        results.append(_take_back(session, card, progress, row, now, actor))
    return results


def member_cards(session: Session, member_id: int, now: datetime) -> list[tuple[StampCard, int, datetime | None]]:
    """The member's active cards as they stand now: (card, stamps on it, when they lapse). Lapsed ones show 0."""
    progress = {
        p.stamp_card_id: p
        for p in session.scalars(select(MemberStampCard).where(MemberStampCard.member_id == member_id))
    }
    shown = []
    for card in active_cards(session):
        p = progress.get(card.id)
        lapsed = p is None or (p.expires_at is not None and p.expires_at <= now)
        shown.append((card, 0 if lapsed or p is None else p.stamps, None if lapsed or p is None else p.expires_at))
    return shown


def _stamped_bill(store: bool) -> Any:
    """Built once per shape with bound parameters (see earning.check_bill_not_credited)."""
    reversal = aliased(Stamp, name="reversal")
    refunded = select(reversal.id).where(reversal.reverses_id == Stamp.id).exists()
    where_store = Stamp.store_id == bindparam("store_id") if store else Stamp.store_id.is_(None)
    return (
        select(Stamp.created_at)
        .where(Stamp.kind == StampKind.STAMP, Stamp.bill_ref == bindparam("bill_ref"))
        .where(where_store, ~refunded)
        .limit(1)
    )


_STAMPED_BILL = {True: _stamped_bill(True), False: _stamped_bill(False)}


def stamped_bill_at(session: Session, bill_ref: str, store_id: int | None) -> datetime | None:
    """When this store's bill number was last stamped and not refunded (a stamp-only shop's duplicate check)."""
    stmt = _STAMPED_BILL[store_id is not None]
    return session.scalars(stmt, {"bill_ref": bill_ref, "store_id": store_id}).first()


@dataclass(frozen=True)
class CardFigures:
    members: int = 0  # with at least one stamp on the card in hand
    stamps: int = 0  # given, net of refunds
    completed: int = 0  # cards filled
    vouchers_used: int = 0


def figures(session: Session) -> dict[int, CardFigures]:
    """Per card: members collecting, stamps given, cards filled, and how many of their vouchers were used."""
    given = dict(
        session.execute(
            select(Stamp.stamp_card_id, func.sum(Stamp.count))
            .where(Stamp.kind.in_([StampKind.STAMP, StampKind.REVERSE]))
            .group_by(Stamp.stamp_card_id)
        ).all()
    )
    collecting = dict(
        session.execute(
            select(MemberStampCard.stamp_card_id, func.count())
            .where(MemberStampCard.stamps > 0)
            .group_by(MemberStampCard.stamp_card_id)
        ).all()
    )
    completed = dict(
        session.execute(
            select(MemberStampCard.stamp_card_id, func.sum(MemberStampCard.cards_completed)).group_by(
                MemberStampCard.stamp_card_id
            )
        ).all()
    )
    used = dict(
        session.execute(
            select(Stamp.stamp_card_id, func.count())
            .join(Voucher, Voucher.id == Stamp.voucher_id)
            .where(Voucher.status == VoucherStatus.USED)
            .group_by(Stamp.stamp_card_id)
        ).all()
    )
    ids = set(given) | set(collecting) | set(completed)
    return {
        i: CardFigures(
            members=int(collecting.get(i) or 0),
            stamps=int(given.get(i) or 0),
            completed=int(completed.get(i) or 0),
            vouchers_used=int(used.get(i) or 0),
        )
        for i in ids
    }


# --- one card ------------------------------------------------------------------------------------------


def _stamps_for(card: StampCard, folded_items: Mapping[str, int]) -> int:
    if card.product_group is None:
        return 1
    return min(max(folded_items.get(fold(card.product_group), 0), 0), card.max_per_bill)


def _in_store(card: StampCard, store_id: int | None) -> bool:
    return card.store_id is None or card.store_id == store_id


def _progress(session: Session, member_id: int, card_id: int) -> MemberStampCard:
    """The member's row for this card, made on their first stamp (under the member's lock: no race)."""
    stmt = select(MemberStampCard).where(
        MemberStampCard.member_id == member_id, MemberStampCard.stamp_card_id == card_id
    )
    found = session.scalar(stmt)
    if found is None:
        found = MemberStampCard(member_id=member_id, stamp_card_id=card_id, stamps=0, cards_completed=0)
        session.add(found)
        session.flush()
    return found


def _lapse_if_expired(session: Session, card: StampCard, progress: MemberStampCard, now: datetime) -> None:
    if progress.stamps <= 0 or progress.expires_at is None or progress.expires_at > now:
        return
    started = progress.started_at.isoformat() if progress.started_at else ""
    session.add(
        Stamp(
            member_id=progress.member_id,
            stamp_card_id=card.id,
            kind=StampKind.EXPIRE,
            count=-progress.stamps,
            idempotency_key=f"stamps-lapsed:{progress.id}:{progress.cards_completed}:{started}",
            created_at=now,
        )
    )
    progress.stamps, progress.started_at, progress.expires_at = 0, None, None


def _add(
    session: Session,
    member: Member,
    card: StampCard,
    progress: MemberStampCard,
    count: int,
    visit_key: str,
    now: datetime,
    bill_ref: str | None,
    amount: int,
    store_id: int | None,
    actor: ledger.Actor,
) -> StampProgress:
    total = progress.stamps + count
    voucher = None
    if total >= card.stamps_needed:
        voucher = _reward_voucher(session, member, card, visit_key, now)
        progress.cards_completed += 1
        total -= card.stamps_needed
        progress.started_at = None
    if total > 0 and progress.started_at is None:
        progress.started_at = now
        progress.expires_at = now + timedelta(days=card.valid_days) if card.valid_days else None
    if total == 0:
        progress.expires_at = None
    progress.stamps, progress.last_stamp_at = total, now
    row = Stamp(
        member_id=member.id,
        stamp_card_id=card.id,
        kind=StampKind.STAMP,
        count=count,
        idempotency_key=f"{visit_key}:stamp:{card.id}",
        visit_key=visit_key,
        bill_ref=bill_ref,
        bill_amount=amount,
        store_id=store_id,
        actor_type=actor.type,
        actor_id=actor.id,
        voucher_id=voucher.id if voucher else None,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return StampProgress(card, count, total, voucher, None, progress.expires_at, row.id)


def _reward_voucher(session: Session, member: Member, card: StampCard, visit_key: str, now: datetime) -> Voucher:
    """The full card's voucher. Promised on the card, so the catalog's stock does not hold it back."""
    reward = session.get(Reward, card.reward_id)
    assert reward is not None
    voucher, _ = rewards.issue_gift(
        session, member.id, reward.id, key=f"stamps:{card.id}:{visit_key}", now=now, source="stamps", promised=True
    )
    return voucher


def _take_back(
    session: Session, card: StampCard, progress: MemberStampCard, row: Stamp, now: datetime, actor: ledger.Actor
) -> Unstamped:
    count, cancelled = row.count, None
    if progress.stamps >= count:  # still on the card in hand
        taken, progress.stamps = count, progress.stamps - count
    else:
        voucher = session.get(Voucher, row.voucher_id) if row.voucher_id else None
        if voucher is not None and voucher.status == VoucherStatus.ISSUED:  # the card it filled reopens
            cancelled = rewards.cancel_voucher(session, voucher.id, now=now, actor=actor)
            progress.cards_completed -= 1
            progress.stamps += card.stamps_needed - count
            taken = count
        else:  # what is left on the card comes off; the rest already became a used voucher or lapsed
            taken, progress.stamps = progress.stamps, 0
    if progress.stamps == 0:
        progress.started_at = progress.expires_at = None
    session.add(
        Stamp(
            member_id=row.member_id,
            stamp_card_id=card.id,
            kind=StampKind.REVERSE,
            count=-taken,
            idempotency_key=f"{row.idempotency_key}:reverse",
            visit_key=row.visit_key,
            bill_ref=row.bill_ref,
            store_id=row.store_id,
            actor_type=actor.type,
            actor_id=actor.id,
            reverses_id=row.id,
            created_at=now,
        )
    )
    session.flush()
    return Unstamped(card, taken, count - taken, cancelled)


def _as_is(card: StampCard, progress: MemberStampCard, skipped: str) -> StampProgress:
    return StampProgress(card, 0, progress.stamps, None, skipped, progress.expires_at)


def _visit_rows(session: Session, visit_key: str) -> list[Stamp]:
    return list(session.scalars(select(Stamp).where(Stamp.visit_key == visit_key).order_by(Stamp.id)))


def _reversal_of(session: Session, stamp_id: int) -> int | None:
    return session.scalar(select(Stamp.id).where(Stamp.reverses_id == stamp_id))


def _replayed(session: Session, member_id: int, rows: list[Stamp]) -> list[StampProgress]:
    """The same bill again: what it did the first time, with the cards as they stand now."""
    results = []
    for row in rows:
        if row.kind != StampKind.STAMP:
            continue
        card = session.get(StampCard, row.stamp_card_id)
        progress = _progress(session, member_id, row.stamp_card_id)
        voucher = session.get(Voucher, row.voucher_id) if row.voucher_id else None
        assert card is not None
        results.append(StampProgress(card, row.count, progress.stamps, voucher, None, progress.expires_at, row.id))
    return results
