"""Marketing consent: asked in the chat, recorded append-only, obeyed by every marketing path.

Law 91/2025/QH15 (and Decree 356/2025/ND-CP) ask for a consent to marketing use of personal data that is
verifiable, specific and as easy to withdraw as to give. Offers go only to members whose latest record is a
consent; service messages about their own points and vouchers go to every member.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from loyalty.privacy import notice_version
from models import Consent, ConsentState, Member


def record_consent(session: Session, member: Member, *, granted: bool, channel: str, actor: str, now: datetime) -> bool:
    """Append a consent (or withdrawal) and make it the member's current state. False if it changes nothing."""
    state = ConsentState.GRANTED if granted else ConsentState.WITHDRAWN
    if member.marketing_consent == state:
        return False
    session.add(
        Consent(
            member_id=member.id,
            zalo_user_id=member.zalo_user_id,
            purpose="marketing",
            granted=granted,
            notice_version=notice_version(session),  # the notice they were shown
            channel=channel,
            actor=actor,
            created_at=now,
        )
    )
    member.marketing_consent, member.consent_at = state, now
    return True


def may_receive_offers() -> Any:
    """SQL: the member agreed to offers (their latest record is a consent)."""
    return Member.marketing_consent == ConsentState.GRANTED
