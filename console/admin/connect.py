"""Kết nối Zalo OA (owners): connect the OA by OAuth v4 + PKCE (zalo.oauth) and a checklist with live status.

Each step says exactly what to paste where in Zalo's developer console, and turns green by itself: the page
polls /admin/zalo/status, which reads the same facts (settings, the token row, the last event, the follower
sync). Tokens from the environment keep working and win when they change (zalo.tokens).
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as WerkzeugResponse

from console.auth import counter_actor, login_required
from console.counter.operations import audit
from console.qr import qr_svg
from jobs.followers import follower_summary, start_sync
from loyalty.program import load_rules
from loyalty.shop import profile_for_update, shop_profile
from models import Role, WebhookEvent, utcnow
from tichdiem.config import Settings
from tichdiem.config import oa_link as config_oa_link
from tichdiem.extensions import get_session, get_settings, services
from zalo.errors import ZaloError
from zalo.oauth import code_challenge, code_verifier, permission_url
from zalo.tokens import DatabaseTokenStore, TokenStatus

bp = Blueprint("connect", __name__, url_prefix="/admin/zalo")
STATE_KEY = "zalo_oauth_state"
# The events the bot handles; ticked one by one in Zalo's webhook settings (reference §1.1).
WEBHOOK_EVENTS = (
    "follow",
    "unfollow",
    "user_send_text",
    "user_send_image",
    "user_send_sticker",
    "user_submit_info",
    "user_click_chatnow",
    "user_received_message",
    "user_seen_message",
)
VERIFICATION = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    done: bool
    detail: str


@bp.get("/")
@login_required(Role.OWNER)
def index() -> str:
    settings = get_settings()
    return render_template(
        "console/connect.html",
        steps=checklist(get_session(), settings, _token_status(), utcnow()),
        callback_url=callback_url(settings),
        challenge=code_challenge(_verifier(settings)),
        webhook_url=f"{settings.public_url.rstrip('/')}/webhooks/zalo",
        events=WEBHOOK_EVENTS,
        app_ready=bool(settings.zalo_app_id and settings.zalo_app_secret),
        profile=shop_profile(get_session()),
        settings=settings,
    )


@bp.get("/status")
@login_required(Role.OWNER)
def status() -> Response:
    steps = checklist(get_session(), get_settings(), _token_status(), utcnow())
    return jsonify({"steps": [asdict(s) for s in steps]})


@bp.post("/connect")
@login_required(Role.OWNER)
def connect() -> WerkzeugResponse:
    """To Zalo's OA permission page, with a state only this browser session knows (no login CSRF: nobody can
    make the owner's console take a code for the wrong OA)."""
    settings = get_settings()
    if not (settings.zalo_app_id and settings.zalo_app_secret):
        flash("Chưa có ZALO_APP_ID và ZALO_APP_SECRET: đặt hai biến này rồi khởi động lại ứng dụng.", "error")
        return redirect(url_for("connect.index"))
    state = secrets.token_urlsafe(24)
    session[STATE_KEY] = state
    url = permission_url(
        settings.zalo_oauth_url,
        app_id=settings.zalo_app_id,
        redirect_uri=callback_url(settings),
        challenge=code_challenge(_verifier(settings)),
        state=state,
    )
    return redirect(url)


@bp.get("/callback")
@login_required(Role.OWNER)
def callback() -> WerkzeugResponse:
    """Zalo sends the owner back here with ?code=…&oa_id=…&state=…: exchange the code, keep the pair."""
    settings, db = get_settings(), get_session()
    expected_state = session.pop(STATE_KEY, None)
    given_state = request.args.get("state", "")
    if not expected_state or not hmac.compare_digest(given_state.encode(), str(expected_state).encode()):
        flash('Liên kết kết nối đã hết hạn hoặc không phải do bạn mở. Hãy bấm "Kết nối Zalo OA" lại.', "error")
        return redirect(url_for("connect.index"))
    oa_id = request.args.get("oa_id", "")[:32]
    if settings.zalo_oa_id and oa_id and oa_id != settings.zalo_oa_id:
        flash(f"Bạn vừa cấp quyền cho OA {oa_id}, nhưng ứng dụng được cấu hình cho OA {settings.zalo_oa_id}.", "error")
        return redirect(url_for("connect.index"))
    code = request.args.get("code", "")
    if not code:
        flash("Zalo không trả về mã cấp quyền (bạn đã từ chối?). Hãy thử lại.", "error")
        return redirect(url_for("connect.index"))
    try:
        pair = services().zalo.exchange_code(code, _verifier(settings))
    except ZaloError as exc:
        flash(f"Zalo từ chối đổi mã cấp quyền: {exc}. Kiểm tra URL callback và code challenge đã lưu.", "error")
        return redirect(url_for("connect.index"))
    tokens = services().zalo.tokens
    if not isinstance(tokens, DatabaseTokenStore):
        flash("Ứng dụng này không lưu token vào cơ sở dữ liệu.", "error")
        return redirect(url_for("connect.index"))
    tokens.store_granted(pair)
    now, by = utcnow(), counter_actor()
    profile = profile_for_update(db, now)
    profile.connected_oa_id, profile.connected_at, profile.connected_by = oa_id or None, now, by.actor
    sync, _ = start_sync(db, "connect", now)  # followers from before the bot: known from the first day
    audit(db, by, "zalo_connect", now, details={"oa_id": oa_id, "follower_sync": sync.id})
    db.commit()
    flash("Đã kết nối Zalo OA. Đang đồng bộ danh sách người quan tâm.", "success")
    return redirect(url_for("connect.index"))


@bp.post("/verification")
@login_required(Role.OWNER)
def verification() -> WerkzeugResponse:
    code = request.form.get("code", "").strip()
    # Zalo's file is zalo_verifier<CODE>.html: people paste the file name as often as the code.
    code = code.removeprefix("zalo_verifier").removesuffix(".html")
    if code and not VERIFICATION.match(code):
        flash("Mã xác thực chỉ gồm chữ và số (lấy từ tên tệp zalo_verifier….html hoặc thẻ meta).", "error")
        return redirect(url_for("connect.index"))
    db, now = get_session(), utcnow()
    profile_for_update(db, now).zalo_site_verification = code
    audit(db, counter_actor(), "zalo_site_verification", now, details={"code": code})
    db.commit()
    flash("Đã lưu mã xác thực tên miền." if code else "Đã xóa mã xác thực tên miền.", "success")
    return redirect(url_for("connect.index"))


def callback_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}{url_for('connect.callback')}"


def checklist(db: Session, settings: Settings, token: TokenStatus | None, now: datetime) -> list[Step]:
    """The steps of connecting an OA, each with whether it is done as far as this server can tell."""
    profile = shop_profile(db)
    https = settings.public_url.startswith("https://")
    connected_at = profile.connected_at if profile else None
    last_event = db.scalar(select(func.max(WebhookEvent.received_at)))
    followers = follower_summary(db)
    last_sync: Any = followers["last"]
    token_detail = "Chưa kết nối."
    if token is not None:
        ends = token.refresh_token_expires_at()
        token_detail = "Đã có token" + (f"; cần kết nối lại trước {ends:%d/%m/%Y}" if ends else "") + "."
        if token.refresh_failed_at is not None:
            token_detail = f"Làm mới token thất bại: {token.refresh_error}. Hãy kết nối lại."
    return [
        Step(
            "https",
            "Địa chỉ HTTPS công khai",
            https,
            f"PUBLIC_URL = {settings.public_url}" + ("" if https else " (Zalo chỉ nhận tên miền HTTPS)"),
        ),
        Step(
            "app",
            "Ứng dụng Zalo (ZALO_APP_ID, ZALO_APP_SECRET, ZALO_OA_SECRET_KEY)",
            bool(settings.zalo_app_id and settings.zalo_app_secret and settings.zalo_oa_secret_key),
            "Lấy ở developers.zalo.me → ứng dụng của bạn; đặt vào tệp .env rồi khởi động lại.",
        ),
        Step(
            "domain",
            "Xác thực tên miền",
            bool(profile and profile.zalo_site_verification),
            "Dán mã xác thực bên dưới; ứng dụng phục vụ tệp zalo_verifier….html và thẻ meta cho Zalo kiểm tra.",
        ),
        Step(
            "token",
            "Cấp quyền OA cho ứng dụng",
            token is not None and token.refresh_failed_at is None,
            token_detail,
        ),
        Step(
            "event",
            "Nhận được tin từ Zalo",
            last_event is not None and (connected_at is None or last_event >= connected_at),
            f"Tin gần nhất: {_local(last_event, settings)}." if last_event else "Hãy nhắn thử một tin cho OA từ Zalo.",
        ),
        Step(
            "followers",
            "Đồng bộ người quan tâm",
            last_sync is not None and last_sync.status == "done",
            f"{followers['followers']} người quan tâm"
            + (f"; lần đồng bộ gần nhất {_local(last_sync.finished_at, settings)}." if last_sync else "."),
        ),
    ]


def _local(moment: datetime | None, settings: Settings) -> str:
    return moment.astimezone(settings.tz).strftime("%H:%M %d/%m/%Y") if moment else "—"


def _token_status() -> TokenStatus | None:
    tokens = services().zalo.tokens
    return tokens.status() if isinstance(tokens, DatabaseTokenStore) else None


def _verifier(settings: Settings) -> str:
    return code_verifier(settings.secret_key, settings.zalo_code_verifier)


@bp.get("/poster")
@login_required(Role.MARKETER)
def poster() -> str:
    """A counter poster (A5, print-ready): the OA's QR code and how to join and earn. Printing is the browser's;
    "Lưu thành PDF" in the print dialog gives a PDF."""
    settings, profile = get_settings(), shop_profile(get_session())
    oa_link = settings.oa_link or config_oa_link(profile.connected_oa_id if profile else None)
    return render_template(
        "console/poster.html",
        shop_name=services().shop_name(),
        oa_link=oa_link,
        qr=Markup(qr_svg(oa_link)) if oa_link else None,  # SVG drawn by qrcode from our own link
        rules=load_rules(get_session()),
    )
