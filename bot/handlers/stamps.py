"""Stamp cards in the chat: "tem" shows each card the shop runs with the member's stamps filled."""

from __future__ import annotations

from bot.handlers.membership import members_only
from bot.replies import Reply, reply
from bot.router import Bot, Context
from bot.stamps import card_reply
from loyalty.stamps import member_cards

MAX_CARDS_SHOWN = 3  # pictures in one answer; shops rarely run more at once


def register(bot: Bot) -> None:
    bot.command("tem", "thẻ tem", "thẻ tích tem", "tích tem", "stamp", "xem tem")(members_only(on_stamps))


def on_stamps(ctx: Context) -> list[Reply]:
    assert ctx.member is not None
    cards = member_cards(ctx.session, ctx.member.id, ctx.now)
    if not cards:
        return [reply("stamps_none", shop_name=ctx.shop_name)]
    return [card_reply(ctx.session, card, n, lapses, ctx.config.tz) for card, n, lapses in cards[:MAX_CARDS_SHOWN]]
