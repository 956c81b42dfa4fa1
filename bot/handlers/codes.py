""" "mã <code>": a counter claim first, else a friend's referral code (the two share a code shape)."""

from __future__ import annotations

import re

from bot.handlers.claims import try_claim
from bot.handlers.membership import info_request, link_referral_reply
from bot.replies import Reply, reply
from bot.router import Bot, Context
from loyalty.codes import ALPHABET, REFERRAL_CODE_LENGTH, normalize_code
from loyalty.members import find_by_code

_CODE_SHAPE = re.compile(rf"^[{ALPHABET}]{{{REFERRAL_CODE_LENGTH}}}$")


def register(bot: Bot) -> None:
    bot.command("mã")(on_referral_code)


def on_referral_code(ctx: Context) -> list[Reply]:
    """ "mã <code>": a counter claim first, else a referral code."""
    claimed = try_claim(ctx, ctx.args, explicit=False)
    if claimed is not None:
        return claimed
    code = normalize_code(ctx.args)
    if not code:
        return [reply("referral_refused", reason="unknown_code", code=ctx.args.strip()[:20])]
    if find_by_code(ctx.session, code) is None:
        retry = try_claim(ctx, code, explicit=True)  # counts as a wrong claim attempt (throttled)
        return retry or [reply("referral_refused", reason="unknown_code", code=code)]
    if ctx.member is None:
        assert ctx.user is not None
        ctx.user.pending_referral_code = code
        return [reply("referral_pending", code=code), info_request(ctx)]
    return link_referral_reply(ctx, ctx.member, code)


def looks_like_referral_code(ctx: Context) -> bool:
    """A new user whose message is just a member's code (pasted from a friend's invitation)."""
    code = normalize_code(ctx.text)
    return (
        ctx.member is None
        and bool(_CODE_SHAPE.match(code))
        and len(ctx.text.strip().lstrip("#")) <= 8
        and find_by_code(ctx.session, code) is not None
    )
