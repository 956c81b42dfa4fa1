"""The conversation: commands in Vietnamese, routed to small handlers that call the loyalty domain."""

from __future__ import annotations

from bot.router import Bot, BotConfig


def build_bot(config: BotConfig | None = None) -> Bot:
    """Commands are matched in registration order, so the more specific ones ("đổi thẻ") come first."""
    from bot.handlers import account, basics, charity, codes, membership, privacy, stamps

    bot = Bot(config)
    stamps.register(bot)  # before membership: "thẻ tem" is not the member card's "thẻ"
    membership.register(bot)
    codes.register(bot)
    account.register(bot)
    charity.register(bot)
    privacy.register(bot)
    basics.register(bot)
    return bot


__all__ = ["Bot", "BotConfig", "build_bot"]
