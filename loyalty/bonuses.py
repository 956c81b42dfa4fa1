"""Engagement points the owner may switch on (0 = off, the default): a welcome bonus for joining, and a
bonus for completing the profile with a birthday. Each is given once per member ever, whatever happens
later (a birthday changed or cleared, a retried event): its idempotency key is the member's id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from loyalty import ledger
from loyalty.program import ProgramRules
from models import EntryKind, Member


def grant_welcome(session: Session, member: Member, rules: ProgramRules, now: datetime) -> int:
    """Points given now for joining (0 if off or given before)."""
    return _grant(session, member, rules.welcome_bonus_points, f"welcome:{member.id}", "thưởng chào mừng", rules, now)


def grant_profile(session: Session, member: Member, rules: ProgramRules, now: datetime) -> int:
    """Points given now for a profile with a birthday (0 if off, no birthday yet, or given before)."""
    if member.birthday is None:
        return 0
    reason = "thưởng hoàn thiện hồ sơ"
    return _grant(session, member, rules.profile_bonus_points, f"profile-bonus:{member.id}", reason, rules, now)


def _grant(
    session: Session, member: Member, points: int, key: str, reason: str, rules: ProgramRules, now: datetime
) -> int:
    if points <= 0:
        return 0
    posting = ledger.Posting(kind=EntryKind.BONUS, points=points, key=key, reason=reason)
    _entry, replayed = ledger.post_credit(session, member.id, posting, now=now, expires_at=rules.expiry_for(now))
    return 0 if replayed else points
