"""Routing: event type -> handler, text -> command (first match wins), else the default handler.

Modelled on python-telegram-bot's handlers and LINE's WebhookHandler: small callbacks
registered on a router; the router knows nothing about what they do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.replies import Reply
from bot.text import fold, tail_words
from bot.users import touch_user
from models import ZaloUser
from zalo.events import TextMessage, ZaloEvent


@dataclass
class Context:
    session: Session
    event: ZaloEvent
    user: ZaloUser | None
    now: datetime
    args: str = ""  # text after the command word(s), diacritics kept
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.event.text if isinstance(self.event, TextMessage) else ""


Handler = Callable[[Context], list[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]  # folded forms, e.g. ("tro giup", "help", "?")
    handler: Handler

    def match(self, folded: str) -> str | None:
        """The matching alias (longest first), or None."""
        for alias in sorted(self.aliases, key=len, reverse=True):
            if folded == alias or folded.startswith(alias + " "):
                return alias
        return None


class Bot:
    """Routes one event to one handler and returns its replies; never sends anything itself."""

    def __init__(self) -> None:
        self._event_handlers: dict[type[ZaloEvent], Handler] = {}
        self._commands: list[Command] = []
        self._default_text: Handler = lambda ctx: []
        self._default_event: Handler = lambda ctx: []

    def on_event(self, event_type: type[ZaloEvent]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._event_handlers[event_type] = handler
            return handler

        return register

    def command(self, name: str, *aliases: str) -> Callable[[Handler], Handler]:
        folded = tuple(dict.fromkeys(fold(a) for a in (name, *aliases)))

        def register(handler: Handler) -> Handler:
            self._commands.append(Command(name, folded, handler))
            return handler

        return register

    def default_text(self, handler: Handler) -> Handler:
        self._default_text = handler
        return handler

    def default_event(self, handler: Handler) -> Handler:
        self._default_event = handler
        return handler

    def handle(self, session: Session, event: ZaloEvent, now: datetime) -> list[Reply]:
        user = touch_user(session, event, now)
        ctx = Context(session=session, event=event, user=user, now=now)
        if isinstance(event, TextMessage):
            return self._route_text(ctx)
        for event_type in type(event).__mro__:
            handler = self._event_handlers.get(event_type)
            if handler is not None:
                return handler(ctx)
        return self._default_event(ctx)

    def find_command(self, text: str) -> tuple[Command, str] | None:
        folded = fold(text)
        for command in self._commands:
            alias = command.match(folded)
            if alias is not None:
                return command, tail_words(text, len(alias.split()))
        return None

    def _route_text(self, ctx: Context) -> list[Reply]:
        found = self.find_command(ctx.text)
        if found is None:
            return self._default_text(ctx)
        command, ctx.args = found
        return command.handler(ctx)
