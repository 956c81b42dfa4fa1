"""Unfollow, help, and the friendly default for anything the bot does not understand."""

from __future__ import annotations

from bot import buttons
from bot.handlers.claims import try_claim
from bot.handlers.codes import looks_like_referral_code, on_referral_code
from bot.handlers.membership import info_request, should_request_info, try_link_code
from bot.replies import Reply, reply
from bot.router import Bot, Context
from zalo.events import ClickChatNow, Unfollow, UserMessage

MAX_ECHO = 40  # how much of an unknown text we quote back
GREETINGS = ("xin chào", "chào", "chào bạn", "chào shop", "chào em", "hello", "hi", "alo", "helo")


def register(bot: Bot) -> None:
    bot.on_event(Unfollow)(on_unfollow)
    bot.on_event(ClickChatNow)(on_help)
    bot.on_event(UserMessage)(on_other_message)
    bot.command("trợ giúp", "trogiup", "help", "?", "hướng dẫn", "menu", "lệnh")(on_help)
    bot.command(*GREETINGS, exact=True)(on_greeting)
    bot.default_text(on_unknown_text)


def on_unfollow(ctx: Context) -> list[Reply]:
    # No message: Zalo would refuse it anyway, and the user asked to stop hearing from us.
    if ctx.user is not None:
        ctx.user.is_follower = False
        ctx.user.unfollowed_at = ctx.now
    return []


def on_help(ctx: Context) -> list[Reply]:
    return [reply("help", buttons=(buttons.BALANCE, buttons.CARD, buttons.REWARDS), shop_name=ctx.shop_name)]


def on_greeting(ctx: Context) -> list[Reply]:
    """ "Xin chào" is the most common first message: greet back (a newcomer gets the invitation to join)."""
    if ctx.member is None:
        return on_unknown_text(ctx)
    name = ctx.member.name.split()[-1] if ctx.member.name else ""
    return [
        reply("greeting", buttons=(buttons.BALANCE, buttons.REWARDS, buttons.HELP), name=name, shop_name=ctx.shop_name)
    ]


def on_unknown_text(ctx: Context) -> list[Reply]:
    linked = try_link_code(ctx)  # six digits a not-yet-member got on the phone they claimed
    if linked is not None:
        return linked
    # "#ABC234" is an explicit code (a wrong one counts toward the lock-out); a bare word only if it exists.
    claimed = try_claim(ctx, ctx.text, explicit=ctx.text.strip().startswith("#"))
    if claimed is not None:
        return claimed
    if looks_like_referral_code(ctx):
        ctx.args = ctx.text
        return on_referral_code(ctx)
    if ctx.member is None and should_request_info(ctx):
        # The first message of someone who is not a member yet: invite them in.
        return [reply("welcome", shop_name=ctx.shop_name), info_request(ctx)]
    text = " ".join(ctx.text.split())
    if not text:
        return [reply("unknown_media", buttons=(buttons.HELP,))]
    shown = text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"
    return [reply("unknown_text", buttons=(buttons.HELP, buttons.BALANCE), text=shown)]


def on_other_message(ctx: Context) -> list[Reply]:
    return [reply("unknown_media", buttons=(buttons.HELP,))]
