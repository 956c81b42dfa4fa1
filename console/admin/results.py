"""Results an owner can act on: is the program working? Aggregated queries only, by period and store.

- Visits and revenue: members' bills (earns, refunds left out) next to every recorded bill (walk-in bills from
  the counter and the POS API), so the members' share of revenue and their bill size against everyone's.
- Repeat visits: of the members who bought in the period, how many came back, and their time between visits.
- Points: issued, spent (vouchers, bills, donations), expired, the redemption rate, and the liability (points
  held × point value) at the end of each of the last 12 months.
- Members: new, active, lapsed, never bought; new members per month.
- Messages: each broadcast and automation, its recipients, reached, members who bought within 7 days, vouchers
  used, next to similar members who did not get it (bought in the 90 days before, like the recipients).
- Cohorts: of the members who joined each month, the share who bought in each later month.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Float, Interval

from console.auth import login_required
from loyalty.program import load_rules
from models import (
    Broadcast,
    BroadcastResult,
    EntryKind,
    LedgerEntry,
    Member,
    OutboxMessage,
    OutboxStatus,
    Role,
    Store,
    Voucher,
    VoucherStatus,
    WalkInBill,
    insert_ignore,
    utcnow,
)
from tichdiem.extensions import get_session, get_settings, services

bp = Blueprint("results", __name__, url_prefix="/admin/results")

PERIODS = {"30": 30, "90": 90, "365": 365}
RESPONSE_WINDOW = timedelta(days=7)  # "bought within 7 days" of a message
LOOKBACK = timedelta(days=90)  # similar members: bought in the 90 days before the message
MONTHS_SHOWN = 12
BROADCASTS_SHOWN = 10
SPENDING = (EntryKind.REDEEM, EntryKind.PAY, EntryKind.DONATE)
CACHE_SECONDS = 300
AUTOMATIONS = {  # outbox key prefix -> what the owner calls it
    "birthday": "Chúc mừng sinh nhật",
    "lapsed": "Mời khách lâu chưa quay lại",
    "tier-up": "Chúc mừng lên hạng",
    "expiry-reminder": "Nhắc điểm sắp hết hạn",
    "vip-renewal": "Nhắc gia hạn VIP",
}
_REVERSAL = aliased(LedgerEntry, name="refund")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    days: int
    store_id: int | None = None


@dataclass(frozen=True)
class Visits:
    member_bills: int
    member_revenue: int
    members_buying: int
    returning: int  # members with 2 bills or more in the period
    days_between: float | None  # their average time between visits
    walk_in_bills: int
    walk_in_revenue: int

    @property
    def all_revenue(self) -> int:
        return self.member_revenue + self.walk_in_revenue

    @property
    def member_share_pct(self) -> float | None:
        return 100 * self.member_revenue / self.all_revenue if self.all_revenue else None

    @property
    def repeat_pct(self) -> float | None:
        return 100 * self.returning / self.members_buying if self.members_buying else None

    @property
    def member_average(self) -> int | None:
        return self.member_revenue // self.member_bills if self.member_bills else None

    @property
    def walk_in_average(self) -> int | None:
        return self.walk_in_revenue // self.walk_in_bills if self.walk_in_bills else None


@dataclass(frozen=True)
class Points:
    issued: int
    redeemed: int  # for vouchers
    paid: int  # off bills
    donated: int
    expired: int
    liability: list[tuple[str, int]]  # (mm/yyyy, đ held at the month's end)

    @property
    def spent(self) -> int:
        return self.redeemed + self.paid + self.donated

    @property
    def redemption_pct(self) -> float | None:
        return 100 * self.spent / self.issued if self.issued else None


@dataclass(frozen=True)
class MemberCounts:
    total: int
    new: int
    active: int
    lapsed: int
    never_bought: int
    new_per_month: list[tuple[str, int]]


@dataclass(frozen=True)
class MessageResult:
    name: str
    sent_on: datetime | None
    recipients: int
    reached: int
    bought: int  # recipients who bought within 7 days
    vouchers_used: int
    points_spent: int = 0  # by recipients within 7 days of their message (vouchers, bills, donations)
    compared: tuple[int, int] | None = None  # (recipients recently active, of whom bought)
    control: tuple[int, int] | None = None  # (similar members not sent, of whom bought)

    @property
    def bought_pct(self) -> float | None:
        return 100 * self.bought / self.recipients if self.recipients else None


@dataclass(frozen=True)
class Cohort:
    month: str
    members: int
    retained: list[int] = field(default_factory=list)  # buyers in month +0, +1, ...


@dataclass(frozen=True)
class Results:
    period: Period
    visits: Visits
    points: Points
    members: MemberCounts
    messages: list[MessageResult]
    cohorts: list[Cohort]
    point_value: int
    computed_at: datetime


def period_from(args: Any, now: datetime, tz: ZoneInfo) -> Period:
    days = PERIODS.get(str(args.get("days", "90")), 90)
    end = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), time.min, tz)
    store = str(args.get("store", ""))
    return Period(end - timedelta(days=days), end, days, int(store) if store.isdigit() and len(store) < 12 else None)


def results(session: Session, period: Period, now: datetime, tz: ZoneInfo) -> Results:
    rules = load_rules(session)
    seen = visits(session, period)
    return Results(
        period=period,
        visits=seen,
        points=points(session, period, now, tz, rules.point_value_vnd),
        members=member_counts(session, period, now, tz, rules.automations.lapsed_days, seen.members_buying),
        messages=message_results(session, period, now),
        cohorts=cohorts(session, period, now, tz),
        point_value=rules.point_value_vnd,
        computed_at=now,
    )


def _cached(period: Period, compute: Callable[[], Results]) -> Results:
    """The figures of this period and store as computed at most CACHE_SECONDS ago (Redis; the page says when).

    At 100,000 members and 1,000,000 entries a computation reads several hundred thousand ledger rows (about
    0.7 s, bench/console.py); an owner who reloads, or two who look at once, should not pay it each time.
    Without Redis the figures are computed every time."""
    key = f"tichdiem:results:{period.days}:{period.store_id}:{period.end.isoformat()}"
    redis = services().redis
    try:
        kept = redis.get(key)
        if isinstance(kept, bytes):  # pickled by us, as RQ pickles its jobs: Redis is trusted as RQ's store
            return cast(Results, pickle.loads(kept))  # noqa: S301
    except RedisError:
        return compute()
    figures = compute()
    with contextlib.suppress(RedisError):
        redis.set(key, pickle.dumps(figures), ex=CACHE_SECONDS)
    return figures


# --- visits and revenue --------------------------------------------------------------------------------


def _member_bills(period: Period) -> Any:
    """Earns in the period (at the store) that were not refunded: one row per member bill."""
    refunded = select(_REVERSAL.id).where(_REVERSAL.reverses_id == LedgerEntry.id).exists()
    stmt = select(LedgerEntry.member_id, LedgerEntry.created_at, LedgerEntry.bill_amount).where(
        LedgerEntry.kind == EntryKind.EARN,
        LedgerEntry.created_at >= period.start,
        LedgerEntry.created_at < period.end,
        ~refunded,
    )
    if period.store_id is not None:
        stmt = stmt.where(LedgerEntry.store_id == period.store_id)
    return stmt.subquery("bills")


def visits(session: Session, period: Period) -> Visits:
    """One pass over the period's member bills: per member, then over members."""
    bills = _member_bills(period)
    per_member = (
        select(
            func.count().label("n"),
            func.sum(bills.c.bill_amount).label("revenue"),
            _seconds_between(func.max(bills.c.created_at), func.min(bills.c.created_at)).label("span"),
        )
        .group_by(bills.c.member_id)
        .subquery("per_member")
    )
    repeat = per_member.c.n >= 2
    count, revenue, buyers, returning, gap = session.execute(
        select(
            func.coalesce(func.sum(per_member.c.n), 0),
            func.coalesce(func.sum(per_member.c.revenue), 0),
            func.count(),
            func.count().filter(repeat),
            func.avg(case((repeat, per_member.c.span / (per_member.c.n - 1)))),
        )
    ).one()
    walk_ins = select(func.count(), func.coalesce(func.sum(WalkInBill.amount), 0)).where(
        WalkInBill.created_at >= period.start, WalkInBill.created_at < period.end
    )
    if period.store_id is not None:
        walk_ins = walk_ins.where(WalkInBill.store_id == period.store_id)
    walk_count, walk_revenue = session.execute(walk_ins).one()
    return Visits(
        member_bills=int(count),
        member_revenue=int(revenue),
        members_buying=int(buyers),
        returning=int(returning),
        days_between=float(gap) / 86_400 if gap is not None else None,
        walk_in_bills=int(walk_count),
        walk_in_revenue=int(walk_revenue),
    )


# --- points --------------------------------------------------------------------------------------------


def points(session: Session, period: Period, now: datetime, tz: ZoneInfo, point_value: int) -> Points:
    in_period = [LedgerEntry.created_at >= period.start, LedgerEntry.created_at < period.end]
    if period.store_id is not None:
        in_period.append(LedgerEntry.store_id == period.store_id)
    # A reversal counts against what it reverses: a refunded bill's points were not issued, a cancelled
    # voucher's were not spent. Only reversals look their original up (a scalar subquery per reversal row).
    original = aliased(LedgerEntry, name="original")
    reversed_kind = select(original.kind).where(original.id == LedgerEntry.reverses_id).scalar_subquery()
    kind = case((LedgerEntry.kind == EntryKind.REVERSE, reversed_kind), else_=LedgerEntry.kind)
    by_kind: dict[str, int] = dict(
        session.execute(
            select(kind, func.coalesce(func.sum(LedgerEntry.points), 0)).where(*in_period).group_by(kind)
        ).all()
    )
    issued = sum(int(by_kind.get(k, 0)) for k in (EntryKind.EARN, EntryKind.BONUS, EntryKind.REFERRAL_BONUS))
    return Points(
        issued=issued,
        redeemed=-int(by_kind.get(EntryKind.REDEEM, 0)),
        paid=-int(by_kind.get(EntryKind.PAY, 0)),
        donated=-int(by_kind.get(EntryKind.DONATE, 0)),
        expired=-int(by_kind.get(EntryKind.EXPIRE, 0)),
        liability=_liability(session, now, tz, point_value),
    )


def _liability(session: Session, now: datetime, tz: ZoneInfo, point_value: int) -> list[tuple[str, int]]:
    """Points held at the end of each of the last 12 months (all stores: points are the member's), in đ: what
    members hold now (the balances the ledger keeps) less what moved after each month's end."""
    months = _last_months(now, tz)
    held_now = int(session.scalar(select(func.coalesce(func.sum(Member.points_balance), 0))) or 0)
    bucket = _bucket(LedgerEntry.created_at, months)
    moves: dict[str, int] = dict(
        session.execute(
            select(bucket, func.sum(LedgerEntry.points)).where(LedgerEntry.created_at >= months[0][1]).group_by(bucket)
        ).all()
    )
    series, held = [], held_now
    for label, start in reversed(months):  # the current month's end is now
        series.append((label, held * point_value))
        held -= int(moves.get(start.strftime("%Y-%m"), 0) or 0)
    return list(reversed(series))


# --- members -------------------------------------------------------------------------------------------


def member_counts(
    session: Session, period: Period, now: datetime, tz: ZoneInfo, lapsed_days: int, buying: int
) -> MemberCounts:
    """`buying`: members who bought in the period (from `visits`, which already read the period's bills)."""
    lapsed_before = now - timedelta(days=lapsed_days)
    total, new, lapsed, never = session.execute(
        select(
            func.count(),
            func.count().filter(Member.joined_at >= period.start, Member.joined_at < period.end),
            func.count().filter(Member.last_earned_at < lapsed_before),
            func.count().filter(Member.last_earned_at.is_(None)),
        ).where(Member.status != "erased")
    ).one()
    months = _last_months(now, tz)
    bucket = _bucket(Member.joined_at, months)
    joined: dict[str, int] = dict(
        session.execute(select(bucket, func.count()).where(Member.joined_at >= months[0][1]).group_by(bucket)).all()
    )
    return MemberCounts(
        total=int(total),
        new=int(new),
        active=buying,
        lapsed=int(lapsed),
        never_bought=int(never),
        new_per_month=[(label, int(joined.get(start.strftime("%Y-%m"), 0))) for label, start in months],
    )


# --- messages ------------------------------------------------------------------------------------------


def message_results(session: Session, period: Period, now: datetime) -> list[MessageResult]:
    broadcasts = list(
        session.scalars(
            select(Broadcast)
            .where(Broadcast.started_at >= period.start, Broadcast.started_at < period.end)
            .order_by(Broadcast.started_at.desc())
            .limit(BROADCASTS_SHOWN)
        )
    )
    return [_broadcast_result(session, b, now) for b in broadcasts] + _automation_results(session, period)


def _broadcast_result(session: Session, broadcast: Broadcast, now: datetime) -> MessageResult:
    """Read from `broadcast_results` once the 7-day window closed (computed the first time it is asked for,
    stored in the caller's transaction); computed afresh while it is open."""
    used = session.scalar(
        select(func.count())
        .select_from(Voucher)
        .where(Voucher.idempotency_key.like(f"bc:{broadcast.id}:gift:%"), Voucher.status == VoucherStatus.USED)
    )
    kept = session.scalar(select(BroadcastResult).where(BroadcastResult.broadcast_id == broadcast.id))
    figures = kept.figures if kept is not None else _broadcast_figures(session, broadcast)
    closed = broadcast.started_at is not None and broadcast.started_at + RESPONSE_WINDOW <= now
    if kept is None and closed:
        insert_ignore(
            session,
            BroadcastResult,
            {"broadcast_id": broadcast.id, "figures": figures, "computed_at": now},
            ["broadcast_id"],
        )
    compared, control = figures.get("compared"), figures.get("control")
    return MessageResult(
        broadcast.name,
        broadcast.started_at,
        int(figures["recipients"]),
        int(figures["reached"]),
        int(figures["bought"]),
        int(used or 0),
        points_spent=int(figures.get("points_spent", 0)),
        compared=(int(compared[0]), int(compared[1])) if compared else None,
        control=(int(control[0]), int(control[1])) if control else None,
    )


def _broadcast_figures(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    rows = OutboxMessage.broadcast_id == broadcast.id
    recipients, reached, buyers, spent = session.execute(_reach(session, rows)).one()
    figures: dict[str, Any] = {
        "recipients": int(recipients),
        "reached": int(reached),
        "bought": int(buyers),
        "points_spent": int(spent),
    }
    if broadcast.started_at is not None and recipients:
        figures |= _compared(session, rows, broadcast.started_at)
    return figures


def _compared(session: Session, rows: ColumnElement[bool], sent: datetime) -> dict[str, Any]:
    """The 7-day purchase rate of recipients against members who did not get it, both among the members who
    bought in the 90 days before (so like is compared with like). Sets of member ids, hashed once each."""
    recent = _buyers_between(sent - LOOKBACK, sent).subquery("recent")
    later = _buyers_between(sent, sent + RESPONSE_WINDOW)
    recipients = select(Member.id).join(OutboxMessage, OutboxMessage.zalo_user_id == Member.zalo_user_id).where(rows)
    got = recent.c.member_id.in_(recipients)
    came_back = recent.c.member_id.in_(later)
    counts = session.execute(
        select(
            func.count().filter(got),
            func.count().filter(got, came_back),
            func.count().filter(~got),
            func.count().filter(~got, came_back),
        ).select_from(recent)
    ).one()
    got_n, got_bought, others, others_bought = (int(n) for n in counts)
    if not got_n or not others:  # everyone got it, or nobody comparable: nothing to compare with
        return {}
    return {"compared": [got_n, got_bought], "control": [others, others_bought]}


def _automation_results(session: Session, period: Period) -> list[MessageResult]:
    """Each automation's messages in the period, told apart by their key's prefix, in one pass."""
    prefix = case(*((OutboxMessage.key.like(f"{p}:%"), literal(p)) for p in AUTOMATIONS), else_=literal(""))
    rows = and_(
        OutboxMessage.broadcast_id.is_(None),
        OutboxMessage.created_at >= period.start,
        OutboxMessage.created_at < period.end,
    )
    stmt = _reach(session, rows).add_columns(prefix.label("prefix")).group_by(prefix)
    found = {row.prefix: row for row in session.execute(stmt)}
    shown = []
    for key, name in AUTOMATIONS.items():
        row = found.get(key)
        if row is None or not row[0]:
            continue
        used = session.scalar(
            select(func.count())
            .select_from(Voucher)
            .where(Voucher.idempotency_key.like(f"{key}:%"), Voucher.status == VoucherStatus.USED)
        )
        shown.append(MessageResult(name, None, int(row[0]), int(row[1]), int(row[2]), int(used or 0), int(row[3])))
    return shown


def _reach(session: Session, rows: ColumnElement[bool]) -> Any:
    """Recipients (members with a Zalo account), reached, who bought within 7 days of their own message, and the
    points they spent in those 7 days."""
    after = [
        LedgerEntry.member_id == Member.id,
        LedgerEntry.created_at >= OutboxMessage.created_at,
        LedgerEntry.created_at < _plus(session, OutboxMessage.created_at, RESPONSE_WINDOW),
    ]
    bought = select(LedgerEntry.id).where(LedgerEntry.kind == EntryKind.EARN, *after).exists()
    spent = (
        select(func.coalesce(-func.sum(LedgerEntry.points), 0))
        .where(LedgerEntry.kind.in_(SPENDING), *after)
        .scalar_subquery()
    )
    return (
        select(
            func.count(distinct(Member.id)),
            func.count(distinct(case((OutboxMessage.status == OutboxStatus.SENT, Member.id)))),
            func.count(distinct(case((bought, Member.id)))),
            func.coalesce(func.sum(spent), 0),
        )
        .select_from(OutboxMessage)
        .join(Member, Member.zalo_user_id == OutboxMessage.zalo_user_id)
        .where(rows)
    )


def _buyers_between(start: datetime, end: datetime) -> Any:
    return (
        select(LedgerEntry.member_id)
        .where(LedgerEntry.kind == EntryKind.EARN, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
        .group_by(LedgerEntry.member_id)
    )


# --- cohorts -------------------------------------------------------------------------------------------


def cohorts(session: Session, period: Period, now: datetime, tz: ZoneInfo) -> list[Cohort]:
    """Members who joined in each of the last 12 months, and how many of them bought in each later month."""
    months = _last_months(now, tz)
    first = months[0][1]
    joined = _bucket(Member.joined_at, months)
    sizes: dict[str, int] = dict(
        session.execute(select(joined, func.count()).where(Member.joined_at >= first).group_by(joined)).all()
    )
    bought = _bucket(LedgerEntry.created_at, months)
    activity = session.execute(
        select(joined, bought, func.count(distinct(Member.id)))
        .join(LedgerEntry, LedgerEntry.member_id == Member.id)
        .where(Member.joined_at >= first, LedgerEntry.kind == EntryKind.EARN, LedgerEntry.created_at >= first)
        .group_by(joined, bought)
    ).all()
    by_cohort: dict[str, dict[str, int]] = {}
    for cohort, month, n in activity:
        by_cohort.setdefault(cohort, {})[month] = int(n)
    keys = [start.strftime("%Y-%m") for _, start in months]
    rows = []
    for index, (label, start) in enumerate(months):
        key = start.strftime("%Y-%m")
        seen = by_cohort.get(key, {})
        rows.append(Cohort(label, int(sizes.get(key, 0)), [seen.get(k, 0) for k in keys[index:]]))
    return rows


# --- portable SQL pieces -------------------------------------------------------------------------------


def _last_months(now: datetime, tz: ZoneInfo) -> list[tuple[str, datetime]]:
    """(mm/yyyy, the month's first instant in the shop's timezone) for the last 12 months, oldest first."""
    local = now.astimezone(tz).date().replace(day=1)
    months = []
    for back in range(MONTHS_SHOWN - 1, -1, -1):
        year, month = divmod(local.year * 12 + local.month - 1 - back, 12)
        first = date(year, month + 1, 1)
        months.append((first.strftime("%m/%Y"), datetime.combine(first, time.min, tz)))
    return months


def _bucket(column: Any, months: list[tuple[str, datetime]]) -> Any:
    """'YYYY-MM' of the shop-local month (of `months`) a timestamp falls in, NULL before the first. Comparisons
    with the months' first instants, worked out in Python: no per-row time-zone conversion, the same SQL on
    both databases, and each comparison can use the column's index order."""
    whens = [(column >= start, literal(start.strftime("%Y-%m"))) for _, start in reversed(months)]
    return case(*whens, else_=literal(None))


def _seconds_between(later: Any, earlier: Any) -> Any:
    """Seconds from `earlier` to `later`, for either database (decided when the statement compiles)."""
    return _SecondsBetween(later, earlier)


def _plus(session: Session, column: Any, delta: timedelta) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return column + literal(delta, Interval())
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{int(delta.total_seconds())} seconds")


class _SecondsBetween(FunctionElement[float]):
    type = Float()
    inherit_cache = True


@compiles(_SecondsBetween, "postgresql")
def _seconds_pg(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"


@compiles(_SecondsBetween)
def _seconds_sqlite(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})) * 86400.0)"


@bp.get("/")
@login_required(Role.MARKETER)
def index() -> str:
    db, tz, now = get_session(), get_settings().tz, utcnow()
    period = period_from(request.args, now, tz)
    figures = _cached(period, lambda: results(db, period, now, tz))
    db.commit()  # results of broadcasts whose window closed are kept (broadcast_results)
    return render_template(
        "console/results.html",
        r=figures,
        stores=list(db.scalars(select(Store).order_by(Store.name))),
        periods=PERIODS,
        timedelta=timedelta,
    )
