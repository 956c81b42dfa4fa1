"""Charity in the console: the causes members give points to, their progress, and the page the shop publishes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import save_changes
from console.forms import read_date, read_int
from console.throttle import public_pages
from loyalty import charity
from loyalty.program import load_rules
from models import Cause, Role, utcnow
from tichdiem.extensions import get_session, services

bp = Blueprint("causes", __name__)

FIELDS = ("name", "description", "goal_points", "match_pct", "match_cap_points", "ends_on", "is_active")


@bp.get("/admin/causes/")
@login_required(Role.MARKETER)
def index() -> str:
    db = get_session()
    causes = list(db.scalars(select(Cause).order_by(Cause.is_active.desc(), Cause.id.desc())))
    return render_template(
        "console/causes.html",
        rows=[charity.progress(db, c) for c in causes],
        point_value=load_rules(db).point_value_vnd,
    )


@bp.route("/admin/causes/new", methods=["GET", "POST"], defaults={"cause_id": None})
@bp.route("/admin/causes/<int:cause_id>", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def edit(cause_id: int | None) -> str | Response:
    db = get_session()
    existing = db.get(Cause, cause_id) if cause_id is not None else None
    if cause_id is not None and existing is None:
        abort(404)
    values: dict[str, Any] = (
        {k: getattr(existing, k) for k in FIELDS} if existing else {"match_pct": 0, "is_active": True}
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _read_form(request.form)
        values = {**request.form.to_dict(), "is_active": request.form.get("is_active") == "on"}
        if not errors:
            cause = existing or Cause(created_at=utcnow())
            save_changes(db, counter_actor(), cause, fields, action="cause_change")
            db.commit()
            flash(f"Đã lưu chương trình “{cause.name}”.", "success")
            return redirect(url_for("causes.index"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template("console/cause_form.html", cause=existing, v=values, errors=errors)


@bp.get("/ung-ho/<int:cause_id>")
def public_report(cause_id: int) -> str:
    """The report the shop publishes (a link or a printout): totals and progress, no donor's name."""
    if public_pages(services().redis).over_limit(request.remote_addr or "?"):
        raise TooManyRequests("Quá nhiều yêu cầu từ máy này. Vui lòng thử lại sau một phút.")
    db = get_session()
    cause = db.get(Cause, cause_id)
    if cause is None:
        abort(404)
    return render_template(
        "console/cause_public.html",
        p=charity.progress(db, cause),
        shop_name=services().shop_name(),
        point_value=load_rules(db).point_value_vnd,
        now=utcnow(),
    )


def _read_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 120:
        errors["name"] = "Tên chương trình cần 1-120 ký tự."
    fields = {
        "name": name,
        "description": str(form.get("description", "")).strip()[:2000],
        "goal_points": read_int(form, "goal_points", "Mục tiêu (điểm)", 1, 10**9, errors),
        "match_pct": read_int(form, "match_pct", "Quán góp thêm (%)", 0, 1000, errors) or 0,
        "match_cap_points": read_int(form, "match_cap_points", "Quán góp tối đa (điểm)", 0, 10**9, errors),
        "ends_on": read_date(form, "ends_on", errors),
        "is_active": form.get("is_active") == "on",
    }
    return fields, errors
