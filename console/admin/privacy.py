"""Personal data ("Dữ liệu cá nhân", owners): the privacy notice, customers' requests with their due dates,
erasure in one click, and the consent log as CSV (loyalty/privacy.py, loyalty/consent.py)."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as WerkzeugResponse

from console.auth import counter_actor, login_required
from console.counter.operations import audit
from loyalty.privacy import current_notice, erase_member, publish_notice
from models import Consent, DataRequest, Member, RequestKind, RequestStatus, Role, utcnow
from tichdiem.extensions import get_session, get_settings, services

bp = Blueprint("privacy", __name__, url_prefix="/admin/privacy")
MAX_NOTICE = 20_000


@bp.get("/")
@login_required(Role.OWNER)
def index() -> str:
    db, settings = get_session(), get_settings()
    version, text = current_notice(db, services().shop_name(), settings.retention_days)
    requests = list(
        db.scalars(
            select(DataRequest).order_by(DataRequest.status != RequestStatus.OPEN, DataRequest.due_at).limit(200)
        )
    )
    members = {m.id: m for m in db.scalars(select(Member).where(Member.id.in_({r.member_id for r in requests})))}
    consent_counts = dict(
        db.execute(select(Member.marketing_consent, func.count()).group_by(Member.marketing_consent)).all()
    )
    return render_template(
        "console/privacy.html",
        version=version,
        notice=text,
        requests=requests,
        members=members,
        now=utcnow(),
        consent_counts=consent_counts,
        retention_days=settings.retention_days,
    )


@bp.post("/notice")
@login_required(Role.OWNER)
def notice() -> WerkzeugResponse:
    """A new version of the notice; consents given from now on name it."""
    text = str(request.form.get("text", "")).strip()
    if not text or len(text) > MAX_NOTICE:
        flash(f"Nội dung cần 1–{MAX_NOTICE:,} ký tự.".replace(",", "."), "error")
        return redirect(url_for("privacy.index"))
    db = get_session()
    row = publish_notice(db, text, counter_actor().actor, utcnow())
    audit(db, counter_actor(), "privacy_notice", utcnow(), details={"version": f"v{row.id}"})
    db.commit()
    flash(f"Đã đăng phiên bản v{row.id} của thông báo quyền riêng tư.", "success")
    return redirect(url_for("privacy.index"))


@bp.post("/requests/<int:request_id>/erase")
@login_required(Role.OWNER)
def erase(request_id: int) -> WerkzeugResponse:
    """Carry out an erasure request: the member's personal fields go, the ledger stays exact."""
    db = get_session()
    data_request = db.get(DataRequest, request_id) or abort(404)
    if data_request.kind != RequestKind.ERASURE or data_request.status != RequestStatus.OPEN:
        abort(409)
    by = counter_actor()
    erase_member(db, data_request.member_id, by=by.actor, now=utcnow())
    audit(db, by, "erase_member", utcnow(), member_id=data_request.member_id, details={"request_id": request_id})
    db.commit()
    flash("Đã xóa dữ liệu cá nhân của thành viên. Sổ điểm được giữ nguyên, không còn ghi ai.", "success")
    return redirect(url_for("privacy.index"))


@bp.get("/consents.csv")
@login_required(Role.OWNER)
def consents_csv() -> Response:
    """The consent log as the law asks it to be shown: who, what, which notice, when, how."""
    db, tz = get_session(), get_settings().tz
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Mã thành viên", "Đồng ý", "Phiên bản thông báo", "Kênh", "Người ghi nhận", "Thời điểm"])
    rows = db.execute(select(Consent, Member.code).join(Member, Member.id == Consent.member_id).order_by(Consent.id))
    for consent, code in rows:
        when = consent.created_at.astimezone(tz).strftime("%d/%m/%Y %H:%M")
        writer.writerow(
            [code, "có" if consent.granted else "rút lại", consent.notice_version, consent.channel, consent.actor, when]
        )
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=nhat-ky-dong-y.csv"},
    )
