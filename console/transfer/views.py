"""Import members from CSV/XLSX (upload, preview, confirm, progress) and export members and the ledger."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import partial

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from console.admin.reports import member_filter
from console.auth import counter_actor, login_required
from console.counter.operations import audit
from console.forms import YEARS
from console.transfer.exports import export_response, ledger_table, members_table
from jobs.imports import check_after_commit, enqueue_import
from loyalty.member_import import (
    MAX_COLUMNS,
    MAX_ROWS,
    MAX_UPLOAD,
    SAMPLE,
    ImportFileError,
    data_rows,
    plan_rows,
    read_table,
)
from models import ImportStatus, MemberImport, Role, utcnow
from tichdiem.extensions import get_session, get_settings, services

bp = Blueprint("transfer", __name__, url_prefix="/admin")

IMPORT_LABELS = {
    ImportStatus.CHECKING: "Đang kiểm tra",
    ImportStatus.PREVIEW: "Chờ xác nhận",
    ImportStatus.QUEUED: "Đang chờ chạy",
    ImportStatus.RUNNING: "Đang nhập",
    ImportStatus.DONE: "Hoàn tất",
    ImportStatus.FAILED: "Lỗi",
}
SAMPLE_ROWS = 200  # enough to find the header and the first SAMPLE rows past blank lines
ACTION_LABELS = {"create": "Thêm mới", "update": "Cập nhật", "same": "Không đổi", "error": "Lỗi"}


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> tuple[str, int]:
    flash(f"Tệp quá lớn (tối đa {MAX_UPLOAD // 1024 // 1024} MB). Hãy chia thành nhiều tệp.", "error")
    return _import_page(), 413


@bp.route("/import", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def import_members() -> str | Response:
    """Upload: every row is checked now and the result shown; nothing is written until confirmed."""
    if request.method == "GET":
        return _import_page()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Chọn tệp .csv hoặc .xlsx để tải lên.", "error")
        return Response(_import_page(), 400)
    content = upload.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        raise RequestEntityTooLarge()
    db = get_session()
    try:  # the first rows only, to refuse a wrong file at once; the job reads and checks every row
        data_rows(read_table(upload.filename, content, limit=SAMPLE_ROWS))
    except ImportFileError as exc:
        flash(str(exc), "error")
        return Response(_import_page(), 400)
    job = MemberImport(
        filename=upload.filename[:255],
        content=content,
        overwrite=request.form.get("overwrite") == "on",
        status=ImportStatus.CHECKING,
        created_by=counter_actor().actor,
        created_at=utcnow(),
    )
    db.add(job)
    db.flush()
    check_after_commit(db, job.id)
    db.commit()
    return redirect(url_for("transfer.show_import", import_id=job.id))


@bp.get("/import/<int:import_id>")
@login_required(Role.MARKETER)
def show_import(import_id: int) -> str:
    db = get_session()
    job = db.get(MemberImport, import_id) or abort(404)
    sample = []
    if job.status == ImportStatus.PREVIEW:
        # The first rows only: a 15 MB workbook is not parsed again for every view of its preview.
        columns, rows = data_rows(read_table(job.filename, job.content, limit=SAMPLE_ROWS))
        sample = plan_rows(db, columns, rows[:SAMPLE], _today(), overwrite=job.overwrite)
    return render_template(
        "console/import_show.html",
        job=job,
        sample=sample,
        progress=import_progress(job),
        labels=IMPORT_LABELS,
        actions=ACTION_LABELS,
    )


@bp.post("/import/<int:import_id>/confirm")
@login_required(Role.MARKETER)
def confirm_import(import_id: int) -> Response:
    db = get_session()
    job = db.get(MemberImport, import_id) or abort(404)
    details = {"import_id": job.id, "filename": job.filename, "rows": job.total_rows}
    if enqueue_import(db, import_id):
        audit(db, counter_actor(), "import", utcnow(), details=details)
        db.commit()
        flash("Đang nhập danh sách: trang này tự cập nhật tiến độ.", "success")
    return redirect(url_for("transfer.show_import", import_id=import_id))


@bp.get("/import/<int:import_id>/progress")
@login_required(Role.MARKETER)
def import_progress_json(import_id: int) -> Response:
    job = get_session().get(MemberImport, import_id) or abort(404)
    return jsonify(import_progress(job))


@bp.get("/export/<any(members, ledger):what>.<any(csv, xlsx):kind>")
@login_required(Role.MARKETER)
def export(what: str, kind: str) -> Response:
    """Members, or the ledger between two dates (default: this month so far), as CSV or Excel."""
    db = get_session()
    tz = get_settings().tz
    start, end = _period(request.args.get("from", ""), request.args.get("to", ""))
    since = datetime.combine(start, time.min, tz)
    until = datetime.combine(end + timedelta(days=1), time.min, tz)
    audit(
        db,
        counter_actor(),
        "export",
        utcnow(),
        details={"what": what, "format": kind, "from": str(start), "to": str(end), **request.args.to_dict()},
    )
    db.commit()
    if what == "members":
        flt = member_filter(request.args)
        build = partial(members_table, tz=tz, flt=flt, now=utcnow())
        name = f"members-{end:%Y%m%d}"
    else:
        build = partial(ledger_table, tz=tz, since=since, until=until)
        name = f"ledger-{start:%Y%m%d}-{end:%Y%m%d}"
    return export_response(services().sessions, build, kind, name)


def import_progress(job: MemberImport) -> dict[str, object]:
    total = job.total_rows
    done = job.status == ImportStatus.DONE
    return {
        "status": job.status,
        "status_label": IMPORT_LABELS[ImportStatus(job.status)],
        "audience": total,
        "finished": job.processed,
        "percent": 100 if done else (100 * job.processed // total if total else 0),
        "counts": [
            {"key": key, "label": ACTION_LABELS[key], "n": n}
            for key, n in (
                ("create", job.created),
                ("update", job.updated),
                ("same", job.unchanged),
                ("error", job.errors),
            )
        ],
        "live": job.status in (ImportStatus.CHECKING, ImportStatus.QUEUED, ImportStatus.RUNNING),
    }


def _import_page() -> str:
    db = get_session()
    recent = list(db.scalars(select(MemberImport).order_by(MemberImport.id.desc()).limit(20)))
    today = _today()
    return render_template(
        "console/import.html",
        recent=recent,
        labels=IMPORT_LABELS,
        month_start=today.replace(day=1).isoformat(),
        max_rows=MAX_ROWS,
        max_columns=MAX_COLUMNS,
        today=today.isoformat(),
    )


def _today() -> date:
    return utcnow().astimezone(get_settings().tz).date()


def _period(raw_from: str, raw_to: str) -> tuple[date, date]:
    today = _today()
    try:
        start = date.fromisoformat(raw_from) if raw_from else today.replace(day=1)
        end = date.fromisoformat(raw_to) if raw_to else today
    except ValueError:
        abort(400, "Ngày không hợp lệ.")
    if start.year not in YEARS or end.year not in YEARS:  # 9999-12-31 has no next day to end the period on
        abort(400, f"Ngày cần trong khoảng năm {YEARS.start}–{YEARS.stop - 1}.")
    return (start, end) if start <= end else (end, start)
