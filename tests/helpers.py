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
from rq.registry import ScheduledJobRegistry

from jobs.worker import make_worker
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
    body_app_id = body.get("app_id")
    default = str(body_app_id) if isinstance(body_app_id, str | int) and body_app_id else "3349222483842580322"
    first = first_id if first_id is not None else default
    # Either may hold a lone surrogate in the fuzz tests (and the app id a newline: encoded apart, not split)
    first_b, timestamp_b = (part.encode("utf-8", "surrogatepass") for part in (first, str(body["timestamp"])))
    return "mac=" + hashlib.sha256(first_b + raw + timestamp_b + secret.encode()).hexdigest()


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
    services = app.extensions[EXTENSION_KEY]
    queue = services.queue
    if include_scheduled:
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(queue.fetch_job(job_id))
    make_worker(services, simple=True).work(burst=True, logging_level="WARNING")


class ZaloFake:
    """The Zalo OpenAPI as seen through `responses`: helpers to answer and to read what was sent."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.profile("Lan Nguyễn")

    def profile(self, display_name: str, user_id: str = "8958041078911298472") -> None:
        """Answer GET /v3.0/oa/user/detail (the bot fetches profiles lazily)."""
        self.mock.upsert(
            responses.GET,
            f"{OPENAPI}/v3.0/oa/user/detail",
            json={
                "error": 0,
                "message": "Success",
                "data": {
                    "user_id": user_id,
                    "display_name": display_name,
                    "avatar": "https://s120.zadn.vn/a.jpg",
                    "user_is_follower": True,
                },
            },
        )

    def accept_uploads(self, attachment_id: str = "att-1") -> None:
        self.mock.add(
            responses.POST,
            f"{OPENAPI}/v2.0/oa/upload/image",
            json={"error": 0, "message": "Success", "data": {"attachment_id": attachment_id}},
        )

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

    def refuse_refresh(self) -> None:
        """Zalo's answer to a refresh token that is no longer valid (reference §3)."""
        self.mock.add(responses.POST, TOKEN_URL, json={"error": -14014, "error_name": "Invalid refresh token"})


class Chat:
    """One Zalo user talking to the bot through the real path: signed webhook -> job -> mocked Zalo."""

    def __init__(self, app: Flask, zalo: ZaloFake, user_id: str = "8958041078911298472") -> None:
        self.app, self.zalo, self.user_id = app, zalo, user_id
        self.client = app.test_client()
        self.counter = 0
        self.clock = 1_763_870_400_000  # 23/11/2025 04:00 UTC, in ms; advanced per message
        zalo.accept_messages()
        zalo.accept_uploads()

    def say(self, text: str) -> list[dict[str, Any]]:
        """Send a text; return the `message` objects the bot sent back, in order."""
        self.counter += 1
        return self._post(
            {
                "app_id": "3349222483842580322",
                "sender": {"id": self.user_id},
                "recipient": {"id": "4024926008133882615"},
                "event_name": "user_send_text",
                "message": {"text": text, "msg_id": f"{self.user_id}-m{self.counter}"},
            }
        )

    def follow(self) -> list[dict[str, Any]]:
        return self._post(
            {
                "oa_id": "4024926008133882615",
                "follower": {"id": self.user_id},
                "event_name": "follow",
                "source": "oa_profile",
                "app_id": "3349222483842580322",
            }
        )

    def unfollow(self) -> list[dict[str, Any]]:
        return self._post(
            {
                "oa_id": "4024926008133882615",
                "follower": {"id": self.user_id},
                "event_name": "unfollow",
                "source": "oa_profile",
                "app_id": "3349222483842580322",
            }
        )

    def share_info(self, **info: Any) -> list[dict[str, Any]]:
        return self._post(
            {
                "app_id": "3349222483842580322",
                "sender": {"id": self.user_id},
                "recipient": {"id": "4024926008133882615"},
                "event_name": "user_submit_info",
                "info": info,
            }
        )

    def texts(self, messages: list[dict[str, Any]]) -> list[str]:
        return [m.get("text", "") for m in messages]

    def _post(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        self.clock += 1000
        body["timestamp"] = str(self.clock)
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        before = len(self.zalo.sent_messages())
        response = post_event(self.client, raw)
        assert response.status_code == 200, response.data
        run_jobs(self.app)
        return [m["message"] for m in self.zalo.sent_messages()[before:] if m["recipient"]["user_id"] == self.user_id]


def seed_shop(session: Any) -> dict[str, Any]:
    """Tiers, rewards and stores of a small café, as most tests expect them."""
    from models import Reward, Store, Tier

    tiers = [
        Tier(name="Thành viên", threshold=0, benefits="Tích 1 điểm mỗi 10.000đ"),
        Tier(name="Bạc", threshold=500, benefits="Quà sinh nhật"),
        Tier(name="Vàng", threshold=1500, benefits="x1,5 điểm", earn_multiplier_pct=150),
        Tier(
            name="Kim cương",
            threshold=5000,
            benefits="x2 điểm, giảm 5% điểm đổi quà",
            earn_multiplier_pct=200,
            reward_discount_pct=5,
        ),
    ]
    rewards = [
        Reward(name="Cà phê sữa đá", points_cost=100, validity_days=30),
        Reward(name="Bánh ngọt", points_cost=60, validity_days=14, stock=2),
        Reward(name="Voucher 100.000đ", points_cost=1000, validity_days=60, per_member_limit=1),
    ]
    stores = [
        Store(code="Q1", name="Quận 1", kind="retail", earn_points=10, earn_unit_amount=100_000),
        Store(code="OUTLET", name="Outlet", kind="outlet", earn_points=5, earn_unit_amount=100_000),
    ]
    session.add_all([*tiers, *rewards, *stores])
    session.commit()
    return {
        "tiers": {t.name: t for t in tiers},
        "rewards": {r.name: r for r in rewards},
        "stores": {s.code: s for s in stores},
    }


class Console:
    """A browser-like client for the console: logs in and sends the CSRF token with every form."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()

    def csrf(self, path: str = "/login") -> str:
        import re

        html = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match, f"no CSRF token on {path}"
        return match[1]

    def login(self, username: str, password: str = "mat-khau-123") -> Any:
        return self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": self.csrf("/login")}
        )

    def post(self, path: str, data: dict[str, Any] | None = None, page: str = "/counter/", **kw: Any) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.csrf(page)}, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)


def credit(session: Any, m: Any, points: int, key: str, when: Any = None) -> None:
    """Give `m` points as an owner's gift (an adjustment that expires by the default rules), committed."""
    from datetime import UTC, datetime

    from loyalty import ledger
    from loyalty.program import ProgramRules

    when = when or datetime.now(UTC)
    ledger.adjust(
        session,
        m.id,
        points,
        key=key,
        reason="tặng điểm",
        actor=ledger.SYSTEM,
        now=when,
        expires_at=ProgramRules().expiry_for(when),
    )
    session.commit()
