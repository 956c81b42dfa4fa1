"""Segments: which members a broadcast reaches. One dataclass, stored as JSON on the broadcast."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, extract, func, or_, select
from sqlalchemy.orm import Session

from loyalty.consent import may_receive_offers
from loyalty.errors import InvalidSettings
from models import Member, MemberGroup, MemberStatus, ZaloUser


@dataclass(frozen=True)
class Segment:
    """Every field narrows the audience; an empty Segment is all members reachable on Zalo.

    `followers` is the other audience: everyone who follows the OA, members or not (a launch campaign that
    invites followers to join). The member filters do not apply to it."""

    tier_ids: tuple[int, ...] = ()
    birthday_month: int | None = None
    joined_from: date | None = None
    joined_to: date | None = None
    inactive_days: int | None = None  # no purchase and no message for at least this many days
    points_min: int | None = None
    points_max: int | None = None
    member_ids: tuple[int, ...] = field(default=())  # an explicit list (tests, "send to me first")
    group: str | None = None  # members of this group (loyalty.groups)
    followers: bool = False

    @property
    def has_member_filters(self) -> bool:
        return any(v not in (None, (), False) for k, v in asdict(self).items() if k != "followers")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("joined_from", "joined_to"):
            data[key] = data[key].isoformat() if data[key] else None
        data["tier_ids"], data["member_ids"] = list(self.tier_ids), list(self.member_ids)
        return {k: v for k, v in data.items() if v not in (None, [], False)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        try:
            segment = cls(
                tier_ids=tuple(int(t) for t in data.get("tier_ids") or ()),
                birthday_month=int(data["birthday_month"]) if data.get("birthday_month") else None,
                joined_from=date.fromisoformat(data["joined_from"]) if data.get("joined_from") else None,
                joined_to=date.fromisoformat(data["joined_to"]) if data.get("joined_to") else None,
                inactive_days=int(data["inactive_days"]) if data.get("inactive_days") else None,
                points_min=int(data["points_min"]) if data.get("points_min") is not None else None,
                points_max=int(data["points_max"]) if data.get("points_max") is not None else None,
                member_ids=tuple(int(m) for m in data.get("member_ids") or ()),
                group=str(data["group"])[:60] if data.get("group") else None,
                followers=data.get("followers") is True,
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidSettings(f"unreadable segment: {exc}") from exc
        if segment.birthday_month is not None and not 1 <= segment.birthday_month <= 12:
            raise InvalidSettings("birthday month must be 1-12")
        if segment.followers and segment.has_member_filters:
            raise InvalidSettings("the follower audience takes no member filters")
        return segment


def audience_query(segment: Segment, now: datetime, *, consented: bool = True) -> Select[Any]:
    """Member ids in the segment who can be messaged on Zalo (linked, following, not blocked) and agreed to
    offers (`consented=False`: whether they agreed or not, to count who was left out)."""
    stmt = (
        select(Member.id)
        .join(ZaloUser, ZaloUser.user_id == Member.zalo_user_id)
        .where(Member.status == MemberStatus.ACTIVE, ZaloUser.is_follower.is_(True))
    )
    if consented:
        stmt = stmt.where(may_receive_offers())
    if segment.member_ids:
        stmt = stmt.where(Member.id.in_(segment.member_ids))
    if segment.tier_ids:
        stmt = stmt.where(Member.tier_id.in_(segment.tier_ids))
    if segment.group is not None:
        in_group = select(MemberGroup.id).where(MemberGroup.member_id == Member.id, MemberGroup.name == segment.group)
        stmt = stmt.where(in_group.exists())
    if segment.birthday_month is not None:
        stmt = stmt.where(extract("month", Member.birthday) == segment.birthday_month)
    if segment.joined_from is not None:
        stmt = stmt.where(Member.joined_at >= datetime.combine(segment.joined_from, datetime.min.time(), now.tzinfo))
    if segment.joined_to is not None:
        end = datetime.combine(segment.joined_to + timedelta(days=1), datetime.min.time(), now.tzinfo)
        stmt = stmt.where(Member.joined_at < end)
    if segment.points_min is not None:
        stmt = stmt.where(Member.points_balance >= segment.points_min)
    if segment.points_max is not None:
        stmt = stmt.where(Member.points_balance <= segment.points_max)
    if segment.inactive_days is not None:
        stmt = stmt.where(~active_since(now - timedelta(days=segment.inactive_days)))
    return stmt.order_by(Member.id)


def active_since(since: datetime) -> Any:
    """Earned points or chatted since `since`: never NULL, so its negation means inactive.

    Reads `members.last_earned_at` (kept by each earn) and ZaloUser joined to the member, not an EXISTS
    over the ledger per member: at 100,000 members PostgreSQL costs that so high it JIT-compiles the query.
    """
    earned = and_(Member.last_earned_at.is_not(None), Member.last_earned_at >= since)
    chatted = and_(ZaloUser.last_interaction_at.is_not(None), ZaloUser.last_interaction_at >= since)
    return or_(earned, chatted)


def follower_query(*, consented: bool = True) -> Select[Any]:
    """Zalo user ids of everyone following the OA, members or not, except members the shop blocked and (with
    `consented`) members who did not agree to offers. Followers who are not members are invited: following
    the OA is their own choice to hear from it, and we hold nothing else of theirs."""
    left_out = Member.status != MemberStatus.ACTIVE
    if consented:
        left_out = or_(left_out, ~may_receive_offers())
    excluded = select(Member.id).where(Member.zalo_user_id == ZaloUser.user_id, left_out).exists()
    return select(ZaloUser.user_id).where(ZaloUser.is_follower.is_(True), ~excluded).order_by(ZaloUser.id)


def audience_size(session: Session, segment: Segment, now: datetime, *, consented: bool = True) -> int:
    if segment.followers:
        query = follower_query(consented=consented)
    else:
        query = audience_query(segment, now, consented=consented)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def left_out_without_consent(session: Session, segment: Segment, now: datetime, consented: int) -> int:
    """Recipients the segment would have had if everyone had agreed to offers; `consented` is the audience the
    caller already counted (or listed) with consent."""
    return audience_size(session, segment, now, consented=False) - consented
