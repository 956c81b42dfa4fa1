"""What the bot answers: Reply values rendered from templates/replies/*.txt."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tichdiem.config import PROJECT_ROOT
from zalo.messages import Button, split_text, text_message

REPLY_TEMPLATES = PROJECT_ROOT / "templates" / "replies"


@dataclass(frozen=True)
class Reply:
    """A text with optional quick-reply buttons, or a ready Zalo message (image, info request)."""

    text: str = ""
    buttons: tuple[Button, ...] = ()
    message: dict[str, Any] | None = field(default=None)
    card_member_id: int | None = None  # send this member's card (drawn and uploaded at send time)
    stamp_card: dict[str, int] | None = None  # send a stamp card image: {"stamp_card_id", "stamps"}
    # Not to the chat but to a phone, as the approved ZBS template of this purpose filled with these fields
    # (a verification code must reach the phone's owner, not whoever typed the number).
    to_phone: str | None = None
    # Not to this chat but to another member's (a referrer told that a friend's purchase earned them points).
    to_user: str | None = None
    template_purpose: str = ""
    template_fields: dict[str, str] = field(default_factory=dict)

    def to_outbox(self) -> list[dict[str, Any] | tuple[str, dict[str, Any]]]:
        if self.to_phone is not None:
            payload = {"text": self.text, "promotional": False, "buttons": [], "purpose": self.template_purpose}
            return [("proactive", {**payload, "fields": self.template_fields, "phone": self.to_phone})]
        if self.card_member_id is not None:
            return [("member_card", {"member_id": self.card_member_id, "caption": self.text})]
        if self.stamp_card is not None:
            return [("stamp_card", {**self.stamp_card, "caption": self.text})]
        return list(self.to_messages())

    def to_messages(self) -> list[dict[str, Any]]:
        """Zalo `message` objects; a long text becomes several, the buttons go on the last one."""
        if self.message is not None:
            return [self.message]
        parts = split_text(self.text)
        return [text_message(p, self.buttons if i == len(parts) - 1 else ()) for i, p in enumerate(parts)]


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(REPLY_TEMPLATES),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(template: str, /, **context: Any) -> str:
    """Render templates/replies/<template>.txt."""
    return _environment().get_template(f"{template}.txt").render(**context).strip()


def reply(template: str, /, buttons: tuple[Button, ...] = (), **context: Any) -> Reply:
    return Reply(text=render(template, **context), buttons=buttons)
