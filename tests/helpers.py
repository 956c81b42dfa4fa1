"""Test helpers: signing webhook bodies independently, running queued jobs, the Zalo API fake."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import responses
from flask import Flask
from flask.testing import FlaskClient
from responses import matchers
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from tichdiem.extensions import EXTENSION_KEY

FIXTURES = Path(__file__).parent / "fixtures" / "zalo"
OPENAPI = "https://openapi.zalo.me"
OAUTH = "https://oauth.zaloapp.com"
CS_URL = f"{OPENAPI}/v3.0/oa/message/cs"
TOKEN_URL = f"{OAUTH}/v4/oa/access_token"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def sign(raw: bytes, secret: str, first_id: str | None = None) -> str:
    """Zalo's mac, written out here independently of webhooks.signature."""
    body = json.loads(raw)
    first = first_id if first_id is not None else body["app_id"]
    return "mac=" + hashlib.sha256(first.encode() + raw + str(body["timestamp"]).encode() + secret.encode()).hexdigest()


def post_event(client: FlaskClient, raw: bytes, secret: str = "oa-secret-key-abc", **kw: Any) -> Any:
    headers = {"X-ZEvent-Signature": sign(raw, secret), "Content-Type": "application/json"}
    headers.update(kw.pop("headers", {}))
    return client.post("/webhooks/zalo", data=raw, headers=headers, **kw)


def text_event(text: str, msg_id: str, user_id: str = "8958041078911298472", ts: str = "1724921900000") -> bytes:
    body = {
        "app_id": "3349222483842580322",
        "sender": {"id": user_id},
        "recipient": {"id": "4024926008133882615"},
        "event_name": "user_send_text",
        "message": {"text": text, "msg_id": msg_id},
        "timestamp": ts,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def run_jobs(app: Flask, *, include_scheduled: bool = False) -> None:
    """Run every queued job in this process, like `rq worker --burst` with a SimpleWorker."""
    queue = app.extensions[EXTENSION_KEY].queue
    if include_scheduled:
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(queue.fetch_job(job_id))
    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")


class ZaloFake:
    """The Zalo OpenAPI as seen through `responses`: helpers to answer and to read what was sent."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock

    def accept_messages(self, message_id: str = "msg-1") -> None:
        self.mock.add(
            responses.POST,
            CS_URL,
            json={"error": 0, "message": "Success", "data": {"message_id": message_id, "user_id": "u"}},
        )

    def answer_messages(self, *bodies: dict[str, Any], status: int = 200) -> None:
        for body in bodies:
            self.mock.add(responses.POST, CS_URL, json=body, status=status)

    def sent_messages(self) -> list[dict[str, Any]]:
        return [json.loads(c.request.body) for c in self.mock.calls if c.request.url == CS_URL]

    def calls_to(self, url: str) -> list[Any]:
        return [c for c in self.mock.calls if c.request.url.split("?")[0] == url]

    def accept_refresh(self, access: str = "AT-new", refresh: str = "RT-new", expires_in: str = "90000") -> None:
        self.mock.add(
            responses.POST,
            TOKEN_URL,
            json={"access_token": access, "refresh_token": refresh, "expires_in": expires_in},
            match=[matchers.header_matcher({"secret_key": "app-secret-xyz"})],
        )
