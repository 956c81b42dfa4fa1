"""Members: creation with a unique referral code, look-ups, and the row lock every points write takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.codes import REFERRAL_CODE_LENGTH, normalize_code, random_code
from loyalty.errors import MemberBlocked, PhoneNeedsProof, PhoneTaken
from loyalty.locks import lock_member
from loyalty.tiers import lowest_tier
from models import Member, MemberStatus

CODE_ATTEMPTS = 8


def create_member(
    session: Session,
    *,
    now: datetime,
    name: str = "",
    phone: str | None = None,
    birthday: date | None = None,
    zalo_user_id: str | None = None,
    source: str = "zalo",
) -> Member:
    """Add a member in the lowest tier with a fresh referral code (retried on the rare collision)."""
    tier = lowest_tier(session)
    for _ in range(CODE_ATTEMPTS):
        member = Member(
            code=random_code(REFERRAL_CODE_LENGTH),
            name=name,
            phone=phone,
            birthday=birthday,
            zalo_user_id=zalo_user_id,
            source=source,
            joined_at=now,
            tier_id=tier.id if tier else None,
            tier_since=now if tier else None,
        )
        try:
            with session.begin_nested():
                session.add(member)
                session.flush()
            return member
        except IntegrityError:
            if _code_taken(session, member.code):
                continue
            raise
    raise RuntimeError("could not find a free referral code")


@dataclass(frozen=True)
class NewMember:
    name: str
    phone: str | None
    birthday: date | None


def create_members(session: Session, people: list[NewMember], *, now: datetime, source: str) -> None:
    """Add many members at once (an imported list): one multi-row INSERT instead of a savepoint and a flush
    each. Codes are drawn for all of them and any that are taken drawn again first; if the INSERT still
    collides (a chat registration took a code or a phone meanwhile), the rows go in one by one as
    create_member does, which says which row it was."""
    if not people:
        return
    tier = lowest_tier(session)
    codes = _free_codes(session, len(people))
    rows = [
        {
            "code": code,
            "name": person.name,
            "phone": person.phone,
            "birthday": person.birthday,
            "source": source,
            "joined_at": now,
            "tier_id": tier.id if tier else None,
            "tier_since": now if tier else None,
        }
        for person, code in zip(people, codes, strict=True)
    ]
    try:
        with session.begin_nested():
            session.execute(insert(Member), rows)
    except IntegrityError:
        for person in people:
            create_member(
                session, now=now, name=person.name, phone=person.phone, birthday=person.birthday, source=source
            )


def _free_codes(session: Session, count: int) -> list[str]:
    """`count` distinct referral codes no member has, in as few look-ups as collisions need (nearly always one)."""
    codes: set[str] = set()
    for _ in range(CODE_ATTEMPTS):
        drawn = {random_code(REFERRAL_CODE_LENGTH) for _ in range(count - len(codes))} - codes
        taken = set(session.scalars(select(Member.code).where(Member.code.in_(drawn)))) if drawn else set()
        codes |= drawn - taken
        if len(codes) == count:
            return list(codes)
    raise RuntimeError("could not find free referral codes")


def find_by_phone(session: Session, phone: str) -> Member | None:
    return session.scalar(select(Member).where(Member.phone == phone))


def find_by_zalo_user(session: Session, zalo_user_id: str) -> Member | None:
    return session.scalar(select(Member).where(Member.zalo_user_id == zalo_user_id))


def find_by_code(session: Session, code: str) -> Member | None:
    return session.scalar(select(Member).where(Member.code == normalize_code(code)))


def set_blocked(session: Session, member_id: int, blocked: bool) -> Member:
    member = lock_member(session, member_id, allow_blocked=True)
    if member.status == MemberStatus.ERASED:
        raise MemberBlocked(str(member_id))  # erased at the customer's request: never active again
    member.status = MemberStatus.BLOCKED if blocked else MemberStatus.ACTIVE
    return member


def _code_taken(session: Session, code: str) -> bool:
    return session.scalar(select(Member.id).where(Member.code == code)) is not None


@dataclass(frozen=True)
class Registration:
    member: Member
    outcome: str  # created | updated


def register_zalo_user(
    session: Session,
    *,
    zalo_user_id: str,
    now: datetime,
    name: str = "",
    phone: str | None = None,
    birthday: date | None = None,
) -> Registration:
    """Create or update the member of a Zalo user.

    Empty values never overwrite saved ones. Raises PhoneTaken if the phone is another Zalo user's, and
    PhoneNeedsProof if it is a member's without a Zalo account (imported, made at the counter): typing a
    phone proves nothing, so linking that member waits for the counter (loyalty.linking).
    """
    member = find_by_zalo_user(session, zalo_user_id)
    owner = find_by_phone(session, phone) if phone else None
    if owner is not None and owner.zalo_user_id not in (None, zalo_user_id):
        raise PhoneTaken(phone or "")
    if member is None and owner is not None:
        raise PhoneNeedsProof(owner.id)
    if member is None:
        member = create_member(
            session, now=now, name=name, phone=phone, birthday=birthday, zalo_user_id=zalo_user_id, source="zalo"
        )
        return Registration(member, "created")
    if owner is not None and owner.id != member.id:
        raise PhoneTaken(phone or "")
    if name:
        member.name = name
    if phone:
        member.phone = phone
    if birthday:
        member.birthday = birthday
    session.flush()
    return Registration(member, "updated")
