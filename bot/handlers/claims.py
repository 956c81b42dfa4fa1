"""Claiming a counter code in the chat: "mã ABC234" or "#ABC234" credits the bill to the sender."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from bot import buttons
from bot.handlers.membership import info_request
from bot.notices import referral_notices
from bot.replies import Reply, reply
from bot.router import Context
from bot.stamps import stamped_replies
from loyalty import format as fmt
from loyalty.claims import CLAIM_CODE_LENGTH, claim_points, find_claim
from loyalty.codes import normalize_code
from loyalty.errors import ClaimExpired, ClaimUsed, MemberBlocked
from loyalty.members import find_by_code

_CODE_SHAPE = re.compile(rf"#?\s*[A-Za-z0-9]{{{CLAIM_CODE_LENGTH}}}")
MAX_FAILED_CLAIMS = 5  # wrong codes within FAILURE_WINDOW before claiming is locked
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=30)


def try_claim(ctx: Context, typed: str, *, explicit: bool) -> list[Reply] | None:
    """Replies if `typed` is a claim code (or, when `explicit`, a wrong one); None to let others handle it.

    Every look-up that misses counts toward the lock-out, a bare code as much as "#CODE": otherwise a stranger
    could try codes without "#" for free. A bare word is looked up only if it is shaped like a code (six
    letters and digits, nothing else), so "xin chào" never counts; a wrong bare word gets the normal answer.
    """
    code = normalize_code(typed)
    user = ctx.user
    if user is None or len(code) != CLAIM_CODE_LENGTH:
        return None
    if not explicit and not _CODE_SHAPE.fullmatch(typed.strip()):
        return None
    if user.claims_locked_until is not None and user.claims_locked_until > ctx.now:
        if not explicit:
            return None  # not looked up while locked
        minutes = math.ceil((user.claims_locked_until - ctx.now).total_seconds() / 60)
        return [reply("claim_locked", minutes=minutes)]
    claim = find_claim(ctx.session, code)
    if claim is None:
        if explicit:
            return _wrong_code(ctx, code)
        if find_by_code(ctx.session, code) is None:  # a friend's referral code is no guess
            _count_wrong_code(ctx)
        return None
    member = ctx.member
    if member is None:
        return [
            reply(
                "claim_needs_member",
                shop_name=ctx.shop_name,
                code=code,
                expires=claim.expires_at.astimezone(ctx.config.tz).strftime("%H:%M %d/%m"),
            ),
            info_request(ctx),
        ]
    try:
        result = claim_points(ctx.session, member.id, code, now=ctx.now, rules=ctx.rules, tz=ctx.config.tz)
    except ClaimExpired:
        return [reply("claim_expired", code=code)]
    except ClaimUsed:
        return [reply("claim_used", code=code)]
    except MemberBlocked:
        return [reply("blocked")]
    user.failed_claims, user.failed_claims_since = 0, None
    earned = result.earned
    stamped = stamped_replies(ctx.session, earned.stamps, ctx.config.tz)
    if earned.points <= 0 and not stamped:
        return [reply("claim_nothing", amount=fmt.vnd(claim.amount), code=code)]
    notices = [
        Reply(text=text, to_user=None if user_id == user.user_id else user_id)
        for user_id, text in referral_notices(ctx.session, earned.referral, member)
    ]
    points = []
    if earned.points > 0:
        points.append(
            reply(
                "earned",
                buttons=(buttons.BALANCE, buttons.REWARDS),
                points=fmt.points(earned.points),
                amount=fmt.vnd(claim.amount),
                bill_ref=claim.bill_ref,
                balance=fmt.points(earned.balance),
            )
        )
    return [*points, *stamped, *notices]


def _wrong_code(ctx: Context, code: str) -> list[Reply]:
    if _count_wrong_code(ctx):
        return [reply("claim_locked", minutes=int(LOCKOUT.total_seconds() // 60))]
    return [reply("claim_unknown", code=code)]


def _count_wrong_code(ctx: Context) -> bool:
    """One more wrong code for this user; True if that locks claiming."""
    user = ctx.user
    assert user is not None
    if user.failed_claims_since is None or ctx.now - user.failed_claims_since > FAILURE_WINDOW:
        user.failed_claims, user.failed_claims_since = 0, ctx.now
    user.failed_claims += 1
    if user.failed_claims >= MAX_FAILED_CLAIMS:
        user.claims_locked_until, user.failed_claims, user.failed_claims_since = ctx.now + LOCKOUT, 0, None
        return True
    return False
