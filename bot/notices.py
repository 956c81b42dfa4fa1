"""Messages about points that reach members other than the one who acted: a referrer told that a friend's
purchase earned them points. Rendered here (one wording for the chat, the counter and the POS API); the caller
queues each for its Zalo user."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.replies import render
from loyalty import format as fmt
from loyalty.referrals import ReferralCredits
from models import Member


def referral_notices(session: Session, credits: ReferralCredits, referee: Member) -> list[tuple[str, str]]:
    """(Zalo user id, text) for the referrer and, for their own first-purchase bonus, the referee.

    The referrer's message does not name the friend: it would outlive the friend's erasure in the referrer's
    chat history (the ledger entry's reason, which does name them, is blanked by erasure)."""
    notices = []
    if credits.referrer is not None:
        referrer = session.get(Member, credits.referrer.member_id)
        if referrer is not None and referrer.zalo_user_id:
            text = render(
                "referral_affiliate" if credits.affiliate else "referral_landed",
                points=fmt.points(credits.referrer.points),
                balance=fmt.points(referrer.points_balance),
            )
            notices.append((referrer.zalo_user_id, text))
    if credits.referee is not None and referee.zalo_user_id:
        text = render(
            "referee_bonus", points=fmt.points(credits.referee.points), balance=fmt.points(referee.points_balance)
        )
        notices.append((referee.zalo_user_id, text))
    return notices
