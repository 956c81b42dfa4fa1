"""What the chat shows of stamp cards: a picture of the card with its stamps filled and a short caption."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.replies import Reply, render
from loyalty import format as fmt
from loyalty.codes import pretty_voucher_code
from loyalty.stamps import StampProgress
from models import Reward, StampCard


def stamped_replies(session: Session, progress: Iterable[StampProgress], tz: ZoneInfo) -> list[Reply]:
    """One picture per card a bill stamped. A card the bill filled is shown full, with the voucher it gave."""
    replies = []
    for p in progress:
        if p.added <= 0:
            continue
        reward = session.get(Reward, p.card.reward_id)
        caption = render(
            "stamped",
            card=p.card.name,
            added=p.added,
            stamps=p.stamps,
            needed=p.card.stamps_needed,
            reward=reward.name if reward else "",
            code=pretty_voucher_code(p.voucher.code) if p.voucher else "",
            until=fmt.day(p.voucher.expires_at, tz) if p.voucher else "",
            lapses=fmt.day(p.expires_at, tz) if p.expires_at and not p.voucher else "",
        )
        shown = p.card.stamps_needed if p.voucher else p.stamps
        replies.append(Reply(text=caption, stamp_card={"stamp_card_id": p.card.id, "stamps": shown}))
    return replies


def card_reply(session: Session, card: StampCard, stamps: int, lapses: datetime | None, tz: ZoneInfo) -> Reply:
    """A member's card as it stands ("tem" in the chat)."""
    reward = session.get(Reward, card.reward_id)
    caption = render(
        "stamp_card",
        card=card.name,
        stamps=stamps,
        needed=card.stamps_needed,
        left=card.stamps_needed - stamps,
        reward=reward.name if reward else "",
        description=card.description,
        lapses=fmt.day(lapses, tz) if lapses else "",
    )
    return Reply(text=caption, stamp_card={"stamp_card_id": card.id, "stamps": stamps})
