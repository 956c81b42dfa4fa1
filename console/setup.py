"""First run: a new install with no owner yet shows a setup page instead of a login.

Only the shop's operator may claim a new install, never the first stranger to find its address: the page
opens to a browser on the server's own machine (loopback, no proxy in between) or to anyone who types the
one-time setup code the server writes to its log (and `tichdiem setup-code` prints). The code is derived
from SECRET_KEY, so every process shows the same one and nothing is stored; once an owner exists the page is
gone for good. The setup creates the owner, names the shop, writes a starting program (loyalty.presets) and
the stores, in one transaction, and signs the owner in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as WerkzeugResponse

from console.actors import CounterActor
from console.counter.operations import audit
from console.staff import StaffError, create_staff
from console.throttle import login_failures
from loyalty.presets import PRESETS, ProgramExists, apply_preset
from loyalty.shop import ShopNameError, clean_shop_name, profile_for_update
from models import Role, Staff, Store, utcnow
from tichdiem.extensions import get_session, get_settings, services

log = logging.getLogger(__name__)
bp = Blueprint("setup", __name__, url_prefix="/setup")
STORE_ROWS = 3
LOOPBACK = {"127.0.0.1", "::1"}
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
OWNER_SEEN = "tichdiem.owner_seen"
LOG_EVERY = 60.0  # seconds between two log lines with the setup code
CODE_LOGGED_AT = "tichdiem.setup_code_logged_at"


def setup_code(secret_key: str) -> str:
    """12 letters and digits in groups of four, easy to read from a log and type."""
    digest = hmac.new(secret_key.encode(), b"tichdiem first-run setup", hashlib.sha256).digest()
    code = base64.b32encode(digest).decode()[:12]
    return "-".join(code[i : i + 4] for i in range(0, 12, 4))


def needs_setup() -> bool:
    """No owner yet. Once one is seen, this process never asks the database again."""
    if current_app.extensions.get(OWNER_SEEN):
        return False
    owner = get_session().scalar(select(Staff.id).where(Staff.role == Role.OWNER).limit(1))
    if owner is not None:
        current_app.extensions[OWNER_SEEN] = True
    return owner is None


@bp.before_app_request
def _first_run_goes_to_setup() -> WerkzeugResponse | None:
    """An install with nobody at all goes to the setup page; one with staff but no owner (made with the CLI)
    keeps its login, and its setup page stays at /setup/."""
    if request.endpoint in ("auth.welcome", "auth.login_form") and needs_setup() and not _anyone():
        return redirect(url_for("setup.start"))
    return None


def _anyone() -> bool:
    return get_session().scalar(select(Staff.id).limit(1)) is not None


def _from_this_machine() -> bool:
    """A browser on the server itself. Behind a reverse proxy on the same machine every request comes from
    loopback, so a request that carries any forwarding header never counts as local."""
    return request.remote_addr in LOOPBACK and not any(h in request.headers for h in PROXY_HEADERS)


def _allowed() -> bool:
    return _from_this_machine() or session.get("setup_code_ok") is True


@bp.get("/")
def start() -> str | WerkzeugResponse:
    if not needs_setup():
        return redirect(url_for("auth.login_form"))
    if not _allowed():
        _log_code()
        return render_template("console/setup_code.html")
    return render_template("console/setup.html", presets=PRESETS, form={}, store_rows=range(STORE_ROWS))


@bp.post("/code")
def check_code() -> str | WerkzeugResponse:
    if not needs_setup():
        return redirect(url_for("auth.login_form"))
    ip = request.remote_addr or "?"
    guesses = login_failures(services().redis)
    if guesses.blocked(ip):
        flash("Quá nhiều lần nhập sai mã. Vui lòng thử lại sau 15 phút.", "error")
        return render_template("console/setup_code.html"), 429  # type: ignore[return-value]
    typed = "".join(request.form.get("code", "").upper().split()).replace("-", "")
    expected = setup_code(get_settings().secret_key).replace("-", "")
    if not hmac.compare_digest(typed.encode(), expected.encode()):
        guesses.failed(ip)
        _log_code()
        flash("Mã cài đặt không đúng. Mã nằm trong nhật ký (log) của máy chủ.", "error")
        return render_template("console/setup_code.html"), 403  # type: ignore[return-value]
    session["setup_code_ok"] = True
    return redirect(url_for("setup.start"))


@dataclass(frozen=True)
class StoreRow:
    code: str
    name: str
    earn_points: int | None
    per_amount: int | None


@bp.post("/")
def finish() -> str | WerkzeugResponse:
    if not needs_setup():
        return redirect(url_for("auth.login_form"))
    if not _allowed():
        return redirect(url_for("setup.start"))
    form = request.form
    try:
        owner, stores, preset, shop_name = _read_form()
        staff = _set_up(owner, stores, preset, shop_name)
    except SetupError as exc:
        get_session().rollback()
        flash(str(exc), "error")
        page = render_template("console/setup.html", presets=PRESETS, form=form, store_rows=range(STORE_ROWS))
        return page, 400  # type: ignore[return-value]
    current_app.extensions[OWNER_SEEN] = True
    services().shop_name.forget()
    session.clear()
    session["staff_id"], session["sv"] = staff.id, staff.session_version
    session.permanent = True
    flash(f"Đã tạo cửa hàng {shop_name}. Bước tiếp theo: kết nối Zalo OA.", "success")
    return redirect(url_for("connect.index"))


class SetupError(ValueError):
    """A reason in Vietnamese, shown above the form (which keeps what was typed)."""


@dataclass(frozen=True)
class OwnerForm:
    username: str
    name: str
    password: str


def _read_form() -> tuple[OwnerForm, list[StoreRow], str, str]:
    form = request.form
    if form.get("password", "") != form.get("password2", ""):
        raise SetupError("Hai lần nhập mật khẩu không giống nhau.")
    preset = form.get("preset", "")
    if preset not in PRESETS:
        raise SetupError("Hãy chọn một chương trình khởi đầu.")
    try:
        shop_name = clean_shop_name(form.get("shop_name", ""))
    except ShopNameError as exc:
        raise SetupError(str(exc)) from None
    stores = [row for i in range(STORE_ROWS) if (row := _store_row(i)) is not None]
    if not stores:
        raise SetupError("Hãy thêm ít nhất một cửa hàng (mã và tên).")
    if len({s.code for s in stores}) != len(stores):
        raise SetupError("Mỗi cửa hàng cần một mã riêng.")
    owner = OwnerForm(form.get("username", ""), form.get("name", ""), form.get("password", ""))
    return owner, stores, preset, shop_name


def _store_row(i: int) -> StoreRow | None:
    form = request.form
    code = form.get(f"store_code_{i}", "").strip().upper()
    name = " ".join(form.get(f"store_name_{i}", "").split())
    if not code and not name:
        return None
    if not code or not name or len(code) > 32 or len(name) > 200 or not code.replace("-", "").isalnum():
        raise SetupError(f"Cửa hàng {i + 1}: cần mã (chữ, số, tối đa 32 ký tự) và tên (tối đa 200 ký tự).")
    points, per = form.get(f"store_points_{i}", "").strip(), form.get(f"store_per_{i}", "").strip()
    if not points and not per:
        return StoreRow(code, name, None, None)
    if not (points.isdigit() and per.isdigit()) or int(per) <= 0 or int(points) > 1_000 or int(per) > 100_000_000:
        raise SetupError(f"Cửa hàng {i + 1}: mức tích điểm riêng là hai số, ví dụ 1 điểm mỗi 10000đ.")
    return StoreRow(code, name, int(points), int(per))


def _set_up(owner: OwnerForm, stores: list[StoreRow], preset: str, shop_name: str) -> Staff:
    db, now = get_session(), utcnow()
    profile = profile_for_update(db, now)
    if profile.set_up_at is not None:
        raise SetupError("Cửa hàng đã được cài đặt.")
    profile.name, profile.set_up_at = shop_name, now
    try:
        staff = create_staff(
            db, username=owner.username, password=owner.password, role=Role.OWNER, name=owner.name.strip()
        )
        apply_preset(db, PRESETS[preset], by=f"staff:{staff.id}", now=now)
    except StaffError as exc:
        raise SetupError(str(exc)) from None
    except ProgramExists:
        raise SetupError("Cơ sở dữ liệu đã có chương trình; hãy đăng nhập hoặc dùng một cơ sở dữ liệu mới.") from None
    db.add_all(
        Store(code=s.code, name=s.name, kind="retail", earn_points=s.earn_points, earn_unit_amount=s.per_amount)
        for s in stores
    )
    by = CounterActor(
        actor=f"staff:{staff.id}", staff_id=staff.id, store_id=None, is_owner=True, ip=request.remote_addr
    )
    audit(db, by, "first_run_setup", now, details={"preset": preset, "stores": [s.code for s in stores]})
    try:
        db.commit()
    except IntegrityError:  # a second setup raced this one and committed first
        db.rollback()
        raise SetupError("Cửa hàng vừa được cài đặt từ một trình duyệt khác; hãy đăng nhập.") from None
    log.info("setup: shop %r set up with the %s program and %d store(s)", shop_name, preset, len(stores))
    return staff


def _log_code() -> None:
    """At most once a minute per app: a stranger reloading the page cannot flood the log."""
    last = current_app.extensions.get(CODE_LOGGED_AT)
    if last is not None and time.monotonic() - last < LOG_EVERY:
        return
    current_app.extensions[CODE_LOGGED_AT] = time.monotonic()
    log.warning(
        "tichdiem: first-run setup code: %s (type it on the /setup page; also: tichdiem setup-code)",
        setup_code(get_settings().secret_key),
    )
