"""Paid membership plans in the console: what the shop sells, who holds one now, and what it brought in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import save_changes
from console.forms import read_int
from loyalty import vip
from models import Member, Role, Tier, VipMembership, VipPlan, utcnow
from tichdiem.extensions import get_session, get_settings

bp = Blueprint("vip_plans", __name__, url_prefix="/admin/vip")

FIELDS = ("name", "price", "duration_days", "tier_id", "benefits", "is_active")
MEMBERS_SHOWN = 100


@bp.get("/")
@login_required(Role.MARKETER)
def index() -> str:
    db = get_session()
    now = utcnow()
    month_start = now.astimezone(get_settings().tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    holders = db.execute(
        select(VipMembership, Member)
        .join(Member, Member.id == VipMembership.member_id)
        .where(VipMembership.starts_at <= now, VipMembership.ends_at > now)
        .order_by(VipMembership.ends_at)
        .limit(MEMBERS_SHOWN)
    ).all()
    return render_template(
        "console/vip_plans.html",
        plans=list(db.scalars(select(VipPlan).order_by(VipPlan.is_active.desc(), VipPlan.price))),
        figures=vip.figures(db, now, month_start),
        tiers={t.id: t for t in db.scalars(select(Tier))},
        holders=holders,
        plan_names={p.id: p.name for p in db.scalars(select(VipPlan))},
    )


@bp.route("/plans/new", methods=["GET", "POST"], defaults={"plan_id": None})
@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def edit(plan_id: int | None) -> str | Response:
    db = get_session()
    existing = db.get(VipPlan, plan_id) if plan_id is not None else None
    if plan_id is not None and existing is None:
        abort(404)
    values: dict[str, Any] = (
        {k: getattr(existing, k) for k in FIELDS} if existing else {"duration_days": 180, "is_active": True}
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _read_form(request.form)
        if fields["tier_id"] is None or db.get(Tier, fields["tier_id"]) is None:
            errors["tier_id"] = "Chọn hạng khách được giữ khi mua gói."
        values = {**request.form.to_dict(), "is_active": request.form.get("is_active") == "on"}
        if not errors:
            plan = existing or VipPlan(created_at=utcnow())
            save_changes(db, counter_actor(), plan, fields, action="vip_plan_change")
            db.commit()
            flash(f"Đã lưu gói “{plan.name}”.", "success")
            return redirect(url_for("vip_plans.index"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template(
        "console/vip_plan_form.html",
        plan=existing,
        v=values,
        errors=errors,
        tiers=list(db.scalars(select(Tier).order_by(Tier.threshold))),
    )


def _read_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 100:
        errors["name"] = "Tên gói cần 1-100 ký tự."
    tier = str(form.get("tier_id", ""))
    fields = {
        "name": name,
        "price": read_int(form, "price", "Giá (đ)", 0, 100_000_000, errors, optional=False),
        "duration_days": read_int(form, "duration_days", "Thời hạn (ngày)", 1, 3650, errors, optional=False),
        "tier_id": int(tier) if tier.isdigit() and len(tier) < 19 else None,
        "benefits": str(form.get("benefits", "")).strip()[:1000],
        "is_active": form.get("is_active") == "on",
    }
    return fields, errors
