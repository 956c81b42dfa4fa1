"""The ledger: the only writer of points.

Every operation: lock the member row, look up its idempotency key (a replay returns the first
result and writes nothing), validate, then append one entry and move points between lots. Credits
open a lot (with its expiry); debits draw from lots soonest-expiring first and record each draw,
so a reversal can put back exactly what was taken. The member's cached balance is updated in the
same transaction. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from loyalty.errors import AlreadyReversed, InsufficientPoints, InvalidAmount, NotReversible
from loyalty.locks import lock_member
from models import ActorType, EntryKind, LedgerEntry, LotDraw, Member, PointLot, attach_loaded

CREDIT_KINDS = frozenset({EntryKind.EARN, EntryKind.REFERRAL_BONUS, EntryKind.ADJUST, EntryKind.BONUS})
REVERSIBLE_KINDS = frozenset({EntryKind.EARN, EntryKind.REDEEM, EntryKind.REFERRAL_BONUS, EntryKind.PAY})


@dataclass(frozen=True)
class Actor:
    type: str = ActorType.SYSTEM
    id: str | None = None


SYSTEM = Actor()


@dataclass(frozen=True)
class Posting:
    """What to write. `points` is positive; the kind decides the sign."""

    kind: EntryKind
    points: int
    key: str
    reason: str = ""
    actor: Actor = SYSTEM
    source_ref: str | None = None
    store_id: int | None = None
    channel: str | None = None
    bill_amount: int | None = None
    qualifying: bool = False
    details: dict[str, Any] | None = None


_BY_KEY = select(LedgerEntry).where(LedgerEntry.idempotency_key == bindparam("key"))  # built once: every write asks


def find_entry(session: Session, key: str) -> LedgerEntry | None:
    return session.scalar(_BY_KEY, {"key": key})


def credit(
    session: Session, member: Member, posting: Posting, *, now: datetime, expires_at: datetime | None
) -> LedgerEntry:
    """Add points as a new lot. The member must be locked and the key checked by the caller.

    The entry, the member's balance and the lot are written with Core, in one statement on PostgreSQL (three on
    SQLite), not by an ORM flush: a credit is the hot write of every bill (issue 16: the flush was a third of an
    earn's time). The member's new values are then the session's committed state, so the ORM does not write them
    again; the entry comes back as a clean ORM object."""
    if posting.points <= 0:
        raise InvalidAmount("a credit needs points > 0")
    earn = posting.kind == EntryKind.EARN  # what the customer earned, not a bonus: lifetime and last earn move
    balance = member.points_balance + posting.points
    lifetime = member.points_lifetime + (posting.points if earn else 0)
    last_earned_at = now if earn else member.last_earned_at
    values = _entry_values(
        member, posting, posting.points, balance, now, qualifying_at=now if posting.qualifying else None
    )
    writes = {
        **{f"entry_{k}": v for k, v in values.items()},
        "member_key": member.id,
        "member_balance": balance,
        "member_lifetime": lifetime,
        "member_last_earned_at": last_earned_at,
        "lot_points": posting.points,
        "lot_earned_at": now,
        "lot_expires_at": expires_at,
    }
    entry_id = _write_credit(session, writes)
    for name, value in (("points_balance", balance), ("points_lifetime", lifetime), ("last_earned_at", last_earned_at)):
        set_committed_value(member, name, value)
    return attach_loaded(session, LedgerEntry, {**values, "id": entry_id})


def debit(
    session: Session, member: Member, posting: Posting, *, now: datetime, lots: Sequence[PointLot] | None = None
) -> LedgerEntry:
    """Take points from the member's lots (given ones first, then soonest-expiring). Never below zero."""
    if posting.points <= 0:
        raise InvalidAmount("a debit needs points > 0")
    if member.points_balance < posting.points:
        raise InsufficientPoints(member.points_balance, posting.points)
    entry = _append(session, member, posting, -posting.points, now, qualifying_at=None)
    _draw(session, member, entry, posting.points, preferred=lots or ())
    return entry


def post_credit(
    session: Session, member_id: int, posting: Posting, *, now: datetime, expires_at: datetime | None
) -> tuple[LedgerEntry, bool]:
    """Idempotent credit: returns (entry, replayed)."""
    member = lock_member(session, member_id)
    existing = find_entry(session, posting.key)
    if existing is not None:
        return existing, True
    return credit(session, member, posting, now=now, expires_at=expires_at), False


def post_debit(session: Session, member_id: int, posting: Posting, *, now: datetime) -> tuple[LedgerEntry, bool]:
    """Idempotent debit: returns (entry, replayed)."""
    member = lock_member(session, member_id)
    existing = find_entry(session, posting.key)
    if existing is not None:
        return existing, True
    return debit(session, member, posting, now=now), False


def reverse(
    session: Session, entry_id: int, *, key: str, now: datetime, actor: Actor = SYSTEM, reason: str = ""
) -> tuple[LedgerEntry, bool]:
    """Cancel an earn (refunded bill), a redemption (cancelled voucher) or a referral bonus, exactly once.

    A reversed credit takes back the same points (from its own lot first); a reversed debit puts the
    points back into the lots they came from, with their original expiry.
    """
    original = session.get(LedgerEntry, entry_id)
    if original is None:
        raise NotReversible(f"entry {entry_id} not found")
    member = lock_member(session, original.member_id, allow_blocked=True)
    existing = find_entry(session, key)
    if existing is not None:
        return existing, True
    if original.kind not in REVERSIBLE_KINDS:
        raise NotReversible(f"a {original.kind} entry cannot be reversed")
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == original.id)) is not None:
        raise AlreadyReversed(f"entry {original.id} was already reversed")
    posting = Posting(
        kind=EntryKind.REVERSE,
        points=abs(original.points),
        key=key,
        reason=reason or f"reverse {original.kind}",
        actor=actor,
        source_ref=original.source_ref,
        store_id=original.store_id,
        channel=original.channel,
    )
    if original.points > 0:
        entry = _reverse_credit(session, member, original, posting, now)
    else:
        entry = _reverse_debit(session, member, original, posting, now)
    return entry, False


def expire_lot(session: Session, lot_id: int, *, now: datetime) -> LedgerEntry | None:
    """Expire what is left of one due lot (idempotent per lot). Returns the entry, or None if nothing was due."""
    lot = session.get(PointLot, lot_id)
    if lot is None:
        return None
    member = lock_member(session, lot.member_id, allow_blocked=True)
    session.refresh(lot)
    key = f"expire:lot:{lot.id}"
    if lot.remaining <= 0 or lot.expires_at is None or lot.expires_at > now or find_entry(session, key):
        return None
    posting = Posting(
        kind=EntryKind.EXPIRE,
        points=lot.remaining,
        key=key,
        reason="points expired",
        details={"lot_id": lot.id, "earned_at": lot.earned_at.isoformat()},
    )
    return debit(session, member, posting, now=now, lots=[lot])


def due_lot_ids(session: Session, now: datetime, limit: int = 1000) -> list[int]:
    stmt = (
        select(PointLot.id)
        .where(PointLot.expires_at <= now, PointLot.remaining > 0)
        .order_by(PointLot.expires_at, PointLot.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def history(session: Session, member_id: int, limit: int = 10) -> list[LedgerEntry]:
    stmt = select(LedgerEntry).where(LedgerEntry.member_id == member_id).order_by(LedgerEntry.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def expiring(
    session: Session, member_id: int, *, until: datetime | None = None, tz: ZoneInfo | None = None
) -> list[tuple[date, int]]:
    """(expiry day, points) of the member's unspent points, soonest first, by the shop's calendar day."""
    stmt = (
        select(PointLot.expires_at, PointLot.remaining)
        .where(PointLot.member_id == member_id, PointLot.remaining > 0, PointLot.expires_at.is_not(None))
        .order_by(PointLot.expires_at)
    )
    if until is not None:
        stmt = stmt.where(PointLot.expires_at <= until)
    totals: dict[date, int] = {}
    for expires_at, remaining in session.execute(stmt):
        assert expires_at is not None  # filtered in the query
        day = (expires_at.astimezone(tz) if tz else expires_at).date()
        totals[day] = totals.get(day, 0) + remaining
    return list(totals.items())


def ledger_totals(session: Session, member_id: int) -> tuple[int, int]:
    """(sum of entries, sum of unspent lots): both must equal the cached balance."""
    entries = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(LedgerEntry.member_id == member_id)
    )
    lots = session.scalar(select(func.coalesce(func.sum(PointLot.remaining), 0)).where(PointLot.member_id == member_id))
    return int(entries or 0), int(lots or 0)


# --- internals -----------------------------------------------------------------------------------


def _append(
    session: Session,
    member: Member,
    posting: Posting,
    signed: int,
    now: datetime,
    qualifying_at: datetime | None,
    reverses_id: int | None = None,
) -> LedgerEntry:
    member.points_balance += signed
    values = _entry_values(member, posting, signed, member.points_balance, now, qualifying_at, reverses_id)
    entry = LedgerEntry(**values)
    session.add(entry)
    session.flush()
    return entry


def _entry_values(
    member: Member,
    posting: Posting,
    signed: int,
    balance_after: int,
    now: datetime,
    qualifying_at: datetime | None,
    reverses_id: int | None = None,
) -> dict[str, Any]:
    """Every column of a new entry but its id."""
    return {
        "member_id": member.id,
        "kind": posting.kind,
        "points": signed,
        "balance_after": balance_after,
        "idempotency_key": posting.key,
        "reason": posting.reason,
        "actor_type": posting.actor.type,
        "actor_id": posting.actor.id,
        "source_ref": posting.source_ref,
        "store_id": posting.store_id,
        "channel": posting.channel,
        "bill_amount": posting.bill_amount,
        "qualifying_at": qualifying_at,
        "reverses_id": reverses_id,
        "details": posting.details or {},
        "created_at": now,
    }


def _write_credit(session: Session, writes: dict[str, Any]) -> int:
    """Insert the entry, update the member's balance and open the lot; returns the entry's id."""
    entry, member, lot, combined = _credit_statements()
    if session.get_bind().dialect.name == "postgresql":
        entry_id: int = session.execute(combined, writes).scalar_one()
        return entry_id
    entry_id = session.execute(entry, writes).scalar_one()
    session.execute(member, writes)
    session.execute(lot, {**writes, "lot_entry_id": entry_id})
    return entry_id


@lru_cache(maxsize=1)
def _credit_statements() -> tuple[Any, Any, Any, Any]:
    """The credit's three writes, built once with bound parameters (named apart from the columns: SQLAlchemy keeps
    a column's own name for itself in VALUES and SET)."""
    entries, members, lots = (cast(Table, model.__table__) for model in (LedgerEntry, Member, PointLot))

    def param(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    entry = (
        insert(entries)
        .values({c.name: param(f"entry_{c.name}", c) for c in entries.c if c.name != "id"})
        .returning(entries.c.id)
    )
    member = (
        update(members)
        .where(members.c.id == param("member_key", members.c.id))
        .values(
            points_balance=param("member_balance", members.c.points_balance),
            points_lifetime=param("member_lifetime", members.c.points_lifetime),
            last_earned_at=param("member_last_earned_at", members.c.last_earned_at),
        )
    )

    def lot(entry_cte: Any) -> Any:
        """The lot's INSERT: its entry id read from `entry_cte` (PostgreSQL) or given (`lot_entry_id`)."""
        entry_id = entry_cte.c.id if entry_cte is not None else param("lot_entry_id", lots.c.entry_id)
        row = select(
            param("member_key", lots.c.member_id),
            entry_id,
            param("lot_points", lots.c.points),
            param("lot_points", lots.c.remaining),
            param("lot_earned_at", lots.c.earned_at),
            param("lot_expires_at", lots.c.expires_at),
        )
        if entry_cte is not None:
            row = row.select_from(entry_cte)
        columns = ["member_id", "entry_id", "points", "remaining", "earned_at", "expires_at"]
        return insert(lots).from_select(columns, row).returning(lots.c.entry_id)

    # PostgreSQL runs data-modifying WITHs once each, to completion: the three writes in one round trip.
    combined = lot(entry.cte("entry")).add_cte(member.cte("member_update"))
    return entry, member, lot(None), combined


def _draw(session: Session, member: Member, entry: LedgerEntry, points: int, preferred: Sequence[PointLot]) -> None:
    need = points
    for lot in [*preferred, *_open_lots(session, member.id, exclude={lot.id for lot in preferred})]:
        if need == 0:
            break
        take = min(lot.remaining, need)
        if take <= 0:
            continue
        lot.remaining -= take
        need -= take
        session.add(LotDraw(entry_id=entry.id, lot_id=lot.id, points=take))
    if need:
        # The cached balance said yes but the lots disagree: refuse rather than corrupt the ledger.
        raise InsufficientPoints(points - need, points)
    session.flush()


def _open_lots(session: Session, member_id: int, exclude: set[int]) -> list[PointLot]:
    stmt = (
        select(PointLot)
        .where(PointLot.member_id == member_id, PointLot.remaining > 0)
        .order_by(PointLot.expires_at.is_(None), PointLot.expires_at, PointLot.earned_at, PointLot.id)
    )
    return [lot for lot in session.scalars(stmt) if lot.id not in exclude]


def _reverse_credit(
    session: Session, member: Member, original: LedgerEntry, posting: Posting, now: datetime
) -> LedgerEntry:
    if member.points_balance < posting.points:
        raise InsufficientPoints(member.points_balance, posting.points)
    entry = _append(
        session, member, posting, -posting.points, now, qualifying_at=original.qualifying_at, reverses_id=original.id
    )
    own_lot = session.scalar(select(PointLot).where(PointLot.entry_id == original.id))
    _draw(session, member, entry, posting.points, preferred=[own_lot] if own_lot else [])
    if original.kind == EntryKind.EARN:
        member.points_lifetime -= posting.points
    return entry


def _reverse_debit(
    session: Session, member: Member, original: LedgerEntry, posting: Posting, now: datetime
) -> LedgerEntry:
    entry = _append(session, member, posting, posting.points, now, qualifying_at=None, reverses_id=original.id)
    for draw in session.scalars(select(LotDraw).where(LotDraw.entry_id == original.id)):
        lot = session.get(PointLot, draw.lot_id)
        assert lot is not None
        lot.remaining += draw.points
        session.add(LotDraw(entry_id=entry.id, lot_id=lot.id, points=-draw.points))
    session.flush()
    return entry


def adjust(
    session: Session,
    member_id: int,
    points: int,
    *,
    key: str,
    reason: str,
    actor: Actor,
    now: datetime,
    expires_at: datetime | None,
) -> tuple[LedgerEntry, bool]:
    """A manual correction by staff, with a required reason: + opens a lot, − draws soonest-expiring first."""
    if not reason.strip():
        raise InvalidAmount("an adjustment needs a reason")
    if points == 0:
        raise InvalidAmount("an adjustment needs points other than 0")
    posting = Posting(kind=EntryKind.ADJUST, points=abs(points), key=key, reason=reason.strip(), actor=actor)
    if points > 0:
        return post_credit(session, member_id, posting, now=now, expires_at=expires_at)
    return post_debit(session, member_id, posting, now=now)
