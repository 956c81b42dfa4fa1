"""Tiers and the rewards catalog: validated forms, every change logged with what it was before."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import audit, save_changes
from console.forms import read_date, read_int
from loyalty.program import Promotion, load_rules, save_rules
from models import Member, Reward, Role, Tier, TierEvent, Voucher, utcnow
from tichdiem.extensions import get_session, get_settings

bp = Blueprint("catalog", __name__, url_prefix="/admin")

WEEKDAYS = ["Thứ 2", "Thứ 3", "Thứ 4", "Thứ 5", "Thứ 6", "Thứ 7", "Chủ nhật"]
TIER_FIELDS = ("name", "threshold", "earn_multiplier_pct", "reward_discount_pct", "benefits")
REWARD_FIELDS = (
    "name",
    "description",
    "points_cost",
    "stock",
    "validity_days",
    "per_member_limit",
    "active_from",
    "active_until",
    "min_tier_id",
    "is_active",
)


@bp.route("/tiers", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def tiers() -> str | Response:
    """All tiers in one table (and a blank row to add one); saved together so the ladder stays consistent."""
    db = get_session()
    current = list(db.scalars(select(Tier).order_by(Tier.threshold)))
    errors: dict[str, str] = {}
    if request.method == "POST":
        rows, errors = _tier_rows(request.form, current)
        if not errors:
            errors = _check_ladder(db, rows, current)
        if not errors:
            diff = _apply_tiers(db, rows, current)
            if not diff:  # saved as it was: nothing to record
                flash("Các hạng không có gì thay đổi.", "info")
                return redirect(url_for("catalog.tiers"))
            audit(db, counter_actor(), "tier_change", utcnow(), details=diff)
            db.commit()
            flash(f"Đã lưu các hạng ({len(diff)} thay đổi).", "success")
            flash("Thành viên lên hạng theo mức mới ở lần tích điểm tới; xuống hạng khi xét hạng hằng tháng.", "info")
            return redirect(url_for("catalog.tiers"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    members = dict(db.execute(select(Member.tier_id, func.count()).group_by(Member.tier_id)).all())
    return render_template("console/tiers.html", tiers=current, form=request.form, errors=errors, members=members)


@bp.get("/rewards")
@login_required(Role.MARKETER)
def rewards() -> str:
    db = get_session()
    issued = dict(db.execute(select(Voucher.reward_id, func.count()).group_by(Voucher.reward_id)).all())
    return render_template(
        "console/rewards.html",
        rewards=list(db.scalars(select(Reward).order_by(Reward.is_active.desc(), Reward.points_cost))),
        tiers={t.id: t for t in db.scalars(select(Tier))},
        issued=issued,
        timedelta=timedelta,
    )


@bp.route("/rewards/new", methods=["GET", "POST"], defaults={"reward_id": None})
@bp.route("/rewards/<int:reward_id>", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def reward(reward_id: int | None) -> str | Response:
    db = get_session()
    existing = db.get(Reward, reward_id) if reward_id is not None else None
    if reward_id is not None and existing is None:
        abort(404)
    tz = get_settings().tz
    values = _reward_values(existing, tz) if existing else {"validity_days": 30, "is_active": True}
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _reward_fields(request.form, tz)
        if fields["min_tier_id"] is not None and db.get(Tier, fields["min_tier_id"]) is None:
            errors["min_tier_id"] = "Hạng tối thiểu không tồn tại."
        values = {**request.form.to_dict(), "is_active": request.form.get("is_active") == "on"}
        if not errors:
            target = existing or Reward(created_at=utcnow())
            save_changes(db, counter_actor(), target, fields, action="reward_change")
            db.commit()
            flash(f"Đã lưu quà “{target.name}”.", "success")
            return redirect(url_for("catalog.rewards"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template(
        "console/reward_form.html",
        r=existing,
        v=values,
        errors=errors,
        tiers=list(db.scalars(select(Tier).order_by(Tier.threshold))),
    )


@bp.route("/promotions", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def promotions() -> str | Response:
    """Point multipliers by date range and/or weekday ("x2 on Mondays"); the best one of the day applies."""
    db = get_session()
    rules = load_rules(db)
    errors: dict[str, str] = {}
    if request.method == "POST":
        promos, errors = _promotions_from(request.form, len(rules.promotions))
        if not errors:
            before = [_promotion_text(p) for p in rules.promotions]
            save_rules(db, replace(rules, promotions=tuple(promos)), updated_by=counter_actor().actor)
            after = [_promotion_text(p) for p in promos]
            audit(db, counter_actor(), "program_change", utcnow(), details={"promotions": [before, after]})
            db.commit()
            flash(f"Đã lưu {len(promos)} khuyến mãi tích điểm.", "success")
            return redirect(url_for("catalog.promotions"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template(
        "console/promotions.html", promos=rules.promotions, form=request.form, errors=errors, weekdays=WEEKDAYS
    )


def _promotions_from(form: Any, existing: int) -> tuple[list[Promotion], dict[str, str]]:
    errors: dict[str, str] = {}
    promos = []
    for key in [str(i) for i in range(existing)] + ["new"]:
        name = str(form.get(f"name_{key}", "")).strip()
        if (key == "new" and not name) or form.get(f"delete_{key}") == "on":
            continue
        if not name or len(name) > 100:
            errors[f"name_{key}"] = "Tên khuyến mãi cần 1-100 ký tự."
        multiplier = read_int(form, f"multiplier_pct_{key}", "Hệ số (%)", 101, 1000, errors, optional=False)
        starts, ends = read_date(form, f"starts_on_{key}", errors), read_date(form, f"ends_on_{key}", errors)
        if starts and ends and ends < starts:
            errors[f"ends_on_{key}"] = "Ngày kết thúc phải sau ngày bắt đầu."
        days = tuple(sorted(int(d) for d in form.getlist(f"weekdays_{key}") if d in "0123456"))
        if not (starts or ends or days):
            errors[f"name_{key}"] = "Chọn ngày áp dụng: khoảng ngày và/hoặc thứ trong tuần."
        promos.append(Promotion(name, multiplier or 200, starts, ends, days))
    return promos, errors


def _promotion_text(promo: Promotion) -> str:
    return (
        f"{promo.name} x{promo.multiplier_pct / 100:g} {promo.starts_on or ''}..{promo.ends_on or ''} {promo.weekdays}"
    )


# --- tiers ---------------------------------------------------------------------------------------------


def _tier_rows(form: Any, current: list[Tier]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One dict per kept or new row: {"id" (None for new), "name", "threshold", ...}."""
    errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for key in [str(t.id) for t in current] + ["new"]:
        name = str(form.get(f"name_{key}", "")).strip()
        if key == "new" and not name:
            continue  # the blank row was left blank
        if form.get(f"delete_{key}") == "on":
            rows.append({"id": int(key), "delete": True})
            continue
        if not name or len(name) > 60:
            errors[f"name_{key}"] = "Tên hạng cần 1-60 ký tự."
        row = {
            "id": None if key == "new" else int(key),
            "name": name,
            "threshold": read_int(form, f"threshold_{key}", "Điểm cần đạt", 0, 10**9, errors, optional=False),
            "earn_multiplier_pct": read_int(
                form, f"earn_multiplier_pct_{key}", "Hệ số tích (%)", 100, 1000, errors, optional=False
            ),
            "reward_discount_pct": read_int(
                form, f"reward_discount_pct_{key}", "Giảm điểm đổi quà (%)", 0, 90, errors, optional=False
            ),
            "benefits": str(form.get(f"benefits_{key}", "")).strip()[:1000],
            "key": key,
        }
        rows.append(row)
    return rows, errors


def _check_ladder(session: Session, rows: list[dict[str, Any]], current: list[Tier]) -> dict[str, str]:
    kept = [r for r in rows if not r.get("delete")]
    errors: dict[str, str] = {}
    if not kept:
        return {"form": "Cần ít nhất một hạng."}
    if min(r["threshold"] for r in kept) != 0:
        errors["form"] = "Hạng thấp nhất phải có mức 0 điểm, để thành viên mới luôn có hạng."
    for field, label in (("name", "Tên hạng"), ("threshold", "Mức điểm")):
        seen: set[Any] = set()
        for row in kept:
            value = row[field].lower() if field == "name" else row[field]
            if value in seen:
                errors[f"{field}_{row['key']}"] = f"{label} bị trùng với hạng khác."
            seen.add(value)
    for row in rows:
        if row.get("delete") and _tier_in_use(session, row["id"]):
            name = next(t.name for t in current if t.id == row["id"])
            errors[f"name_{row['id']}"] = f"Không xóa được hạng {name}: đã có thành viên, quà hoặc lịch sử lên hạng."
    return errors


def _tier_in_use(session: Session, tier_id: int) -> bool:
    checks = (
        select(Member.id).where(Member.tier_id == tier_id),
        select(Reward.id).where(Reward.min_tier_id == tier_id),
        select(TierEvent.id).where((TierEvent.to_tier_id == tier_id) | (TierEvent.from_tier_id == tier_id)),
    )
    return any(session.scalar(check.limit(1)) is not None for check in checks)


def _apply_tiers(session: Session, rows: list[dict[str, Any]], current: list[Tier]) -> dict[str, Any]:
    by_id = {t.id: t for t in current}
    before = {t.id: {f: getattr(t, f) for f in TIER_FIELDS} for t in current}
    diff: dict[str, Any] = {}
    # Names and thresholds are unique: park edited rows on temporary values first, so swapping two works.
    for row in rows:
        if row["id"] is not None and not row.get("delete"):
            tier = by_id[row["id"]]
            tier.name, tier.threshold = f"~{tier.id}~{tier.name}"[:60], -tier.id
    session.flush()
    for row in rows:
        if row.get("delete"):
            diff[f"xóa {before[row['id']]['name']}"] = True
            session.delete(by_id[row["id"]])
            continue
        tier = by_id[row["id"]] if row["id"] is not None else Tier()
        for field in TIER_FIELDS:
            setattr(tier, field, row[field])
        session.add(tier)
        old = before.get(row["id"], {}) if row["id"] is not None else {}
        changed = {f: [old.get(f), row[f]] for f in TIER_FIELDS if old.get(f) != row[f]}
        if changed:
            diff[row["name"]] = changed
    session.flush()
    return diff


# --- rewards -------------------------------------------------------------------------------------------


def _reward_fields(form: Any, tz: Any) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 200:
        errors["name"] = "Tên quà cần 1-200 ký tự."
    fields: dict[str, Any] = {
        "name": name,
        "description": str(form.get("description", "")).strip()[:2000],
        "points_cost": read_int(form, "points_cost", "Số điểm đổi", 1, 10**7, errors, optional=False),
        "stock": read_int(form, "stock", "Số lượng", 0, 10**7, errors),
        "validity_days": read_int(form, "validity_days", "Hạn dùng voucher (ngày)", 1, 3650, errors, optional=False),
        "per_member_limit": read_int(form, "per_member_limit", "Mỗi khách tối đa", 1, 1000, errors),
        "is_active": form.get("is_active") == "on",
    }
    start, end = read_date(form, "active_from", errors), read_date(form, "active_until", errors)
    if start and end and end < start:
        errors["active_until"] = "Ngày kết thúc phải sau ngày bắt đầu."
    fields["active_from"] = datetime.combine(start, time.min, tz) if start else None
    fields["active_until"] = datetime.combine(end + timedelta(days=1), time.min, tz) if end else None
    tier_id = form.get("min_tier_id", "")
    fields["min_tier_id"] = int(tier_id) if str(tier_id).isdigit() else None
    return fields, errors


def _reward_values(reward: Reward, tz: Any) -> dict[str, Any]:
    values = {k: getattr(reward, k) for k in REWARD_FIELDS}
    values["active_from"] = reward.active_from.astimezone(tz).date().isoformat() if reward.active_from else ""
    until = reward.active_until
    values["active_until"] = (until.astimezone(tz) - timedelta(days=1)).date().isoformat() if until else ""
    return values
