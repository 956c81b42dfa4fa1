"""The automations marketers switch on in the program settings. Each is an RQ job the cron module enqueues;
each is safe to run twice (idempotency keys per member and occasion)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import extract, func, or_, select, update
from sqlalchemy.orm import Session

from jobs.context import current_services
from jobs.outbox import deliver_after_commit, queue_messages
from jobs.proactive import proactive_payload, template_enabled
from loyalty import format as fmt
from loyalty import ledger, rewards, tiers, vip
from loyalty.codes import pretty_voucher_code
from loyalty.consent import may_receive_offers
from loyalty.errors import RewardUnavailable
from loyalty.placeholders import member_fields, personalize
from loyalty.program import ProgramRules, load_rules
from models import (
    Member,
    MemberStatus,
    OutboxMessage,
    PointLot,
    Reward,
    Tier,
    TierEvent,
    VipMembership,
    VipPlan,
    ZaloUser,
    utcnow,
)
from zalo.policy import CS_WINDOW
from zalo.tokens import DatabaseTokenStore

log = logging.getLogger(__name__)
TOKEN_REFRESH_MARGIN = timedelta(hours=2)
DELIVERY_CHUNK = 100
T = TypeVar("T")


def queue_proactive(
    session: Session,
    member: Member,
    *,
    key: str,
    text: str,
    promotional: bool,
    purpose: str = "broadcast",
    fields: dict[str, Any] | None = None,
    broadcast_id: int | None = None,
) -> list[int]:
    """One message the shop starts, to a member on Zalo or, through the purpose's template, by phone."""
    if not member.zalo_user_id and not member.phone:
        return []
    item = proactive_payload(text, promotional=promotional, purpose=purpose, fields=fields, phone=member.phone)
    ids = queue_messages(session, key=key, user_id=member.zalo_user_id, messages=[item])
    if broadcast_id is not None:
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(broadcast_id=broadcast_id))
    return ids


def run_daily() -> dict[str, int]:
    """Hourly tick: at the shop's configured hour, birthday offers, expiry reminders and the tier review."""
    context = current_services()
    now = utcnow()
    with context.sessions() as session:
        rules = load_rules(session)
    if now.astimezone(context.settings.tz).hour != rules.automations.daily_hour:
        return {}
    return {
        "birthdays": birthday_offers(now),
        "reminders": remind_expiring(now),
        "tier_reviews": review_tiers(now),
        "lapsed": invite_lapsed(now),
        "vip_reminders": remind_vip_renewals(now),
    }


def birthday_offers(now: datetime | None = None) -> int:
    """A gift voucher (once per member per year) and a greeting, on the birthday or on the 1st of the month."""
    context = current_services()
    now = now or utcnow()
    today = now.astimezone(context.settings.tz).date()
    with context.sessions() as session:
        rules = load_rules(session)
        automations = rules.automations
        if not automations.birthday_enabled or (automations.birthday_on == "month" and today.day != 1):
            return 0
        by_phone = template_enabled(session, "birthday")  # members who never chatted get it by phone
        member_ids = list(session.scalars(_birthday_query(today, automations.birthday_on, by_phone)))
    shop = context.shop_name()
    _in_batches(member_ids, lambda session, member_id: _birthday_for(session, member_id, today, now, rules, shop))
    return len(member_ids)


def _birthday_query(today: date, mode: str, by_phone: bool) -> Any:
    reachable = (
        or_(Member.zalo_user_id.is_not(None), Member.phone.is_not(None))
        if by_phone
        else Member.zalo_user_id.is_not(None)
    )
    stmt = select(Member.id).where(
        Member.status == MemberStatus.ACTIVE,
        may_receive_offers(),  # a birthday offer is marketing: only to members who agreed
        reachable,
        Member.birthday.is_not(None),
        extract("month", Member.birthday) == today.month,
    )
    if mode == "day":
        days = [today.day]
        if today.month == 2 and today.day == 28 and not _is_leap(today.year):
            days.append(29)  # born on 29/02: celebrated on 28/02 in other years
        stmt = stmt.where(extract("day", Member.birthday).in_(days))
    return stmt.order_by(Member.id)


def _birthday_for(
    session: Session, member_id: int, today: date, now: datetime, rules: ProgramRules, shop: str
) -> list[int]:
    key = f"birthday:{today.year}:{member_id}"
    member = session.get(Member, member_id)
    assert member is not None
    automations = rules.automations
    values = member_fields(session, member, shop)
    reward = session.get(Reward, automations.birthday_reward_id) if automations.birthday_reward_id else None
    text = personalize(automations.birthday_text_no_gift, **values)
    if reward is not None:
        voucher, _ = rewards.issue_gift(session, member.id, reward.id, key=key, now=now, source="birthday")
        values |= {
            "qua": reward.name,
            "ma": pretty_voucher_code(voucher.code),
            "han": fmt.day(voucher.expires_at, current_services().settings.tz),
        }
        text = personalize(automations.birthday_text, **values)
    return queue_proactive(session, member, key=key, text=text, promotional=False, purpose="birthday", fields=values)


LAPSE_CATCH_UP = timedelta(days=7)  # a member who lapsed while the job did not run is still invited within a week


def invite_lapsed(now: datetime | None = None) -> int:
    """Members who bought nothing for `lapsed_days` (since their last purchase, or since joining if they never
    bought): one invitation, with a voucher if the owner picked a reward, once per lapse (keyed by the last
    visit: buying again and lapsing again is a new lapse). It is an offer, so only to members who agreed; past
    Zalo's 7-day window it goes only as the shop's "lapsed" ZBS template, otherwise it is not sent at all.
    Members who lapsed long before the automation was switched on are left to a broadcast (segment: inactive)."""
    context = current_services()
    now = now or utcnow()
    with context.sessions() as session:
        rules = load_rules(session)
        automations = rules.automations
        if not automations.lapsed_enabled:
            return 0
        member_ids = list(
            session.scalars(_lapsed_query(now, automations.lapsed_days, template_enabled(session, "lapsed")))
        )
    shop = context.shop_name()
    _in_batches(member_ids, lambda session, member_id: _invite_lapsed(session, member_id, now, rules, shop))
    return len(member_ids)


def _last_visit() -> Any:
    return func.coalesce(Member.last_earned_at, Member.joined_at)


def _lapsed_query(now: datetime, days: int, by_template: bool) -> Any:
    lapsed_at = now - timedelta(days=days)
    stmt = select(Member.id).where(
        Member.status == MemberStatus.ACTIVE,
        may_receive_offers(),
        _last_visit() < lapsed_at,
        _last_visit() >= lapsed_at - LAPSE_CATCH_UP,
    )
    if by_template:  # the template reaches them by Zalo account or by phone
        stmt = stmt.where(or_(Member.zalo_user_id.is_not(None), Member.phone.is_not(None)))
    else:  # only members who wrote to the OA in the last 7 days can get a free-form message
        stmt = stmt.join(ZaloUser, ZaloUser.user_id == Member.zalo_user_id).where(
            ZaloUser.last_interaction_at >= now - CS_WINDOW
        )
    return stmt.order_by(Member.id)


def _invite_lapsed(session: Session, member_id: int, now: datetime, rules: ProgramRules, shop: str) -> list[int]:
    member = session.get(Member, member_id)
    assert member is not None
    last_visit = member.last_earned_at or member.joined_at
    key = f"lapsed:{member_id}:{last_visit.date().isoformat()}"
    automations = rules.automations
    values = member_fields(session, member, shop)
    reward = session.get(Reward, automations.lapsed_reward_id) if automations.lapsed_reward_id else None
    text = personalize(automations.lapsed_text_no_gift, **values)
    if reward is not None and reward.is_active:
        try:
            voucher, _ = rewards.issue_gift(session, member.id, reward.id, key=key, now=now, source="lapsed")
        except RewardUnavailable:  # out of stock: the invitation goes without the gift
            log.warning("lapsed: reward %s is out of stock, inviting member %s without it", reward.id, member_id)
        else:
            values |= {
                "qua": reward.name,
                "ma": pretty_voucher_code(voucher.code),
                "han": fmt.day(voucher.expires_at, current_services().settings.tz),
            }
            text = personalize(automations.lapsed_text, **values)
    return queue_proactive(session, member, key=key, text=text, promotional=True, purpose="lapsed", fields=values)


def remind_vip_renewals(now: datetime | None = None) -> int:
    """`vip_reminder_days` before a paid period ends (and was not renewed), one reminder per period."""
    context = current_services()
    now = now or utcnow()
    with context.sessions() as session:
        rules = load_rules(session)
        due = [m.id for m in vip.ending_soon(session, now, rules.automations.vip_reminder_days)]
    shop, tz = context.shop_name(), context.settings.tz

    def remind(session: Session, membership_id: int) -> list[int]:
        claimed = session.execute(  # of two runs, only the one whose UPDATE matches sends it
            update(VipMembership)
            .where(VipMembership.id == membership_id, VipMembership.reminded_at.is_(None))
            .values(reminded_at=now)
            .returning(VipMembership.id)
        ).scalar()
        membership = session.get(VipMembership, membership_id)
        member = session.get(Member, membership.member_id) if membership else None
        plan = session.get(VipPlan, membership.plan_id) if membership else None
        if claimed is None or membership is None or member is None or plan is None:
            return []
        values = member_fields(session, member, shop) | {"goi": plan.name, "ngay": fmt.day(membership.ends_at, tz)}
        text = personalize(rules.automations.vip_reminder_text, **values)
        key = f"vip-renewal:{membership_id}"
        return queue_proactive(
            session, member, key=key, text=text, promotional=False, purpose="vip_renewal", fields=values
        )

    _in_batches(due, remind)
    return len(due)


def congratulate_tier_ups() -> int:
    """Each upgrade recorded by the ledger becomes one congratulation with the new benefits."""
    context = current_services()
    with context.sessions() as session:
        rules = load_rules(session)
        event_ids = list(
            session.scalars(
                select(TierEvent.id).where(TierEvent.direction == "up", TierEvent.notified_at.is_(None)).limit(500)
            )
        )
    shop = context.shop_name()
    _in_batches(event_ids, lambda session, event_id: _congratulate(session, event_id, rules, shop))
    return len(event_ids)


def _congratulate(session: Session, event_id: int, rules: ProgramRules, shop: str) -> list[int]:
    # Claim the event: of two workers, only the one whose UPDATE matches sends the message.
    claimed = session.execute(
        update(TierEvent)
        .where(TierEvent.id == event_id, TierEvent.notified_at.is_(None))
        .values(notified_at=utcnow())
        .returning(TierEvent.id)
    ).scalar()
    if claimed is None or not rules.automations.tier_up_enabled:
        return []
    event = session.get(TierEvent, event_id)
    member = session.get(Member, event.member_id) if event else None
    tier = session.get(Tier, event.to_tier_id) if event else None
    if member is None or tier is None:
        return []
    values = member_fields(session, member, shop) | {"hang": tier.name, "quyen_loi": tier.benefits or "—"}
    text = personalize(rules.automations.tier_up_text, **values)
    key = f"tier-up:{event_id}"
    return queue_proactive(session, member, key=key, promotional=False, text=text, purpose="tier_up", fields=values)


def expire_points(now: datetime | None = None) -> int:
    """Expire due points (oldest first, a ledger entry per lot) and flip expired vouchers."""
    context = current_services()
    now = now or utcnow()
    with context.sessions() as session:
        if not load_rules(session).automations.expiry_enabled:
            return 0
        lot_ids = ledger.due_lot_ids(session, now, limit=100_000)
    expired = 0
    for lot_id in lot_ids:
        with context.sessions() as session:
            expired += ledger.expire_lot(session, lot_id, now=now) is not None
            session.commit()
    with context.sessions() as session:
        rewards.expire_vouchers(session, now)
        session.commit()
    return expired


def remind_expiring(now: datetime | None = None) -> int:
    """N days ahead, tell members how many points expire and when (once per member and expiry day)."""
    context = current_services()
    now = now or utcnow()
    tz = context.settings.tz
    with context.sessions() as session:
        rules = load_rules(session)
        automations = rules.automations
        if not (automations.expiry_enabled and rules.expiry_months):
            return 0
        rows = session.execute(
            select(PointLot.member_id, PointLot.expires_at, PointLot.remaining).where(
                PointLot.remaining > 0,
                PointLot.expires_at > now,
                PointLot.expires_at <= now + timedelta(days=automations.expiry_reminder_days),
            )
        ).all()
    due: dict[tuple[int, date], int] = {}
    for member_id, expires_at, remaining in rows:
        assert expires_at is not None  # filtered in the query
        day = expires_at.astimezone(tz).date()
        due[(member_id, day)] = due.get((member_id, day), 0) + remaining

    def remind(session: Session, item: tuple[tuple[int, date], int]) -> list[int]:
        (member_id, day), points = item
        member = session.get(Member, member_id)
        if member is None or member.status != MemberStatus.ACTIVE:
            return []
        values = member_fields(session, member, context.shop_name())
        values |= {"so_diem": fmt.points(points), "ngay": day.strftime("%d/%m/%Y")}
        text = personalize(automations.expiry_reminder_text, **values)
        key = f"expiry-reminder:{member_id}:{day.isoformat()}"
        return queue_proactive(session, member, key=key, text=text, promotional=False, purpose="expiry", fields=values)

    _in_batches(sorted(due.items()), remind)
    return len(due)


def review_tiers(now: datetime | None = None) -> int:
    """Every day: tiers held by hand whose end date passed fall back to what the points earn; on the
    configured day of the month, the periodic downgrade check."""
    context = current_services()
    now = now or utcnow()
    with context.sessions() as session:
        rules = load_rules(session)
        released = tiers.release_holds(session, window_start=rules.tier_window_start(now), now=now)
        session.commit()
        if (
            not rules.automations.tier_review_enabled
            or now.astimezone(context.settings.tz).day != rules.automations.tier_review_day
        ):
            return len(released)
        events = tiers.review_tiers(session, window_start=rules.tier_window_start(now), now=now)
        session.commit()
    return len(released) + len(events)


def keep_token_fresh() -> bool:
    """Refresh the OA access token before it expires (single-flight, like a refresh on -216).

    A pair of unknown age (just put in the environment, or from before expiries were kept) is refreshed at
    the first run: its access token may already be days old, and only a refresh tells its expiry. Each
    refresh also renews the 3-month refresh token, so an OA kept this way never lapses while idle."""
    context = current_services()
    tokens = context.zalo.tokens
    if not isinstance(tokens, DatabaseTokenStore):
        return False
    status = tokens.status()
    if status is None:  # no OA connected
        return False
    if status.expires_at is not None and status.expires_at - utcnow() > TOKEN_REFRESH_MARGIN:
        return False
    tokens.refresh(None, context.zalo.exchange_refresh_token)
    return True


def _in_batches(items: Sequence[T], work: Callable[[Session, T], list[int]]) -> None:
    """`work` for each item, DELIVERY_CHUNK items per transaction; each transaction's messages get one
    delivery job when it commits. A failure rolls back its batch only; the retried job redoes it (same keys)."""
    context = current_services()
    for start in range(0, len(items), DELIVERY_CHUNK):
        with context.sessions() as session:
            outbox = [outbox_id for item in items[start : start + DELIVERY_CHUNK] for outbox_id in work(session, item)]
            deliver_after_commit(session, outbox)
            session.commit()


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
