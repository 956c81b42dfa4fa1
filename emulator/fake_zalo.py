"""The fake Zalo OpenAPI and OAuth, answering in Zalo's envelope (errors with HTTP 200), so the real client,
its retries, token refresh and fallbacks run exactly as against Zalo.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as WerkzeugResponse

from emulator.state import EmulatorState, ZbsTemplate
from zalo.oauth import code_challenge

bp = Blueprint("fake_zalo", __name__, url_prefix="/_emulator")
MAX_IMAGE = 1_000_000
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")  # Zalo's night rules are Vietnam's nights


def state() -> EmulatorState:
    result: EmulatorState = current_app.extensions["tichdiem.emulator"]
    return result


def _envelope(data: dict[str, Any] | None = None, error: int = 0, message: str = "Success") -> Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if data is not None:
        body["data"] = data
    return jsonify(body)


def _guard(business: bool = False) -> Response | None:
    """Token check and injected failures, as Zalo would answer them (business.openapi says -124)."""
    if request.headers.get("access_token") != state().access_token:
        return _envelope(error=-124 if business else -216, message="Access token is invalid")
    failure = state().take_failure(request.path)
    if failure is not None:
        return _envelope(error=failure.code, message=failure.message)
    return None


@bp.post("/openapi/v3.0/oa/message/cs")
def send_message() -> Response:
    refused = _guard()
    if refused is not None:
        return refused
    body = request.get_json(silent=True) or {}
    user_id = str(body.get("recipient", {}).get("user_id", ""))
    customer = state().customers.get(user_id)
    if customer is None or not customer.followed:
        return _envelope(error=-213, message="User has not followed OA")
    if not state().in_window(user_id):
        return _envelope(error=-230, message="User has not interacted with the OA in the last 7 days")
    if not state().in_free_window(user_id):  # 48 h-7 d: the package's quota pays for it
        with state().lock:
            if state().cs_quota_used >= state().cs_quota_total:
                return _envelope(error=-211, message="Out of quota")
            state().cs_quota_used += 1
    message = body.get("message") or {}
    text = str(message.get("text", ""))
    if len(text) > 2000:
        return _envelope(error=-201, message="text is too long")
    entry = _describe(message)
    message_id = secrets.token_hex(10)
    state().say(user_id, {"from": "oa", "msg_id": message_id, **entry})
    return _envelope({"message_id": message_id, "user_id": user_id})


@bp.post("/openapi/v3.0/oa/message/template")
def send_template() -> Response:
    """A ZBS template by UID: no tracking_id; some templates refuse UIDs (-249)."""
    refused = _guard()
    if refused is not None:
        return refused
    body = request.get_json(silent=True) or {}
    user_id = str(body.get("user_id", ""))
    if user_id not in state().customers:
        return _envelope(error=-213, message="User not found")
    template, problem = _checked_template(body)
    if problem is not None:
        return problem
    assert template is not None
    if not template.by_uid:
        return _envelope(error=-249, message="This template does not support sending by user_id")
    message_id = secrets.token_hex(10)
    _deliver(user_id, template, body.get("template_data") or {}, message_id)
    return _envelope({"message_id": message_id})


@bp.post("/openapi/v2.0/oa/tag/tagfollower")
@bp.post("/openapi/v2.0/oa/tag/rmfollowerfromtag")
def tag_follower() -> Response:
    """Tags are v2.0 only; tagfollower creates a tag that does not exist yet (reference §2.4)."""
    refused = _guard()
    if refused is not None:
        return refused
    body = request.get_json(silent=True) or {}
    user_id, tag = str(body.get("user_id", "")), str(body.get("tag_name", "")).strip()
    customer = state().customers.get(user_id)
    if not tag:
        return _envelope(error=-201, message="tag_name is required")
    if customer is None or not customer.followed:
        return _envelope(error=-213, message="User has not followed OA")
    with state().lock:
        tags = state().tags.setdefault(user_id, set())
        if request.path.endswith("/tagfollower"):
            tags.add(tag)
        else:
            tags.discard(tag)
    return _envelope({})


@bp.post("/openapi/v3.0/oa/quota/message")
def message_quota() -> Response:
    """The OA's consultation-message quota as one asset of its package (Zalo's exact shape is UNCERTAIN)."""
    refused = _guard()
    if refused is not None:
        return refused
    emulator = state()
    asset = {
        "asset_id": "demo-sub-quota",
        "quota_owner": "OA",
        "product_type": "cs",
        "quota_type": "sub_quota",
        "total": emulator.cs_quota_total,
        "remain": max(emulator.cs_quota_total - emulator.cs_quota_used, 0),
    }
    return jsonify({"error": 0, "message": "Success", "data": [asset]})


@bp.post("/business/message/template")
def send_template_by_phone() -> Response:
    """A ZBS template to a phone (business.openapi.zalo.me/message/template), the phone as "84…"."""
    refused = _guard(business=True)
    if refused is not None:
        return refused
    body = request.get_json(silent=True) or {}
    phone = str(body.get("phone", ""))
    if not (phone.startswith("84") and phone.isdigit() and 10 <= len(phone) <= 12):
        return _envelope(error=-108, message="Phone number is invalid")
    if len(str(body.get("tracking_id", ""))) > 48:
        return _envelope(error=-201, message="tracking_id is too long")
    template, problem = _checked_template(body)
    if problem is not None:
        return problem
    assert template is not None
    if template.tag == "PROMOTION" and _vietnam_night():
        return _envelope(error=-133, message="Promotion templates cannot be sent from 22:00 to 06:00")
    customer = state().customer_by_phone(phone)
    message_id = secrets.token_hex(10)
    if customer is not None:
        _deliver(customer.user_id, template, body.get("template_data") or {}, message_id)
    else:
        state().by_phone.setdefault(phone, []).append(
            {"template_id": template.template_id, **(body.get("template_data") or {})}
        )
    quota = {"dailyQuota": "500", "remainingQuota": "499"}
    return _envelope({"msg_id": message_id, "sent_time": str(int(time.time() * 1000)), "quota": quota})


@bp.get("/business/template/info/v2")
def template_info() -> Response:
    refused = _guard(business=True)
    if refused is not None:
        return refused
    template = state().templates.get(str(request.args.get("template_id", "")))
    if template is None:
        return _envelope(error=-201, message="Template is not found")
    return _envelope(
        {
            "templateId": template.template_id,
            "templateName": template.name,
            "status": template.status,
            "templateTag": template.tag,
            "listParams": template.params,
            "listButtons": [],
            "timeout": 7200000,
            "previewUrl": "",
            "templateQuality": "HIGH",
            "price": str(template.price),
        }
    )


@bp.post("/openapi/v3.0/oa/message/transaction")
@bp.post("/openapi/v3.0/oa/message/promotion")
def stopped_uid_messages() -> Response:
    """The UID transaction and promotion messages were stopped on 01/03/2026 (Zalo's doc banner, reference
    §2.1); the exact error Zalo gives now is not documented (UNCERTAIN): the emulator refuses them as an API
    the OA may not call. tichdiem never calls them."""
    return _envelope(error=-212, message="This API has been discontinued since 01/03/2026; use ZBS Template Message")


def _vietnam_night() -> bool:
    hour = datetime.now(VIETNAM).hour
    return hour >= 22 or hour < 6


def _checked_template(body: dict[str, Any]) -> tuple[ZbsTemplate | None, Response | None]:
    """The template and its data as Zalo checks them: enabled, every required parameter, lengths, types."""
    template = state().templates.get(str(body.get("template_id", "")))
    if template is None or template.status != "ENABLE":
        return None, _envelope(error=-201, message="Template is not found or not enabled")
    data = body.get("template_data") or {}
    if not isinstance(data, dict):
        return None, _envelope(error=-201, message="template_data is invalid")
    for param in template.params:
        value = data.get(param["name"])
        if value in (None, "") and param.get("require"):
            return None, _envelope(error=-201, message=f"Missing parameter {param['name']}")
        text = str(value or "")
        if len(text) > int(param.get("maxLength") or 10_000):
            return None, _envelope(error=-1121, message=f"Parameter {param['name']} is too long")
        if text and param.get("type") == "NUMBER" and not text.isdigit():
            return None, _envelope(error=-201, message=f"Parameter {param['name']} must be a number")
    unknown = set(data) - {p["name"] for p in template.params}
    if unknown:
        return None, _envelope(error=-201, message=f"Unknown parameter {sorted(unknown)[0]}")
    return template, None


def _deliver(user_id: str, template: ZbsTemplate, data: dict[str, Any], message_id: str) -> None:
    text = f"[{template.name}] " + ", ".join(f"{k}: {v}" for k, v in data.items())
    state().say(user_id, {"from": "oa", "kind": "template", "text": text, "msg_id": message_id})


@bp.post("/openapi/v2.0/oa/upload/image")
def upload_image() -> Response:
    refused = _guard()
    if refused is not None:
        return refused
    upload = request.files.get("file")
    if upload is None:
        return _envelope(error=-201, message="file is required")
    content = upload.read()
    if len(content) > MAX_IMAGE:
        return _envelope(error=-201, message="image must be at most 1MB")
    attachment_id = secrets.token_hex(12)
    state().uploads[attachment_id] = content
    return _envelope({"attachment_id": attachment_id})


@bp.get("/openapi/v3.0/oa/user/detail")
def user_detail() -> Response:
    refused = _guard()
    if refused is not None:
        return refused
    try:
        user_id = str(json.loads(request.args.get("data", "{}")).get("user_id", ""))
    except ValueError:
        return _envelope(error=-201, message="invalid data")
    customer = state().customers.get(user_id)
    if customer is None:
        return _envelope(error=-201, message="user not found")
    return _envelope(
        {
            "user_id": user_id,
            "display_name": customer.display_name,
            "user_alias": customer.display_name,
            "user_is_follower": customer.followed,
            "avatar": "",
            "avatars": {},
        }
    )


@bp.get("/openapi/v3.0/oa/user/getlist")
def user_getlist() -> Response:
    """The OA's followers, 50 a page at most, offset at most 9,951 (reference §2.4), oldest follower first."""
    refused = _guard()
    if refused is not None:
        return refused
    try:
        query = json.loads(request.args.get("data", "{}"))
        offset, count = int(query.get("offset", 0)), int(query.get("count", 5))
    except (ValueError, TypeError, AttributeError):
        return _envelope(error=-201, message="invalid data")
    if not 0 <= offset <= 9951 or not 1 <= count <= 50:
        return _envelope(error=-201, message="offset must be in [0, 9951] and count in [1, 50]")
    with state().lock:
        listed = [c for c in state().customers.values() if c.followed == bool(query.get("is_follower", True))]
    page = listed[offset : offset + count]
    return _envelope(
        {"total": len(listed), "count": len(page), "offset": offset, "users": [{"user_id": c.user_id} for c in page]}
    )


@bp.get("/oauth/v4/oa/permission")
def permission_page() -> Response | str:
    """Zalo's OA permission page: the OA admin sees which app asks, taps "Cho phép" and is sent back with a
    single-use code (10 minutes) and the OA id; an app id Zalo does not know gets an error page."""
    args = request.args
    if args.get("app_id") != _app_id() or not args.get("redirect_uri") or not args.get("code_challenge"):
        return Response("Ứng dụng không hợp lệ hoặc thiếu redirect_uri / code_challenge.", status=400)
    return render_template("emulator/permission.html", args=args, oa_name=_oa_name())


@bp.post("/oauth/v4/oa/permission")
def permission_granted() -> WerkzeugResponse:
    form = request.form
    if form.get("app_id") != _app_id():
        return Response("Ứng dụng không hợp lệ.", status=400)
    code = state().issue_code(form.get("code_challenge", ""), form.get("redirect_uri", ""))
    query = urlencode({"code": code, "oa_id": _settings().zalo_oa_id or "demo-oa", "state": form.get("state", "")})
    target = form.get("redirect_uri", "")
    return redirect(f"{target}{'&' if '?' in target else '?'}{query}")


@bp.post("/oauth/v4/oa/access_token")
def access_token() -> Response:
    """The code exchange and the refresh, one endpoint (reference §3). Error numbers other than -14014 are this
    emulator's own: Zalo's table for them is not public; the client only reads `error_name`."""
    if request.headers.get("secret_key") != _settings().zalo_app_secret:
        return jsonify({"error": -14002, "error_name": "Invalid app secret"})
    form = request.form
    if form.get("grant_type") == "authorization_code":
        issued = state().take_code(form.get("code", ""))
        if issued is None:
            return jsonify({"error": -14004, "error_name": "Invalid or expired code"})
        if code_challenge(form.get("code_verifier", "")) != issued[0]:
            return jsonify({"error": -14019, "error_name": "Invalid code verifier"})
    elif form.get("grant_type") != "refresh_token" or form.get("refresh_token") != state().refresh_token:
        return jsonify({"error": -14014, "error_name": "Invalid refresh token"})
    access, refresh = state().rotate_tokens()
    return jsonify({"access_token": access, "refresh_token": refresh, "expires_in": "90000"})


def _settings() -> Any:
    return current_app.extensions["tichdiem"].settings


def _app_id() -> str:
    return str(_settings().zalo_app_id)


def _oa_name() -> str:
    return str(_settings().shop_name)


def _describe(message: dict[str, Any]) -> dict[str, Any]:
    """What the chat page draws for a Zalo `message` object."""
    entry: dict[str, Any] = {"kind": "text", "text": str(message.get("text", ""))}
    payload = (message.get("attachment") or {}).get("payload") or {}
    if payload.get("template_type") == "request_user_info":
        element = (payload.get("elements") or [{}])[0]
        entry.update(kind="request_user_info", title=element.get("title", ""), subtitle=element.get("subtitle", ""))
    elif payload.get("template_type") == "media":
        element = (payload.get("elements") or [{}])[0]
        entry.update(kind="image", image=f"/_emulator/media/{element.get('attachment_id', '')}")
    buttons = payload.get("buttons") or []
    entry["buttons"] = [{"title": b.get("title", ""), "payload": b.get("payload", "")} for b in buttons]
    return entry
