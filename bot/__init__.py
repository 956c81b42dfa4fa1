"""The conversation: commands in Vietnamese, routed to small handlers that call the loyalty domain."""

from __future__ import annotations

from bot.router import Bot


def build_bot(shop_name: str = "Cửa hàng của bạn") -> Bot:
    from bot.handlers import basics

    bot = Bot()
    basics.register(bot, shop_name)
    return bot
