"""Builders for the `message` object of POST /v3.0/oa/message/cs (reference §2.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TEXT = 2000  # Zalo rejects longer texts
MAX_BUTTONS = 5


@dataclass(frozen=True)
class Button:
    """An `oa.query.show` button: tapping it sends `payload` as a visible user message."""

    title: str
    payload: str

    def to_zalo(self) -> dict[str, Any]:
        return {"title": self.title[:100], "type": "oa.query.show", "payload": self.payload}


def text_message(text: str, buttons: tuple[Button, ...] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"text": text}
    if buttons:
        message["attachment"] = {
            "type": "template",
            "payload": {"buttons": [b.to_zalo() for b in buttons[:MAX_BUTTONS]]},
        }
    return message


def image_message(attachment_id: str, caption: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "attachment_id": attachment_id}],
            },
        }
    }
    if caption:
        message["text"] = caption
    return message


def request_user_info_message(title: str, subtitle: str, image_url: str) -> dict[str, Any]:
    element = {"title": title[:100], "subtitle": subtitle[:500], "image_url": image_url}
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "request_user_info", "elements": [element]},
        }
    }


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a long reply into Zalo-sized parts, at line breaks where possible, never mid-word if avoidable."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts
