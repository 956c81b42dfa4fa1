"""Linking a chat user to a member the shop already has, only after proof of the phone.

A phone typed or shared in the chat is a claim, not a proof: anyone can type a neighbour's number. So a
chat user who names the phone of a member without a Zalo account gets a pending request and a short code;
a cashier who sees the person (and, if in doubt, calls the number) types that code on the member's page,
and only then are the two linked. When the shop has an approved "link_code" ZBS template, the code goes to
that phone's Zalo instead of the chat, and typing it back in the chat proves the number (no counter visit).
Until then the chat user sees nothing of the member.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from loyalty.errors import LinkRefused
from loyalty.locks import lock_member
from loyalty.members import find_by_zalo_user
from models import LinkRequest, LinkStatus, Member

LINK_TTL = timedelta(days=7)
LINK_CODE_DIGITS = 6
MAX_WRONG_CODES = 5  # then the request is cancelled: the customer asks again in the chat


def request_link(
    session: Session, *, zalo_user_id: str, member_id: int, name: str, birthday: date | None = None, now: datetime
) -> LinkRequest:
    """The chat user's pending request for this member: the open one again, or a new one with a fresh code.

    Asking for another member cancels the user's older requests: one claim at a time per chat.
    """
    current = pending_request(session, zalo_user_id, now)
    if current is not None and current.member_id == member_id:
        return current
    cancel_requests(session, zalo_user_id, now)
    code = "".join(secrets.choice("0123456789") for _ in range(LINK_CODE_DIGITS))
    request = LinkRequest(
        zalo_user_id=zalo_user_id,
        member_id=member_id,
        code=code,
        name=name,
        birthday=birthday,
        created_at=now,
        expires_at=now + LINK_TTL,
    )
    session.add(request)
    session.flush()
    return request


def pending_request(session: Session, zalo_user_id: str, now: datetime) -> LinkRequest | None:
    stmt = _open(now).where(LinkRequest.zalo_user_id == zalo_user_id).order_by(LinkRequest.id.desc()).limit(1)
    return session.scalar(stmt)


def requests_for_member(session: Session, member_id: int, now: datetime) -> list[LinkRequest]:
    """The open requests a cashier may confirm on this member's page."""
    return list(session.scalars(_open(now).where(LinkRequest.member_id == member_id).order_by(LinkRequest.id)))


def _open(now: datetime) -> Select[LinkRequest]:
    return select(LinkRequest).where(LinkRequest.status == LinkStatus.PENDING, LinkRequest.expires_at > now)


def confirm_link(session: Session, *, member_id: int, code: str, by: str, now: datetime) -> LinkRequest:
    """Link the member to the chat user whose request carries `code`. Raises LinkRefused with the reason.

    Locks the member row, so two cashiers (or a double click) link once. Wrong codes are counted on every
    open request of the member; after MAX_WRONG_CODES they are cancelled.
    """
    member = lock_member(session, member_id, allow_blocked=True)
    if member.zalo_user_id:
        raise LinkRefused("taken")
    requests = requests_for_member(session, member_id, now)
    if not requests:
        raise LinkRefused("no_request")
    typed = "".join(ch for ch in code if ch.isdigit())
    match = next((r for r in requests if hmac.compare_digest(r.code, typed)), None)
    if match is None:
        _count_wrong_code(session, requests, now)
        raise LinkRefused("wrong_code")
    return _link(session, member, match, requests, by, now)


def confirm_link_from_chat(session: Session, *, zalo_user_id: str, code: str, now: datetime) -> LinkRequest:
    """The chat user types the code that went to the member's phone (a ZBS template): whoever reads that
    phone's Zalo owns the number. Only their own request's code counts, and only if it was never shown in
    the chat; wrong codes count toward the same limit as at the counter."""
    request = pending_request(session, zalo_user_id, now)
    if request is None or not request.by_phone:
        raise LinkRefused("no_request")
    member = lock_member(session, request.member_id, allow_blocked=True)
    if member.zalo_user_id:
        raise LinkRefused("taken")
    typed = "".join(ch for ch in code if ch.isdigit())
    if not hmac.compare_digest(request.code, typed):
        _count_wrong_code(session, [request], now)
        raise LinkRefused("wrong_code")
    return _link(session, member, request, requests_for_member(session, member.id, now), f"chat:{zalo_user_id}", now)


def _link(
    session: Session, member: Member, match: LinkRequest, requests: list[LinkRequest], by: str, now: datetime
) -> LinkRequest:
    if find_by_zalo_user(session, match.zalo_user_id) is not None:
        match.status, match.resolved_at, match.resolved_by = LinkStatus.CANCELLED, now, by
        raise LinkRefused("taken")  # that Zalo account became a member some other way meanwhile
    member.zalo_user_id = match.zalo_user_id
    member.birthday = member.birthday or match.birthday  # the shop's own record wins; the name is never replaced
    match.status, match.resolved_at, match.resolved_by = LinkStatus.LINKED, now, by
    for other in requests:
        if other is not match:
            other.status, other.resolved_at = LinkStatus.CANCELLED, now
    session.flush()
    return match


def _count_wrong_code(session: Session, requests: list[LinkRequest], now: datetime) -> None:
    for request in requests:
        request.wrong_codes += 1
        if request.wrong_codes >= MAX_WRONG_CODES:
            request.status, request.resolved_at = LinkStatus.CANCELLED, now


def cancel_requests(session: Session, zalo_user_id: str, now: datetime) -> None:
    """The chat user's open requests end: a newer one, or they registered a card of their own."""
    session.execute(
        update(LinkRequest)
        .where(LinkRequest.zalo_user_id == zalo_user_id, LinkRequest.status == LinkStatus.PENDING)
        .values(status=LinkStatus.CANCELLED, resolved_at=now)
    )
