"""Claiming a counter code in the chat: "mã ABC234" or "#ABC234" credits the bill to the sender."""

from __future__ import annotations

import math
from datetime import timedelta

from bot import buttons
from bot.handlers.membership import info_request
from bot.replies import Reply, reply
from bot.router import Context
from loyalty import format as fmt
from loyalty.claims import CLAIM_CODE_LENGTH, claim_points, find_claim
from loyalty.codes import normalize_code
from loyalty.errors import ClaimExpired, ClaimUsed, MemberBlocked

MAX_FAILED_CLAIMS = 5  # wrong codes within FAILURE_WINDOW before claiming is locked
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=30)


def try_claim(ctx: Context, typed: str, *, explicit: bool) -> list[Reply] | None:
    """Replies if `typed` is a claim code (or, when `explicit`, a wrong one); None to let others handle it."""
    code = normalize_code(typed)
    user = ctx.user
    if user is None or len(code) != CLAIM_CODE_LENGTH:
        return None
    if user.claims_locked_until is not None and user.claims_locked_until > ctx.now:
        minutes = math.ceil((user.claims_locked_until - ctx.now).total_seconds() / 60)
        return [reply("claim_locked", minutes=minutes)]
    claim = find_claim(ctx.session, code)
    if claim is None:
        return _wrong_code(ctx, code) if explicit else None
    member = ctx.member
    if member is None:
        return [
            reply(
                "claim_needs_member",
                shop_name=ctx.config.shop_name,
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
    if earned.points <= 0:
        return [reply("claim_nothing", amount=fmt.vnd(claim.amount), code=code)]
    return [
        reply(
            "earned",
            buttons=(buttons.BALANCE, buttons.REWARDS),
            points=fmt.points(earned.points),
            amount=fmt.vnd(claim.amount),
            bill_ref=claim.bill_ref,
            balance=fmt.points(earned.balance),
        )
    ]


def _wrong_code(ctx: Context, code: str) -> list[Reply]:
    user = ctx.user
    assert user is not None
    if user.failed_claims_since is None or ctx.now - user.failed_claims_since > FAILURE_WINDOW:
        user.failed_claims, user.failed_claims_since = 0, ctx.now
    user.failed_claims += 1
    if user.failed_claims >= MAX_FAILED_CLAIMS:
        user.claims_locked_until, user.failed_claims, user.failed_claims_since = ctx.now + LOCKOUT, 0, None
        return [reply("claim_locked", minutes=int(LOCKOUT.total_seconds() // 60))]
    return [reply("claim_unknown", code=code)]
