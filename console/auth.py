"""Staff login, logout and role checks for the console (session cookie; CSRF on every form)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from console.actors import CounterActor
from console.staff import StaffError, authenticate, end_sessions
from console.throttle import account_guesses, login_failures
from models import Role, Staff, utcnow
from tichdiem.extensions import get_session, services

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
HOME_BY_ROLE = {Role.CASHIER: "counter.home", Role.OWNER: "admin.home", Role.MARKETER: "admin.home"}


@bp.get("/login")
def login_form() -> str:
    return render_template("console/login.html")


@bp.post("/login")
def login() -> str | WerkzeugResponse:
    db = get_session()
    username = request.form.get("username", "").strip().lower()[:80]
    ip = request.remote_addr or "?"
    per_ip, per_account = login_failures(services().redis), account_guesses(services().redis)
    if per_ip.blocked(ip) or per_account.blocked(f"{username}|{ip}"):
        flash("Quá nhiều lần đăng nhập sai từ máy này. Vui lòng thử lại sau 15 phút.", "error")
        return render_template("console/login.html", username=username), 429  # type: ignore[return-value]
    try:
        staff = authenticate(db, username, request.form.get("password", ""), utcnow())
    except StaffError as exc:
        db.commit()  # keep the failed-attempt count
        per_ip.failed(ip)
        per_account.failed(f"{username}|{ip}")
        flash(str(exc), "error")
        return render_template("console/login.html", username=username), 401  # type: ignore[return-value]
    db.commit()
    session.clear()
    session["staff_id"] = staff.id
    session["sv"] = staff.session_version
    session.permanent = True
    home = url_for(HOME_BY_ROLE.get(Role(staff.role), "auth.welcome"))
    return redirect(_safe_next(request.args.get("next", "")) or home)


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    staff = load_staff()
    if staff is not None:
        end_sessions(staff)  # a copied cookie dies with the one in this browser
        get_session().commit()
    session.clear()
    flash("Đã đăng xuất.", "info")
    return redirect(url_for("auth.login_form"))


def _safe_next(target: str) -> str | None:
    """A path on this site to go back to after login, or None: never another host.

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so "/%09/evil.com" (a tab)
    and "/%5C/evil.com" (a backslash) lead off-site although they start with one "/".
    """
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return None
    return target


@bp.get("/")
def welcome() -> str | WerkzeugResponse:
    """Staff go to their own home; anyone else gets the login page, which is the site's homepage and so also
    carries Zalo's domain verification meta tag once the owner saved its code."""
    from loyalty.shop import shop_profile

    staff = load_staff()
    if staff is not None:
        return redirect(url_for(HOME_BY_ROLE.get(Role(staff.role), "admin.home")))
    profile = shop_profile(get_session())
    return render_template("console/login.html", site_verification=profile.zalo_site_verification if profile else "")


def load_staff() -> Staff | None:
    """The logged-in staff member, or None: unknown, locked, or a session ended by logout or a new password."""
    if "staff" not in g:
        staff_id = session.get("staff_id")
        staff = get_session().get(Staff, staff_id) if isinstance(staff_id, int) else None
        current = staff is not None and staff.is_active and session.get("sv") == staff.session_version
        g.staff = staff if current else None
    result: Staff | None = g.staff
    return result


def login_required(*roles: Role) -> Callable[[F], F]:
    """Only logged-in staff with one of `roles` (owners may do everything)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            staff = load_staff()
            if staff is None:
                return redirect(url_for("auth.login_form", next=request.path))
            if roles and staff.role != Role.OWNER and staff.role not in roles:
                return Response(render_template("console/forbidden.html", staff=staff), status=403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def counter_actor() -> CounterActor:
    """The logged-in staff member as the actor of an action (ledger entries, audit_log), at their store."""
    staff = load_staff()
    assert staff is not None
    return CounterActor(
        actor=f"staff:{staff.id}",
        staff_id=staff.id,
        store_id=staff.store_id,
        is_owner=staff.role == Role.OWNER,
        ip=request.remote_addr,
    )
