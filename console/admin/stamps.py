"""Stamp cards in the console: the cards the shop runs ("Mua 5 ly tặng 1"), their rules and how they do."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import save_changes
from console.forms import read_int
from loyalty.stamps import MAX_STAMPS_NEEDED, figures
from models import MemberStampCard, Reward, Role, StampCard, Store, utcnow
from tichdiem.extensions import get_session

bp = Blueprint("stamp_cards", __name__, url_prefix="/admin/stamp-cards")

FIELDS = (
    "name",
    "description",
    "stamps_needed",
    "reward_id",
    "product_group",
    "max_per_bill",
    "min_bill_amount",
    "min_hours_between",
    "store_id",
    "valid_days",
    "is_active",
)


@bp.get("/")
@login_required(Role.MARKETER)
def index() -> str:
    db = get_session()
    cards = list(db.scalars(select(StampCard).order_by(StampCard.is_active.desc(), StampCard.id)))
    return render_template(
        "console/stamp_cards.html",
        cards=cards,
        figures=figures(db),
        rewards={r.id: r for r in db.scalars(select(Reward))},
        stores={s.id: s for s in db.scalars(select(Store))},
    )


@bp.route("/new", methods=["GET", "POST"], defaults={"card_id": None})
@bp.route("/<int:card_id>", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def edit(card_id: int | None) -> str | Response:
    db = get_session()
    existing = db.get(StampCard, card_id) if card_id is not None else None
    if card_id is not None and existing is None:
        abort(404)
    values: dict[str, Any] = (
        {k: getattr(existing, k) for k in FIELDS}
        if existing
        else {"stamps_needed": 5, "max_per_bill": 1, "min_bill_amount": 0, "min_hours_between": 0, "is_active": True}
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        fields, errors = _read_form(request.form)
        if fields["reward_id"] is None or db.get(Reward, fields["reward_id"]) is None:
            errors["reward_id"] = "Chọn quà khách nhận khi đủ tem."
        if fields["store_id"] is not None and db.get(Store, fields["store_id"]) is None:
            errors["store_id"] = "Cửa hàng không tồn tại."
        if existing and fields.get("stamps_needed") != existing.stamps_needed and _has_stamps(db, existing):
            errors["stamps_needed"] = "Thẻ đã có khách tích tem: giữ số tem, hoặc tạm dừng thẻ này và tạo thẻ mới."
        values = {**request.form.to_dict(), "is_active": request.form.get("is_active") == "on"}
        if not errors:
            card = existing or StampCard(created_at=utcnow())
            save_changes(db, counter_actor(), card, fields, action="stamp_card_change")
            db.commit()
            flash(f"Đã lưu thẻ tem “{card.name}”.", "success")
            return redirect(url_for("stamp_cards.index"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template(
        "console/stamp_card_form.html",
        card=existing,
        v=values,
        errors=errors,
        rewards=list(db.scalars(select(Reward).where(Reward.is_active.is_(True)).order_by(Reward.name))),
        stores=list(db.scalars(select(Store).where(Store.is_active.is_(True)).order_by(Store.name))),
        max_needed=MAX_STAMPS_NEEDED,
    )


def _read_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 100:
        errors["name"] = "Tên thẻ cần 1-100 ký tự."
    group = str(form.get("product_group", "")).strip() or None
    if group is not None and len(group) > 60:
        errors["product_group"] = "Nhóm sản phẩm tối đa 60 ký tự."
    needed = read_int(form, "stamps_needed", "Số tem", 2, MAX_STAMPS_NEEDED, errors, optional=False)
    per_bill = read_int(form, "max_per_bill", "Tối đa mỗi hóa đơn", 1, MAX_STAMPS_NEEDED, errors, optional=False)
    if needed and per_bill and per_bill > needed:
        errors["max_per_bill"] = "Mỗi hóa đơn không thể nhiều tem hơn cả thẻ."
    reward, store = str(form.get("reward_id", "")), str(form.get("store_id", ""))
    fields: dict[str, Any] = {
        "name": name,
        "description": str(form.get("description", "")).strip()[:500],
        "stamps_needed": needed,
        "reward_id": int(reward) if reward.isdigit() and len(reward) < 19 else None,
        "product_group": group,
        "max_per_bill": per_bill if group else 1,  # a card without a group takes one stamp per bill
        "min_bill_amount": read_int(form, "min_bill_amount", "Hóa đơn tối thiểu (đ)", 0, 10**9, errors) or 0,
        "min_hours_between": read_int(form, "min_hours_between", "Cách nhau ít nhất (giờ)", 0, 720, errors) or 0,
        "store_id": int(store) if store.isdigit() and len(store) < 19 else None,
        "valid_days": read_int(form, "valid_days", "Hạn tem (ngày)", 1, 3650, errors),
        "is_active": form.get("is_active") == "on",
    }
    return fields, errors


def _has_stamps(db: Session, card: StampCard) -> bool:
    stmt = select(MemberStampCard.id).where(MemberStampCard.stamp_card_id == card.id).limit(1)
    return db.scalar(stmt) is not None
