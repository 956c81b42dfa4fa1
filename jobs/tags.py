"""Tiers as OA tags: each member's tier mirrored into a tag of the OA ("Hạng Vàng"), so staff see it in Zalo's
own inbox (OA Manager) next to the conversation. Off unless the owner turns it on (Chương trình).

Zalo's tag calls are v2.0 only (reference §2.4): `POST /v2.0/oa/tag/tagfollower` {"user_id", "tag_name"}
creates the tag if it is missing; `POST /v2.0/oa/tag/rmfollowerfromtag` removes it from the user. They need
the OA-information permission. `members.zalo_tag` records the tag this app last put on the member, so a
renamed tier or a tier change moves the member from the old tag to the new one, and a run after a crash
picks up where the last stopped.
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from jobs.context import current_services
from loyalty.program import load_rules
from models import Member, MemberStatus, Tier, ZaloUser
from zalo.errors import ZaloError, ZaloRateLimited, ZaloUserUnreachable

log = logging.getLogger(__name__)

BATCH = 200  # members per run (every 10 minutes): far below any rate reported for the tag calls
TAG_PREFIX = "Hạng "
MAX_TAG = 64  # members.zalo_tag's length


def tier_tag(tier_name: str | None) -> str | None:
    return f"{TAG_PREFIX}{tier_name}"[:MAX_TAG] if tier_name else None


def sync_tier_tags() -> int:
    """Cron, every 10 minutes: move members whose tier is not the tag we last gave them. Returns how many."""
    context = current_services()
    with context.sessions() as session:
        if not load_rules(session).automations.tier_tags_enabled:
            return 0
        due = _due(session)
    moved = 0
    for member_id, user_id, old, new in due:
        try:
            if old:
                context.zalo.call("POST", "/v2.0/oa/tag/rmfollowerfromtag", json={"user_id": user_id, "tag_name": old})
            if new:
                context.zalo.call("POST", "/v2.0/oa/tag/tagfollower", json={"user_id": user_id, "tag_name": new})
        except ZaloUserUnreachable as exc:  # unfollowed or blocked the OA: nothing to tag
            log.info("tags: member %s not tagged: %s", member_id, exc)
            continue
        except ZaloRateLimited:
            log.warning("tags: rate limited after %s member(s); the next run goes on", moved)
            break
        except ZaloError as exc:  # a missing permission, Zalo down: every next call would fail the same way
            log.error("tags: stopped after %s member(s): %s", moved, exc)
            break
        with context.sessions() as session, session.begin():
            session.execute(update(Member).where(Member.id == member_id).values(zalo_tag=new))
        moved += 1
    return moved


def _due(session: Session) -> list[tuple[int, str, str | None, str | None]]:
    """(member, Zalo user, tag they have, tag they should have) for followers whose two differ."""
    wanted = func.substr(TAG_PREFIX + Tier.name, 1, MAX_TAG)  # tier_tag() in SQL
    differs = or_(
        and_(Member.zalo_tag.is_(None), Tier.name.is_not(None)),
        and_(Member.zalo_tag.is_not(None), Tier.name.is_(None)),
        Member.zalo_tag != wanted,
    )
    rows = session.execute(
        select(Member.id, Member.zalo_user_id, Member.zalo_tag, Tier.name)
        .join(ZaloUser, ZaloUser.user_id == Member.zalo_user_id)
        .outerjoin(Tier, Tier.id == Member.tier_id)
        .where(Member.status == MemberStatus.ACTIVE, ZaloUser.is_follower.is_(True), differs)
        .order_by(Member.id)
        .limit(BATCH)
    ).all()
    return [(m, str(u), old, tier_tag(name)) for m, u, old, name in rows]
