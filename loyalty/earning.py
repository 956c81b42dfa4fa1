"""Earning points for a bill: the rate (store > channel > default), multipliers, caps, then the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from loyalty import ledger, stamps
from loyalty.errors import DuplicateBill, InvalidAmount
from loyalty.locks import lock_member
from loyalty.program import ProgramRules, Rate, end_of_local_day, start_of_local_day
from loyalty.referrals import ReferralCredits, award_referral
from loyalty.tiers import list_tiers, upgrade_if_qualified
from models import EntryKind, LedgerEntry, Member, Store, Tier, TierEvent

# 2 tỷ đ: beyond this it is a typo, not a bill (and bill amounts are 32-bit columns, 2,147,483,647 at most).
MAX_BILL_AMOUNT = 2_000_000_000


@dataclass(frozen=True)
class EarnQuote:
    points: int
    base_points: int
    tier_pct: int = 100
    promotion_pct: int = 100
    promotion: str | None = None
    limited_by: str | None = None  # min_bill | bill_cap | day_cap

    def details(self) -> dict[str, object]:
        return {
            "base_points": self.base_points,
            "tier_pct": self.tier_pct,
            "promotion_pct": self.promotion_pct,
            "promotion": self.promotion,
            "limited_by": self.limited_by,
        }


@dataclass(frozen=True)
class EarnResult:
    points: int
    balance: int
    entry: LedgerEntry | None
    quote: EarnQuote | None
    tier_event: TierEvent | None = None
    referral: ReferralCredits = ReferralCredits()
    replayed: bool = False
    stamps: tuple[stamps.StampProgress, ...] = ()  # the stamp cards this bill stamped (or said why not)

    @property
    def stamps_added(self) -> int:
        return sum(s.added for s in self.stamps)

    @property
    def referral_entry(self) -> LedgerEntry | None:
        return self.referral.referrer


def quote(
    session: Session,
    member: Member,
    amount: int,
    *,
    rules: ProgramRules,
    tz: ZoneInfo,
    now: datetime,
    store: Store | None = None,
    channel: str | None = None,
    tiers: list[Tier] | None = None,
) -> EarnQuote:
    """How many points `amount` đ earns this member now, and why (`tiers`: the shop's, if already read)."""
    if amount < rules.min_bill_amount:
        return EarnQuote(points=0, base_points=0, limited_by="min_bill")
    base = _rate(rules, store, channel).points_for(amount)
    if tiers is not None:
        tier = next((t for t in tiers if t.id == member.tier_id), None)
    else:
        tier = session.get(Tier, member.tier_id) if member.tier_id else None
    tier_pct = tier.earn_multiplier_pct if tier else 100
    promo_pct, promo_name = rules.promotion_pct(now.astimezone(tz).date())
    points = base * tier_pct * promo_pct // 10_000
    limited_by = None
    if rules.max_points_per_bill is not None and points > rules.max_points_per_bill:
        points, limited_by = rules.max_points_per_bill, "bill_cap"
    if rules.max_points_per_day is not None:
        room = max(rules.max_points_per_day - _earned_today(session, member.id, now, tz), 0)
        if points > room:
            points, limited_by = room, "day_cap"
    return EarnQuote(
        points=points,
        base_points=base,
        tier_pct=tier_pct,
        promotion_pct=promo_pct,
        promotion=promo_name,
        limited_by=limited_by,
    )


def earn(
    session: Session,
    member_id: int,
    amount: int,
    *,
    key: str,
    rules: ProgramRules,
    tz: ZoneInfo,
    now: datetime,
    actor: ledger.Actor = ledger.SYSTEM,
    store_id: int | None = None,
    channel: str | None = None,
    bill_ref: str | None = None,
    new_bill: bool = False,
    items: Mapping[str, int] | None = None,
) -> EarnResult:
    """Credit points for a bill of `amount` đ and stamp its stamp cards, once per `key`; upgrades the tier at
    once if reached. `items`: how many items of each product group the bill holds, for group stamp cards.

    A bill number the store already credited (under another key, not refunded) raises DuplicateBill, unless
    the caller says it is a new bill that happens to carry the same number (`new_bill`).
    """
    if not 0 < amount <= MAX_BILL_AMOUNT:
        raise InvalidAmount(f"bill amount {amount}")
    member = lock_member(session, member_id)
    existing_id, credited_at = session.execute(
        _EARLIER[store_id is not None], {"key": key, "bill_ref": bill_ref, "store_id": store_id}
    ).one()
    existing = session.get(LedgerEntry, existing_id) if existing_id is not None else None  # a replay
    cards = stamps.all_cards(session)  # none (most shops): no other stamp query
    stamped = tuple(stamps.visit_progress(session, member_id, key)) if cards else ()
    if existing is not None or stamped:
        return EarnResult(
            points=existing.points if existing else 0,
            balance=member.points_balance,
            entry=existing,
            quote=None,
            replayed=True,
            stamps=stamped,
        )
    if bill_ref and not new_bill:
        _refuse_credited_bill(session, bill_ref, store_id, credited_at, stamps_too=bool(cards))
    card_stamps = tuple(
        stamps.stamp_bill(
            session,
            member,
            visit_key=key,
            amount=amount,
            now=now,
            items=items,
            store_id=store_id,
            bill_ref=bill_ref,
            actor=actor,
            cards=cards,
        )
    )
    store = session.get(Store, store_id) if store_id else None
    tiers = list_tiers(session)  # read once: the multiplier now, the upgrade check after
    q = quote(session, member, amount, rules=rules, tz=tz, now=now, store=store, channel=channel, tiers=tiers)
    if q.points <= 0:
        return EarnResult(points=0, balance=member.points_balance, entry=None, quote=q, stamps=card_stamps)
    posting = ledger.Posting(
        kind=EntryKind.EARN,
        points=q.points,
        key=key,
        actor=actor,
        source_ref=bill_ref,
        store_id=store_id,
        channel=channel,
        bill_amount=amount,
        qualifying=True,
        reason="tích điểm",
        details=q.details(),
    )
    entry = ledger.credit(session, member, posting, now=now, expires_at=rules.expiry_for(now))
    referral = award_referral(session, member, entry, rules=rules, now=now)
    tier_event = upgrade_if_qualified(
        session, member, window_start=rules.tier_window_start(now), now=now, reason=f"earn:{entry.id}", tiers=tiers
    )
    return EarnResult(
        points=q.points,
        balance=member.points_balance,
        entry=entry,
        quote=q,
        tier_event=tier_event,
        referral=referral,
        stamps=card_stamps,
    )


_REVERSAL = aliased(LedgerEntry, name="reversal")  # made once: built per call it was ~15% of an earn (profiled)


def _credited_bill(store: bool) -> Any:
    """When this bill number earned points not refunded since; built once per shape with bound parameters,
    so an earn does not pay for building and caching the statement (it cost ~1 ms of a 5 ms earn)."""
    refunded = select(_REVERSAL.id).where(_REVERSAL.reverses_id == LedgerEntry.id).exists()
    where_store = LedgerEntry.store_id == bindparam("store_id") if store else LedgerEntry.store_id.is_(None)
    return (
        select(LedgerEntry.created_at)
        .where(
            LedgerEntry.kind == EntryKind.EARN, LedgerEntry.source_ref == bindparam("bill_ref"), where_store, ~refunded
        )
        .limit(1)
    )


_CREDITED_BILL = {True: _credited_bill(True), False: _credited_bill(False)}


def _earlier(store: bool) -> Any:
    """One statement after the member's lock, for what an earn must not repeat: the entry of its key (a replay)
    and when its bill number was credited (a duplicate bill). Both must be read after the lock, or a racing earn's
    commit could be missed; one round trip instead of two (issue 16)."""
    entry = select(LedgerEntry.id).where(LedgerEntry.idempotency_key == bindparam("key")).scalar_subquery()
    return select(entry, _CREDITED_BILL[store].scalar_subquery())


_EARLIER = {True: _earlier(True), False: _earlier(False)}


def check_bill_not_credited(session: Session, bill_ref: str, store_id: int | None, *, stamps_too: bool = True) -> None:
    """Raises DuplicateBill if this store's bill number already earned points or stamps, not refunded
    (`stamps_too=False`: the shop has no stamp card, so no bill was ever stamped)."""
    stmt = _CREDITED_BILL[store_id is not None]
    credited_at = session.scalars(stmt, {"bill_ref": bill_ref, "store_id": store_id}).first()
    _refuse_credited_bill(session, bill_ref, store_id, credited_at, stamps_too=stamps_too)


def _refuse_credited_bill(
    session: Session, bill_ref: str, store_id: int | None, credited_at: datetime | None, *, stamps_too: bool
) -> None:
    """DuplicateBill if the bill's points were credited at `credited_at` (read by the caller), or if it stamped."""
    if credited_at is not None:
        raise DuplicateBill(bill_ref, credited_at)
    stamped_at = stamps.stamped_bill_at(session, bill_ref, store_id) if stamps_too else None
    if stamped_at is not None:
        raise DuplicateBill(bill_ref, stamped_at)


def _rate(rules: ProgramRules, store: Store | None, channel: str | None) -> Rate:
    if store is not None and store.earn_points is not None and store.earn_unit_amount:
        return Rate(store.earn_points, store.earn_unit_amount)
    return rules.rate_for(channel)


def _earned_today(session: Session, member_id: int, now: datetime, tz: ZoneInfo) -> int:
    """Points earned in the shop's calendar day, net of reversed earns."""
    start, end = start_of_local_day(now, tz), end_of_local_day(now, tz)
    stmt = select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
        LedgerEntry.member_id == member_id,
        LedgerEntry.kind == EntryKind.EARN,
        LedgerEntry.created_at >= start,
        LedgerEntry.created_at < end,
    )
    return int(session.scalar(stmt) or 0)
