"""Cửa hàng (owners): the shop's stores, each with its own earn rate if it differs, after first-run setup made
them. A store is never deleted (entries, claims, cashiers and API keys point at it): it is closed instead."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import audit
from models import ApiKey, Role, Staff, Store, utcnow
from tichdiem.extensions import get_session

bp = Blueprint("stores", __name__, url_prefix="/admin/stores")
KINDS = {"retail": "Cửa hàng", "outlet": "Cửa hàng giảm giá", "online": "Bán online"}


@dataclass(frozen=True)
class StoreForm:
    code: str
    name: str
    kind: str
    earn_points: int | None
    earn_unit_amount: int | None


class StoreFormError(ValueError):
    pass


@bp.get("/")
@login_required(Role.OWNER)
def index() -> str:
    db = get_session()
    stores = list(db.scalars(select(Store).order_by(Store.is_active.desc(), Store.code)))
    staff = dict(db.execute(select(Staff.store_id, func.count()).group_by(Staff.store_id)).all())
    keys = dict(db.execute(select(ApiKey.store_id, func.count()).group_by(ApiKey.store_id)).all())
    return render_template("console/stores.html", stores=stores, kinds=KINDS, staff=staff, keys=keys)


@bp.post("/")
@login_required(Role.OWNER)
def add() -> Response:
    db = get_session()
    try:
        form = read_store_form(request.form)
    except StoreFormError as exc:
        flash(str(exc), "error")
        return redirect(url_for("stores.index"))
    if db.scalar(select(Store.id).where(Store.code == form.code)) is not None:
        flash(f"Đã có cửa hàng mã {form.code}.", "error")
        return redirect(url_for("stores.index"))
    store = Store(
        code=form.code,
        name=form.name,
        kind=form.kind,
        earn_points=form.earn_points,
        earn_unit_amount=form.earn_unit_amount,
    )
    db.add(store)
    db.flush()
    audit(db, counter_actor(), "store_create", utcnow(), details={"code": form.code, "name": form.name})
    db.commit()
    flash(f"Đã thêm cửa hàng {form.name}.", "success")
    return redirect(url_for("stores.index"))


@bp.post("/<int:store_id>")
@login_required(Role.OWNER)
def update(store_id: int) -> Response:
    db = get_session()
    store = db.get(Store, store_id)
    if store is None:
        flash("Không tìm thấy cửa hàng.", "error")
        return redirect(url_for("stores.index"))
    try:
        form = read_store_form(request.form, code=store.code)
    except StoreFormError as exc:
        flash(str(exc), "error")
        return redirect(url_for("stores.index"))
    active = request.form.get("is_active") == "on"
    before = (store.name, store.kind, store.earn_points, store.earn_unit_amount, store.is_active)
    after = (form.name, form.kind, form.earn_points, form.earn_unit_amount, active)
    if before == after:
        flash("Không có gì thay đổi.", "info")
        return redirect(url_for("stores.index"))
    store.name, store.kind, store.earn_points, store.earn_unit_amount, store.is_active = after
    fields = ("name", "kind", "earn_points", "earn_unit_amount", "is_active")
    diff = {f: [b, a] for f, b, a in zip(fields, before, after, strict=True) if b != a}
    audit(db, counter_actor(), "store_update", utcnow(), details={"code": store.code, **diff})
    db.commit()
    flash(f"Đã lưu cửa hàng {store.name}.", "success")
    return redirect(url_for("stores.index"))


def read_store_form(form: MultiDict[str, str], code: str | None = None) -> StoreForm:
    """The code is chosen once (the counter, the API and exports name stores by it) and never edited."""
    code = code if code is not None else form.get("code", "").strip().upper()
    name = " ".join(form.get("name", "").split())
    if not code or len(code) > 32 or not code.replace("-", "").isalnum():
        raise StoreFormError("Mã cửa hàng: chữ và số, tối đa 32 ký tự (ví dụ Q1).")
    if not name or len(name) > 200:
        raise StoreFormError("Tên cửa hàng cần 1–200 ký tự.")
    kind = form.get("kind", "retail")
    if kind not in KINDS:
        raise StoreFormError("Loại cửa hàng không hợp lệ.")
    points, per = form.get("earn_points", "").strip(), form.get("earn_unit_amount", "").strip()
    if not points and not per:
        return StoreForm(code, name, kind, None, None)
    if not (points.isdigit() and per.isdigit()) or not 0 <= int(points) <= 10_000 or not 1_000 <= int(per) <= 10**8:
        raise StoreFormError("Mức tích riêng: số điểm (0–10.000) mỗi số tiền (từ 1.000đ), hoặc để trống cả hai.")
    return StoreForm(code, name, kind, int(points), int(per))
