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


def render(name: str, **context: Any) -> str:
    """Render templates/replies/<name>.txt."""
    return _environment().get_template(f"{name}.txt").render(**context).strip()


def reply(name: str, buttons: tuple[Button, ...] = (), **context: Any) -> Reply:
    return Reply(text=render(name, **context), buttons=buttons)
