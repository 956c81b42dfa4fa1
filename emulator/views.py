"""The emulator's chat page and its small JSON API. Every customer action becomes a signed webhook event
POSTed over HTTP to the real /webhooks/zalo, so the demo runs exactly the production path.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import requests
from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from emulator.fake_zalo import state
from emulator.state import Failure

bp = Blueprint("emulator", __name__, url_prefix="/_emulator")
DEMO_CUSTOMERS = [("Nguyễn Thu Hà", "0987654321", "12/05/1995"), ("Trần Minh Khoa", "0912345678", "")]
FOLLOWERS_BEFORE_THE_BOT = 30  # the demo OA is an established one: Zalo knows followers our app never saw


def add_demo_customers(established: bool) -> None:
    """The two customers the chat page starts with and, for the demo, the OA's earlier followers."""
    if state().customers:
        return
    for name, phone, birthday in DEMO_CUSTOMERS:
        state().add_customer(name, phone, birthday)
    if established:
        state().follow_before_the_bot(FOLLOWERS_BEFORE_THE_BOT)


@bp.get("/")
def chat_page() -> str:
    add_demo_customers(established=False)
    return render_template("emulator/chat.html", shop_name=current_app.extensions["tichdiem"].settings.shop_name)


@bp.get("/demo")
def side_by_side() -> str:
    """The chat and the cashier page next to each other: one person can play both sides."""
    return render_template("emulator/side_by_side.html")


@bp.get("/api/state")
def api_state() -> Response:
    emulator = state()
    with emulator.lock:
        customers = [
            {
                "user_id": c.user_id,
                "name": c.display_name,
                "phone": c.phone,
                "followed": c.followed,
                "in_window": emulator.in_window(c.user_id),
            }
            for c in emulator.customers.values()
        ]
        user_id = request.args.get("user", "")
        messages = list(emulator.transcripts.get(user_id, []))
    return jsonify(
        {
            "customers": customers,
            "messages": messages,
            "failures": [f.__dict__ for f in emulator.failures],
            "refreshes": emulator.refreshes,
        }
    )


@bp.post("/api/customers")
def api_add_customer() -> Response:
    body = request.get_json(silent=True) or {}
    name = str(body.get("name", "")).strip() or "Khách mới"
    customer = state().add_customer(name, str(body.get("phone", "")).strip(), str(body.get("birthday", "")))
    return jsonify({"user_id": customer.user_id})


@bp.post("/api/act")
def api_act() -> tuple[Response, int]:
    """follow | unfollow | text | share_info | chatnow | seen, as the customer."""
    body = request.get_json(silent=True) or {}
    customer = state().customers.get(str(body.get("user_id", ""))) or abort(404)
    action = str(body.get("action", ""))
    if action == "seen":
        statuses = [_post_webhook(e) for e in _receipts(customer)]
        return jsonify({"webhook_status": max(statuses, default=200)}), 200
    event = _event(action, customer, body)
    if event is None:
        return jsonify({"error": f"unknown action {action}"}), 400
    status = _post_webhook(event)
    return jsonify({"webhook_status": status}), 200


@bp.post("/api/fail")
def api_fail() -> Response:
    """Make the next `times` Zalo calls (optionally only to a path) fail with `code` (-230, -32, -216...)."""
    body = request.get_json(silent=True) or {}
    code = int(body.get("code", -32))
    messages = {
        -32: "Reached limit call api",
        -230: "User has not interacted in 7 days",
        -234: "Night ban",
        -216: "Access token is invalid",
        -100: "Attachment expired",
    }
    state().failures.append(
        Failure(
            code=code,
            message=messages.get(code, "error"),
            times=int(body.get("times", 1)),
            path=str(body.get("path", "")),
        )
    )
    return jsonify({"ok": True})


@bp.post("/api/expire-token")
def api_expire_token() -> Response:
    """Zalo revokes the current access token: the next call gets -216 and the client must refresh."""
    state().access_token = "revoked-" + state().access_token
    return jsonify({"ok": True})


@bp.post("/api/silence")
def api_silence() -> Response:
    """Pretend the customer last wrote 8 days ago (outside the 7-day consultation window)."""
    from datetime import UTC, datetime, timedelta

    customer = state().customers.get(str((request.get_json(silent=True) or {}).get("user_id", ""))) or abort(404)
    customer.last_interaction = datetime.now(UTC) - timedelta(days=8)
    return jsonify({"ok": True})


@bp.get("/media/<attachment_id>")
def media(attachment_id: str) -> Response:
    content = state().uploads.get(attachment_id)
    if content is None:
        abort(404)
    return Response(content, mimetype="image/png")


def _event(action: str, customer: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    settings = current_app.extensions["tichdiem"].settings
    base = {"app_id": settings.zalo_app_id, "timestamp": str(int(time.time() * 1000))}
    sender = {"sender": {"id": customer.user_id}, "recipient": {"id": settings.zalo_oa_id}}
    emulator = state()
    if action in ("follow", "unfollow"):
        customer.followed = action == "follow"
        if customer.followed:
            emulator.touch(customer.user_id)
        emulator.say(
            customer.user_id,
            {
                "from": "system",
                "kind": "text",
                "text": "Bạn đã quan tâm OA" if customer.followed else "Bạn đã bỏ quan tâm OA",
            },
        )
        return {
            **base,
            "oa_id": settings.zalo_oa_id,
            "follower": {"id": customer.user_id},
            "event_name": action,
            "source": "oa_profile",
        }
    if action == "text":
        text = str(body.get("text", ""))[:2000]
        emulator.touch(customer.user_id)
        emulator.say(customer.user_id, {"from": "user", "kind": "text", "text": text})
        return {
            **base,
            **sender,
            "event_name": "user_send_text",
            "message": {"text": text, "msg_id": f"emu{emulator.next_id()}{int(time.time() * 1000)}"},
        }
    if action == "share_info":
        emulator.touch(customer.user_id)
        phone = "84" + customer.phone.lstrip("0") if customer.phone.startswith("0") else customer.phone
        emulator.say(
            customer.user_id,
            {"from": "user", "kind": "text", "text": f"Đã chia sẻ: {customer.display_name}, {customer.phone}"},
        )
        info = {"name": customer.display_name, "phone": phone}
        if customer.birthday:
            info["user_dob"] = customer.birthday
        return {**base, **sender, "event_name": "user_submit_info", "info": info}
    if action == "chatnow":
        emulator.touch(customer.user_id)
        return {**base, "oa_id": settings.zalo_oa_id, "user_id": customer.user_id, "event_name": "user_click_chatnow"}
    return None


def _receipts(customer: Any) -> list[dict[str, Any]]:
    """The customer's phone got and showed the OA's new messages: a `user_received_message` for each (msg_id)
    and one `user_seen_message` for all (msg_ids, an array), with the OA as sender and the customer as
    recipient, as chatwoot's Zalo channel reads Zalo's receipts (reference §8)."""
    settings = current_app.extensions["tichdiem"].settings
    emulator = state()
    with emulator.lock:
        fresh = [m for m in emulator.transcripts.get(customer.user_id, []) if m.get("msg_id") and not m.get("seen")]
        for message in fresh:
            message["seen"] = True
    if not fresh:
        return []
    now = str(int(time.time() * 1000))
    parties = {
        "app_id": settings.zalo_app_id,
        "sender": {"id": settings.zalo_oa_id},
        "recipient": {"id": customer.user_id},
    }
    received = [
        {**parties, "event_name": "user_received_message", "message": {"msg_id": m["msg_id"]}, "timestamp": now}
        for m in fresh
    ]
    seen = {**parties, "event_name": "user_seen_message", "message": {"msg_ids": [m["msg_id"] for m in fresh]}}
    return [*received, {**seen, "timestamp": now}]


def _post_webhook(event: dict[str, Any]) -> int:
    settings = current_app.extensions["tichdiem"].settings
    raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    mac = hashlib.sha256(
        settings.zalo_app_id.encode() + raw + event["timestamp"].encode() + settings.webhook_secrets[0].encode()
    ).hexdigest()
    response = requests.post(
        f"{settings.public_url.rstrip('/')}/webhooks/zalo",
        data=raw,
        timeout=10,
        headers={"Content-Type": "application/json", "X-ZEvent-Signature": f"mac={mac}"},
    )
    return response.status_code
