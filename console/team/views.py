"""Owner-only pages: staff accounts, POS API keys (shown once) and the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, session, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.counter.operations import audit
from console.forms import a_page, an_id
from console.staff import MIN_PASSWORD, StaffError, create_api_key, create_staff, end_sessions, set_password
from models import ApiKey, AuditLog, Member, Role, Staff, Store, utcnow
from tichdiem.extensions import get_session

bp = Blueprint("team", __name__, url_prefix="/admin")

ROLE_LABELS = {Role.OWNER: "Chủ cửa hàng", Role.MARKETER: "Marketing", Role.CASHIER: "Thu ngân"}
ACTION_LABELS = {
    "earn": "Tích điểm",
    "reverse": "Hoàn điểm",
    "use_voucher": "Dùng voucher",
    "create_claim": "Tạo mã tích điểm",
    "adjust": "Điều chỉnh điểm",
    "block": "Khóa thành viên",
    "unblock": "Mở khóa thành viên",
    "program_change": "Đổi thiết lập chương trình",
    "tier_change": "Đổi hạng thành viên",
    "reward_change": "Đổi quà tặng",
    "broadcast_create": "Tạo chiến dịch",
    "broadcast_pause": "Tạm dừng chiến dịch",
    "broadcast_resume": "Tiếp tục chiến dịch",
    "broadcast_cancel": "Hủy chiến dịch",
    "staff_create": "Thêm nhân viên",
    "staff_update": "Sửa nhân viên",
    "api_key_create": "Tạo khóa API",
    "api_key_revoke": "Thu hồi khóa API",
    "import": "Nhập danh sách thành viên",
    "export": "Xuất dữ liệu",
    "first_run_setup": "Cài đặt cửa hàng lần đầu",
    "store_create": "Thêm cửa hàng",
    "group_add": "Thêm thành viên vào nhóm",
    "tier_hold": "Giữ hạng theo tay",
    "group_remove": "Bỏ thành viên khỏi nhóm",
    "pay_points": "Trừ điểm vào hóa đơn",
    "refund_points": "Trả lại điểm đã trừ",
    "affiliate_kept": "Hoa hồng giới thiệu không thu hồi được",
    "store_update": "Sửa cửa hàng",
    "zalo_connect": "Kết nối Zalo OA",
    "zalo_site_verification": "Lưu mã xác thực tên miền",
    "follower_sync": "Đồng bộ người quan tâm",
    "link_zalo": "Liên kết Zalo cho thành viên",
    "consent_grant": "Ghi nhận đồng ý nhận ưu đãi",
    "privacy_notice": "Đăng thông báo quyền riêng tư",
    "erase_member": "Xóa dữ liệu cá nhân",
    "template_register": "Thêm mẫu tin Zalo",
    "template_mapping": "Ghép tham số mẫu tin",
}
AUDIT_PAGE = 50


@bp.route("/staff", methods=["GET", "POST"])
@login_required(Role.OWNER)
def staff() -> str | Response:
    db = get_session()
    errors: dict[str, str] = {}
    if request.method == "POST":
        store_id = request.form.get("store_id", type=an_id)
        try:
            if store_id is not None and db.get(Store, store_id) is None:
                raise StaffError("Cửa hàng không tồn tại.")
            created = create_staff(
                db,
                username=request.form.get("username", ""),
                password=request.form.get("password", ""),
                role=request.form.get("role", ""),
                name=request.form.get("name", ""),
                store_id=store_id,
            )
        except StaffError as exc:
            db.rollback()
            errors["form"] = str(exc)
        else:
            audit(db, counter_actor(), "staff_create", utcnow(), details={"username": created.username})
            db.commit()
            flash(f"Đã thêm {created.name} ({ROLE_LABELS[Role(created.role)]}).", "success")
            return redirect(url_for("team.staff"))
    return render_template(
        "console/staff.html",
        people=list(db.scalars(select(Staff).order_by(Staff.is_active.desc(), Staff.username))),
        stores=_stores(),
        roles=ROLE_LABELS,
        errors=errors,
        form=request.form,
        min_password=MIN_PASSWORD,
    )


@bp.post("/staff/<int:staff_id>")
@login_required(Role.OWNER)
def update_staff(staff_id: int) -> Response:
    """Switch active/inactive or set a new password (which also lifts a lock-out)."""
    db = get_session()
    person = db.get(Staff, staff_id) or abort(404)
    by = counter_actor()
    change: dict[str, Any] = {}
    if person.id == by.staff_id and request.form.get("active") == "0":
        flash("Không thể tự khóa tài khoản của chính mình.", "error")
        return redirect(url_for("team.staff"))
    if "active" in request.form:
        person.is_active = change["active"] = request.form["active"] == "1"
        if not person.is_active:
            end_sessions(person)
    password = request.form.get("password", "")
    if password:
        try:
            set_password(person, password)
        except StaffError as exc:
            flash(str(exc), "error")
            return redirect(url_for("team.staff"))
        if person.id == by.staff_id:
            session["sv"] = person.session_version  # the owner's own browser stays in; every other copy is out
        change["password"] = "changed"
    audit(db, by, "staff_update", utcnow(), details={"username": person.username, **change})
    db.commit()
    flash(f"Đã cập nhật {person.name}.", "success")
    return redirect(url_for("team.staff"))


@bp.get("/api-keys")
@login_required(Role.OWNER)
def api_keys() -> str:
    return _api_keys_page()


@bp.post("/api-keys")
@login_required(Role.OWNER)
def create_key() -> Response:
    """The key is in this response only: never stored in clear, never put in the (readable) session cookie."""
    db = get_session()
    store_id = request.form.get("store_id", type=an_id)
    if store_id is None or db.get(Store, store_id) is None:
        return make_response(_api_keys_page(error="Chọn cửa hàng cho khóa API."), 400)
    by = counter_actor()
    new = create_api_key(db, store_id=store_id, name=request.form.get("name", ""), created_by_id=by.staff_id)
    audit(db, by, "api_key_create", utcnow(), details={"key_id": new.key.id, "name": new.key.name})
    db.commit()
    response = make_response(_api_keys_page(secret=new.secret, secret_name=new.key.name))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required(Role.OWNER)
def revoke_key(key_id: int) -> Response:
    db = get_session()
    key = db.get(ApiKey, key_id) or abort(404)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(db, counter_actor(), "api_key_revoke", utcnow(), details={"key_id": key.id, "name": key.name})
        db.commit()
    flash(f"Đã thu hồi khóa “{key.name}”: máy POS dùng khóa này sẽ bị từ chối.", "success")
    return redirect(url_for("team.api_keys"))


@bp.get("/audit")
@login_required(Role.OWNER)
def audit_log() -> str:
    db = get_session()
    action = request.args.get("action", "")
    staff_id = request.args.get("staff", type=an_id)
    page = request.args.get("page", 1, type=a_page)
    stmt = select(AuditLog)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if staff_id:
        stmt = stmt.where(AuditLog.staff_id == staff_id)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(db.scalars(stmt.order_by(AuditLog.id.desc()).offset((page - 1) * AUDIT_PAGE).limit(AUDIT_PAGE)))
    people = {s.id: s for s in db.scalars(select(Staff))}
    member_ids = {r.member_id for r in rows if r.member_id}
    members = {m.id: m for m in db.scalars(select(Member).where(Member.id.in_(member_ids)))} if member_ids else {}
    return render_template(
        "console/audit.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(-(-total // AUDIT_PAGE), 1),
        action=action,
        staff_id=staff_id,
        people=people,
        members=members,
        labels=ACTION_LABELS,
    )


def _api_keys_page(*, secret: str | None = None, secret_name: str = "", error: str = "") -> str:
    db = get_session()
    return render_template(
        "console/api_keys.html",
        keys=list(db.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc()))),
        stores=_stores(),
        people={s.id: s for s in db.scalars(select(Staff))},
        secret=secret,
        secret_name=secret_name,
        error=error,
    )


def _stores() -> dict[int, Store]:
    return {s.id: s for s in get_session().scalars(select(Store).order_by(Store.code))}
