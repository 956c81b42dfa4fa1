"""Follow, unfollow, help, and the friendly default for anything the bot does not understand."""

from __future__ import annotations

from bot.replies import Reply, reply
from bot.router import Bot, Context
from zalo.events import ClickChatNow, Follow, Unfollow, UserMessage
from zalo.messages import Button

HELP_BUTTON = Button("Xem lệnh", "#TROGIUP")
MAX_ECHO = 40  # how much of an unknown text we quote back


def register(bot: Bot, shop_name: str) -> None:
    @bot.on_event(Follow)
    def on_follow(ctx: Context) -> list[Reply]:
        if ctx.user is not None:
            ctx.user.is_follower = True
            ctx.user.followed_at = ctx.now
            ctx.user.unfollowed_at = None
        return [reply("welcome", buttons=(HELP_BUTTON,), shop_name=shop_name)]

    @bot.on_event(Unfollow)
    def on_unfollow(ctx: Context) -> list[Reply]:
        # No message: Zalo would refuse it anyway, and the user asked to stop hearing from us.
        if ctx.user is not None:
            ctx.user.is_follower = False
            ctx.user.unfollowed_at = ctx.now
        return []

    @bot.on_event(ClickChatNow)
    def on_chat_now(ctx: Context) -> list[Reply]:
        return [reply("help", shop_name=shop_name)]

    @bot.command("trợ giúp", "trogiup", "help", "?", "hướng dẫn", "menu", "lệnh")
    def on_help(ctx: Context) -> list[Reply]:
        return [reply("help", shop_name=shop_name)]

    @bot.default_text
    def on_unknown_text(ctx: Context) -> list[Reply]:
        text = " ".join(ctx.text.split())
        if not text:
            return [reply("unknown_media", buttons=(HELP_BUTTON,))]
        shown = text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"
        return [reply("unknown_text", buttons=(HELP_BUTTON,), text=shown)]

    @bot.on_event(UserMessage)
    def on_other_message(ctx: Context) -> list[Reply]:
        return [reply("unknown_media", buttons=(HELP_BUTTON,))]
