"""Routing: event type -> handler; text -> pending conversation step, then command (first match wins),
else the default handler.

Modelled on python-telegram-bot's handlers and LINE's WebhookHandler: small callbacks registered on
a router; the router knows nothing about what they do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.replies import Reply
from bot.state import live_state
from bot.text import fold, tail_words
from bot.users import touch_user
from loyalty.members import find_by_zalo_user
from loyalty.program import ProgramRules, load_rules
from models import ConversationState, Member, ZaloUser
from tichdiem.config import oa_link
from zalo.events import TextMessage, ZaloEvent


@dataclass(frozen=True)
class BotConfig:
    shop_name: str = "Cửa hàng của bạn"  # SHOP_NAME; the name saved in the console wins (name_source)
    name_source: Callable[[], str] | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    oa_id: str = ""
    logo_url: str = ""
    privacy_url: str = ""  # the shop's privacy notice (PUBLIC_URL/privacy)
    invite_url: str = ""  # a member's invitation page is this + their code (PUBLIC_URL/r/)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def current_shop_name(self) -> str:
        return self.name_source() if self.name_source is not None else self.shop_name

    @property
    def oa_link(self) -> str:
        return oa_link(self.oa_id)


@dataclass
class Context:
    session: Session
    event: ZaloEvent
    user: ZaloUser | None
    now: datetime
    config: BotConfig = field(default_factory=BotConfig)
    args: str = ""  # text after the command word(s), diacritics kept
    state: ConversationState | None = None
    stored_state: ConversationState | None = None  # read with the user, maybe expired: `state` is what counts
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.event.text if isinstance(self.event, TextMessage) else ""

    @cached_property
    def shop_name(self) -> str:
        return self.config.current_shop_name

    @cached_property
    def member(self) -> Member | None:
        return find_by_zalo_user(self.session, self.user.user_id) if self.user else None

    @cached_property
    def rules(self) -> ProgramRules:
        return load_rules(self.session)

    def remember_member(self, member: Member | None) -> None:
        """The member read with the user: `member` needs no query of its own."""
        self.__dict__["member"] = member

    def forget_member(self) -> None:
        """After registration changes who the member is."""
        self.__dict__.pop("member", None)


log = logging.getLogger(__name__)
Handler = Callable[[Context], list[Reply]]
StepHandler = Callable[[Context], list[Reply] | None]  # None: not an answer to the step, route normally


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]  # folded forms, e.g. ("tro giup", "help", "?")
    handler: Handler
    exact: bool = False  # only the bare word matches ("có"), not "có bánh mì không"

    def match(self, folded: str) -> str | None:
        """The matching alias (longest first), or None."""
        for alias in sorted(self.aliases, key=len, reverse=True):
            if folded == alias or (not self.exact and folded.startswith(alias + " ")):
                return alias
        return None


class Bot:
    """Routes one event to one handler and returns its replies; never sends anything itself."""

    def __init__(self, config: BotConfig | None = None) -> None:
        self.config = config or BotConfig()
        self._event_handlers: dict[type[ZaloEvent], Handler] = {}
        self._steps: dict[str, StepHandler] = {}
        self._commands: list[Command] = []
        self._default_text: Handler = lambda ctx: []
        self._after: list[Callable[[Context, list[Reply]], list[Reply]]] = []

    def on_event(self, event_type: type[ZaloEvent]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._event_handlers[event_type] = handler
            return handler

        return register

    def on_step(self, name: str) -> Callable[[StepHandler], StepHandler]:
        """A handler for the user's answer while conversation state `name` is pending."""

        def register(handler: StepHandler) -> StepHandler:
            self._steps[name] = handler
            return handler

        return register

    def command(self, name: str, *aliases: str, exact: bool = False) -> Callable[[Handler], Handler]:
        folded = tuple(dict.fromkeys(fold(a) for a in (name, *aliases)))

        def register(handler: Handler) -> Handler:
            self._commands.append(Command(name, folded, handler, exact))
            return handler

        return register

    def after_reply(self, hook: Callable[[Context, list[Reply]], list[Reply]]) -> None:
        """`hook(ctx, replies)` may add to every answer (the one-time consent question)."""
        self._after.append(hook)

    def default_text(self, handler: Handler) -> Handler:
        self._default_text = handler
        return handler

    def handle(self, session: Session, event: ZaloEvent, now: datetime) -> list[Reply]:
        if event.user_id is None:
            # Nobody to answer (a malformed or platform-level event): acknowledged, stored, no reply.
            log.info("bot: %s without a user id, nothing to reply", event.event_name)
            return []
        caller = touch_user(session, event, now)
        ctx = Context(session=session, event=event, user=caller.user if caller else None, now=now, config=self.config)
        if caller is not None:
            ctx.stored_state = caller.state
            ctx.remember_member(caller.member)
        replies = self._route(ctx, event)
        for hook in self._after:
            replies = hook(ctx, replies)
        return replies

    def _route(self, ctx: Context, event: ZaloEvent) -> list[Reply]:
        if isinstance(event, TextMessage):
            return self._route_text(ctx)
        for event_type in type(event).__mro__:
            handler = self._event_handlers.get(event_type)
            if handler is not None:
                return handler(ctx)
        return []  # an event no handler registered for: stored, acknowledged, no reply

    def find_command(self, text: str) -> tuple[Command, str] | None:
        folded = fold(text)
        for command in self._commands:
            alias = command.match(folded)
            if alias is not None:
                return command, tail_words(text, len(alias.split()))
        return None

    def _route_text(self, ctx: Context) -> list[Reply]:
        if ctx.user is not None:
            ctx.state = live_state(ctx.session, ctx.stored_state, ctx.now)
            step = self._steps.get(ctx.state.name) if ctx.state else None
            if step is not None:
                replies = step(ctx)
                if replies is not None:
                    return replies
        found = self.find_command(ctx.text)
        if found is None:
            return self._default_text(ctx)
        command, ctx.args = found
        return command.handler(ctx)
