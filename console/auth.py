"""Staff login, logout and role checks for the console (session cookie; CSRF on every form)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from console.operations import CounterActor
from console.staff import StaffError, authenticate
from console.throttle import login_failures
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
    throttle, ip = login_failures(services().redis), request.remote_addr or "?"
    if throttle.blocked(ip):
        flash("Quá nhiều lần đăng nhập sai từ máy này. Vui lòng thử lại sau 15 phút.", "error")
        return render_template("console/login.html"), 429  # type: ignore[return-value]
    try:
        staff = authenticate(db, request.form.get("username", ""), request.form.get("password", ""), utcnow())
    except StaffError as exc:
        db.commit()  # keep the failed-attempt count
        throttle.failed(ip)
        flash(str(exc), "error")
        return render_template("console/login.html", username=request.form.get("username", "")), 401  # type: ignore[return-value]
    db.commit()
    session.clear()
    session["staff_id"] = staff.id
    session.permanent = True
    next_url = request.args.get("next", "")
    if next_url.startswith("/") and not next_url.startswith("//"):
        return redirect(next_url)
    return redirect(url_for(HOME_BY_ROLE.get(Role(staff.role), "auth.welcome")))


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    session.clear()
    flash("Đã đăng xuất.", "info")
    return redirect(url_for("auth.login_form"))


@bp.get("/")
def welcome() -> str | WerkzeugResponse:
    staff = load_staff()
    if staff is None:
        return redirect(url_for("auth.login_form"))
    return render_template("console/welcome.html", staff=staff)


def load_staff() -> Staff | None:
    if "staff" not in g:
        staff_id = session.get("staff_id")
        staff = get_session().get(Staff, staff_id) if staff_id else None
        g.staff = staff if staff is not None and staff.is_active else None
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
