"""The member row lock every points write takes first (below members and tiers, which both need it)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalty.errors import MemberBlocked, MemberNotFound
from models import Member, MemberStatus, lock_row_reading
from models.config import remember_token, token_column


def lock_member(session: Session, member_id: int, *, allow_blocked: bool = False) -> Member:
    """Lock the member's row for the rest of the transaction: points writes for one member run one at a time."""
    locked = lock_row_reading(session, Member, member_id, token_column())
    if locked is None:
        raise MemberNotFound(str(member_id))
    member, (config_token,) = locked
    remember_token(session, config_token)  # the rules, tiers and stamp cards an earn reads need no statement
    if member.status in (MemberStatus.BLOCKED, MemberStatus.ERASED) and not allow_blocked:
        raise MemberBlocked(str(member_id))  # an erased member earns and spends no more, like a blocked one
    return member
