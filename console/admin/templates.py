"""ZBS templates ("Mẫu tin Zalo"): the shop registers an approved template per purpose, the app reads its typed
parameters and prices from Zalo, and the owner maps each parameter to one of our fields.

Messages the shop starts reach a member outside the 7-day window only through these (by UID, or by phone
for members who never chatted or when a template refuses UIDs: jobs/proactive.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import audit
from console.messages import PLACEHOLDER_LABELS
from loyalty import placeholders
from models import Role, ZaloTemplate, utcnow
from tichdiem.extensions import get_session, services
from zalo.errors import ZaloError

bp = Blueprint("templates", __name__, url_prefix="/admin/templates")

# purpose -> (what it is for, the fields its parameters may take)
PURPOSES: dict[str, tuple[str, frozenset[str]]] = {
    "birthday": ("Chúc mừng sinh nhật (kèm quà)", placeholders.ALLOWED["birthday_text"]),
    "expiry": ("Nhắc điểm sắp hết hạn", placeholders.ALLOWED["expiry_reminder_text"]),
    "tier_up": ("Chúc mừng lên hạng", placeholders.ALLOWED["tier_up_text"]),
    "broadcast": ("Chiến dịch gửi thành viên", placeholders.ALLOWED["broadcast"]),
    "lapsed": ("Mời khách lâu chưa quay lại (kèm quà)", placeholders.ALLOWED["lapsed_text"]),
    "vip_renewal": ("Nhắc gia hạn gói VIP", placeholders.ALLOWED["vip_reminder_text"]),
    "link_code": ("Mã xác nhận số điện thoại (khách tự liên kết thẻ cũ)", placeholders.ALLOWED["link_code"]),
}
MAX_TEMPLATE_ID = 32


@bp.get("/")
@login_required(Role.OWNER)
def index() -> str:
    db = get_session()
    rows = {t.purpose: t for t in db.scalars(select(ZaloTemplate))}
    return render_template(
        "console/templates.html", purposes=PURPOSES, rows=rows, labels=PLACEHOLDER_LABELS, statuses=STATUS_LABELS
    )


@bp.post("/<purpose>")
@login_required(Role.OWNER)
def register(purpose: str) -> Response:
    """Read the template from Zalo (name, status, typed parameters, prices) and keep it for this purpose."""
    if purpose not in PURPOSES:
        abort(404)
    template_id = str(request.form.get("template_id", "")).strip()
    if not template_id or len(template_id) > MAX_TEMPLATE_ID or not template_id.isalnum():
        flash("Mã mẫu tin là chuỗi chữ và số Zalo cấp (ví dụ 7895417a7d3f9461cd2e).", "error")
        return redirect(url_for("templates.index"))
    try:
        info = services().zalo.template_info(template_id)
    except ZaloError as exc:
        flash(f"Zalo không trả thông tin mẫu tin {template_id}: {exc.message or exc.code}.", "error")
        return redirect(url_for("templates.index"))
    db = get_session()
    row = db.scalar(select(ZaloTemplate).where(ZaloTemplate.purpose == purpose))
    if row is None:
        row = ZaloTemplate(purpose=purpose)
        db.add(row)
    if row.template_id != template_id:
        row.mapping, row.uid_refused = {}, False
    _fill(row, template_id, info)
    row.mapping = guess_mapping(row.params, PURPOSES[purpose][1]) if not row.mapping else row.mapping
    audit(db, counter_actor(), "template_register", utcnow(), details={"purpose": purpose, "template_id": template_id})
    db.commit()
    flash(f"Đã đọc mẫu tin “{row.name}” ({_status_label(row.status)}). Kiểm tra cách điền từng tham số.", "success")
    return redirect(url_for("templates.index"))


@bp.post("/<purpose>/mapping")
@login_required(Role.OWNER)
def mapping(purpose: str) -> Response:
    """Which of our fields fills each of the template's parameters; every required one needs a field."""
    if purpose not in PURPOSES:
        abort(404)
    db = get_session()
    row = db.scalar(select(ZaloTemplate).where(ZaloTemplate.purpose == purpose)) or abort(404)
    allowed = PURPOSES[purpose][1]
    chosen: dict[str, str] = {}
    missing = []
    for param in row.params:
        name = str(param.get("name", ""))
        field = str(request.form.get(f"param-{name}", ""))
        if field in allowed:
            chosen[name] = field
        elif param.get("require") and not param.get("acceptNull"):
            missing.append(name)
    if missing:
        flash(f"Tham số bắt buộc chưa chọn giá trị: {', '.join(missing)}.", "error")
        return redirect(url_for("templates.index"))
    row.mapping, row.updated_at = chosen, utcnow()
    audit(db, counter_actor(), "template_mapping", utcnow(), details={"purpose": purpose, "mapping": chosen})
    db.commit()
    flash("Đã lưu cách điền mẫu tin.", "success")
    return redirect(url_for("templates.index"))


@bp.post("/<purpose>/delete")
@login_required(Role.OWNER)
def delete(purpose: str) -> Response:
    db = get_session()
    row = db.scalar(select(ZaloTemplate).where(ZaloTemplate.purpose == purpose)) or abort(404)
    audit(
        db, counter_actor(), "template_delete", utcnow(), details={"purpose": purpose, "template_id": row.template_id}
    )
    db.delete(row)
    db.commit()
    flash("Đã bỏ mẫu tin: khách quá 7 ngày sẽ không nhận tin này.", "success")
    return redirect(url_for("templates.index"))


def guess_mapping(params: list[dict[str, Any]], allowed: frozenset[str]) -> dict[str, str]:
    """A first guess from the parameter names Zalo's template editor suggests (customer_name, points…)."""
    hints = {
        "ten": ("name", "ten", "khach"),
        "diem": ("point", "diem"),
        "hang": ("tier", "rank", "hang", "level"),
        "ma_xac_nhan": ("otp", "verify", "xac_nhan", "code"),
        "ma": ("code", "voucher", "ma_"),
        "qua": ("gift", "reward", "qua"),
        "han": ("expire", "expiry", "han", "date"),
        "so_diem": ("point", "so_diem"),
        "ngay": ("date", "ngay"),
        "shop": ("shop", "store", "cua_hang"),
        "quyen_loi": ("benefit", "quyen_loi"),
    }
    guessed: dict[str, str] = {}
    for param in params:
        name = str(param.get("name", "")).lower()
        for field, words in hints.items():
            if field in allowed and field not in guessed.values() and any(w in name for w in words):
                guessed[str(param.get("name"))] = field
                break
    return guessed


def _fill(row: ZaloTemplate, template_id: str, info: dict[str, Any]) -> None:
    params = info.get("listParams")
    row.template_id = template_id
    row.name = str(info.get("templateName") or template_id)[:200]
    row.status = str(info.get("status") or "")[:24]
    row.tag = str(info.get("templateTag") or "")[:24]
    row.params = [p for p in params if isinstance(p, dict) and p.get("name")] if isinstance(params, list) else []
    row.price_phone = _price(info.get("price_sdt", info.get("price")))
    row.price_uid = _price(info.get("price_uid"))
    row.fetched_at = row.updated_at = utcnow()


def _price(value: Any) -> int | None:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return None


def _status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status or "không rõ")


STATUS_LABELS = {
    "ENABLE": "đã duyệt, đang bật",
    "PENDING_REVIEW": "đang chờ Zalo duyệt",
    "REJECT": "bị Zalo từ chối",
    "DISABLE": "đã tắt",
}
