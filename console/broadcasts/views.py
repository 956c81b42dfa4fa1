"""Broadcast pages: list, compose with an audience preview, schedule, live progress, pause/resume/cancel, report."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from console.auth import counter_actor, login_required
from console.broadcasts.form import BUTTONS, draft_from_form, form_values
from console.counter.operations import audit
from jobs import broadcasts
from jobs.deferred import enqueue_after_commit
from loyalty import format as fmt
from loyalty.groups import all_groups
from loyalty.placeholders import follower_fields, member_fields, personalize
from loyalty.segments import Segment, audience_query, audience_size, follower_query, left_out_without_consent
from marketing import campaigns
from models import (
    Broadcast,
    BroadcastStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
    Reward,
    Role,
    Tier,
    ZaloUser,
    utcnow,
)
from tichdiem.extensions import get_session, get_settings, services
from zalo.errors import ZaloError

bp = Blueprint("broadcasts", __name__, url_prefix="/admin/broadcasts")

STATUS_LABELS: dict[str, str] = {
    BroadcastStatus.DRAFT: "Nháp",
    BroadcastStatus.SCHEDULED: "Đã lên lịch",
    BroadcastStatus.SENDING: "Đang gửi",
    BroadcastStatus.PAUSED: "Tạm dừng",
    BroadcastStatus.CANCELLED: "Đã hủy",
    BroadcastStatus.DONE: "Hoàn tất",
}
OUTCOME_LABELS: dict[str, str] = {
    OutboxStatus.SENT: "Đã gửi",
    OutboxStatus.PENDING: "Đang chờ",
    OutboxStatus.SENDING: "Đang gửi",
    OutboxStatus.SKIPPED: "Bỏ qua",
    OutboxStatus.FAILED: "Lỗi",
    OutboxStatus.UNKNOWN: "Không rõ (gián đoạn)",
    OutboxStatus.CANCELLED: "Đã hủy",
}
REASON_LABELS = {
    "not following the OA": "Khách đã bỏ quan tâm OA",
    "outside the 7-day window and no template configured": "Quá 7 ngày không tương tác, chưa đăng ký mẫu tin Zalo",
    "no Zalo account and no template by phone": "Chưa có Zalo, chưa đăng ký mẫu tin để gửi qua số điện thoại",
    "broadcast cancelled": "Chiến dịch bị hủy",
    "interrupted mid-send (the worker died or lost the database); not sent again": (
        "Gián đoạn khi đang gửi (worker dừng hoặc mất kết nối CSDL); không gửi lại để tránh trùng"
    ),
}
# Zalo's codes on the template and quota paths (reference §2.6, §4), for the report.
ZALO_ERROR_LABELS = {
    -108: "Số điện thoại không hợp lệ với Zalo",
    -114: "Khách không nhận được tin mẫu (chưa dùng Zalo hoặc đã chặn)",
    -115: "Hết hạn mức hoặc hết tiền trong tài khoản Zalo Cloud",
    -133: "Mẫu tin khuyến mãi không được gửi 22:00–06:00",
    -211: "OA hết hạn mức tin",
    -213: "Khách chưa quan tâm OA",
    -249: "Mẫu tin không gửi được qua Zalo ID",
    -1121: "Giá trị tham số dài hơn mẫu tin cho phép",
}
_ZALO_CODE = re.compile(r"Zalo error (-?\d+)")


def reason_label(reason: str) -> str:
    """The report's words for why a row was not sent: ours, or Zalo's code in Vietnamese with its message."""
    if reason in REASON_LABELS:
        return REASON_LABELS[reason]
    found = _ZALO_CODE.search(reason)
    if found and int(found[1]) in ZALO_ERROR_LABELS:
        return f"{ZALO_ERROR_LABELS[int(found[1])]} (Zalo {found[1]})"
    return reason


FINISHED = {OutboxStatus.SENT, OutboxStatus.SKIPPED, OutboxStatus.FAILED, OutboxStatus.UNKNOWN, OutboxStatus.CANCELLED}
PREVIEW_SAMPLE = 5


@bp.get("/")
@login_required(Role.MARKETER)
def index() -> str:
    db = get_session()
    rows = list(db.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(100)))
    sent = dict(
        db.execute(
            select(OutboxMessage.broadcast_id, func.count())
            .where(
                OutboxMessage.broadcast_id.in_([b.id for b in rows]),
                OutboxMessage.status == OutboxStatus.SENT,
            )
            .group_by(OutboxMessage.broadcast_id)
        ).all()
    )
    return render_template("console/broadcasts.html", rows=rows, sent=sent, labels=STATUS_LABELS)


@bp.route("/new", methods=["GET", "POST"])
@login_required(Role.MARKETER)
def new() -> str | Response:
    """GET: an empty form. POST "preview": who would receive it. POST "save": schedule (or start) it."""
    db = get_session()
    settings = get_settings()
    now = utcnow()
    errors: dict[str, str] = {}
    preview: dict[str, Any] | None = None
    if request.method == "POST":
        draft, errors = draft_from_form(request.form, now, settings.tz)
        if draft is not None and request.form.get("action") == "save":
            by = counter_actor()
            broadcast = campaigns.create_broadcast(
                db,
                name=draft.name,
                text=draft.text,
                segment=draft.segment,
                send_at=draft.send_at,
                now=now,
                promotional=draft.promotional,
                buttons=draft.buttons,
                created_by=by.actor,
                reward_id=draft.reward_id,
            )
            audit(db, by, "broadcast_create", now, details={"broadcast_id": broadcast.id, "name": broadcast.name})
            if draft.send_at is None:  # start now rather than at the next cron tick
                enqueue_after_commit(db, broadcasts.start_due_broadcasts)
            db.commit()
            flash(_created_message(broadcast, settings.tz), "success")
            return redirect(url_for("broadcasts.show", broadcast_id=broadcast.id))
        if draft is not None:
            reward = db.get(Reward, draft.reward_id) if draft.reward_id else None
            example_gift = {"qua": reward.name, "ma": "ABCD-EFGH", "han": "(hạn của voucher)"} if reward else None
            shop = services().shop_name()
            preview = {**_preview(draft.segment, draft.text, now, shop, example_gift), "buttons": draft.buttons}
        else:
            flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    return render_template(
        "console/broadcast_new.html",
        v=form_values(request.form),
        errors=errors,
        preview=preview,
        tiers=list(db.scalars(select(Tier).order_by(Tier.threshold))),
        groups=all_groups(db),
        rewards=list(db.scalars(select(Reward).where(Reward.is_active.is_(True)).order_by(Reward.name))),
        buttons=BUTTONS,
    )


@bp.get("/<int:broadcast_id>")
@login_required(Role.MARKETER)
def show(broadcast_id: int) -> str:
    db = get_session()
    broadcast = db.get(Broadcast, broadcast_id) or abort(404)
    return render_template(
        "console/broadcast_show.html",
        b=broadcast,
        p=progress_view(broadcast_id),
        labels=STATUS_LABELS,
        segment=describe_segment(Segment.from_dict(broadcast.segment)),
        reward=db.get(Reward, broadcast.reward_id) if broadcast.reward_id else None,
        gifts=campaigns.gift_figures(db, broadcast.id) if broadcast.reward_id else None,
    )


@bp.get("/<int:broadcast_id>/progress")
@login_required(Role.MARKETER)
def progress(broadcast_id: int) -> Response:
    """Polled by the detail page every few seconds while the broadcast sends."""
    get_session().get(Broadcast, broadcast_id) or abort(404)
    return jsonify(progress_view(broadcast_id))


@bp.post("/<int:broadcast_id>/<any(pause, resume, cancel):action>")
@login_required(Role.MARKETER)
def control(broadcast_id: int, action: str) -> Response:
    db = get_session()
    broadcast = db.get(Broadcast, broadcast_id) or abort(404)
    before = broadcast.status
    if action == "pause":
        campaigns.pause(db, broadcast_id)
    elif action == "cancel":
        campaigns.cancel(db, broadcast_id, utcnow())
    else:
        campaigns.resume(db, broadcast_id)
    db.commit()
    db.refresh(broadcast)
    if broadcast.status == before:
        flash(f"Không thể thực hiện: chiến dịch đang ở trạng thái “{STATUS_LABELS[before]}”.", "error")
    else:
        audit(db, counter_actor(), f"broadcast_{action}", utcnow(), details={"broadcast_id": broadcast_id})
        db.commit()
        flash(f"Chiến dịch: {STATUS_LABELS[broadcast.status]}.", "success")
    return redirect(url_for("broadcasts.show", broadcast_id=broadcast_id))


def progress_view(broadcast_id: int) -> dict[str, Any]:
    """Counts with Vietnamese labels and a percentage for the bar."""
    report = campaigns.progress(get_session(), broadcast_id)
    counts: dict[str, int] = report["counts"]
    total = max(report["audience"], sum(counts.values()))
    finished = sum(n for status, n in counts.items() if status in FINISHED)
    status = report["status"]
    return {
        "status": status,
        "status_label": STATUS_LABELS.get(status, status),
        "audience": total,
        "finished": finished,
        "percent": 100 if status == BroadcastStatus.DONE else (100 * finished // total if total else 0),
        "counts": [{"key": k, "label": OUTCOME_LABELS.get(k, k), "n": n} for k, n in sorted(counts.items())],
        "reasons": [{"label": reason_label(k), "n": n} for k, n in report["reasons"].items()],
        "live": status in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING),
    }


def describe_segment(segment: Segment) -> str:
    """The audience in words, for the detail page."""
    db = get_session()
    parts = []
    if segment.tier_ids:
        names = db.scalars(select(Tier.name).where(Tier.id.in_(segment.tier_ids)))
        parts.append("hạng " + ", ".join(names))
    if segment.group:
        parts.append(f"nhóm {segment.group}")
    if segment.birthday_month:
        parts.append(f"sinh tháng {segment.birthday_month}")
    if segment.inactive_days:
        parts.append(f"không ghé {segment.inactive_days} ngày")
    if segment.points_min is not None:
        parts.append(f"từ {fmt.points(segment.points_min)} điểm")
    if segment.points_max is not None:
        parts.append(f"đến {fmt.points(segment.points_max)} điểm")
    if segment.joined_from:
        parts.append(f"tham gia từ {fmt.day(segment.joined_from)}")
    if segment.joined_to:
        parts.append(f"tham gia đến {fmt.day(segment.joined_to)}")
    if segment.followers:
        return "Mọi người đang quan tâm OA, cả người chưa là thành viên"
    return "Tất cả thành viên đang quan tâm OA" + (": " + "; ".join(parts) if parts else "")


def _preview(segment: Segment, text: str, now: Any, shop: str, gift: dict[str, str] | None = None) -> dict[str, Any]:
    """How many receive it and through which of Zalo's channels (with the cost and the OA's quota), a few
    names, and the message as the first of them gets it."""
    db = get_session()
    size = audience_size(db, segment, now)
    channels = {
        "forecast": campaigns.forecast(db, segment, now),
        "left_out": left_out_without_consent(db, segment, now, consented=size),
        **_quota(),
    }
    if segment.followers:
        users = list(db.scalars(select(ZaloUser).where(ZaloUser.user_id.in_(follower_query().limit(PREVIEW_SAMPLE)))))
        names = [u.display_name or "Khách" for u in users]
        example = personalize(text, **follower_fields(users[0].display_name, shop)) if users else None
        return {"size": size, "names": names, "example": example, "who": "người quan tâm OA", **channels}
    sample = list(db.scalars(select(Member).where(Member.id.in_(audience_query(segment, now).limit(PREVIEW_SAMPLE)))))
    example = personalize(text, **member_fields(db, sample[0], shop), **(gift or {})) if sample else None
    names = [m.name or "Khách" for m in sample]
    return {"size": size, "names": names, "example": example, "who": "thành viên", **channels}


def _quota() -> dict[str, Any]:
    """The OA's consultation-message quota, read from Zalo now (the shape of Zalo's answer is uncertain)."""
    try:
        return {"quota": services().zalo.message_quota(), "quota_error": None}
    except ZaloError as exc:
        return {"quota": None, "quota_error": exc.message or str(exc.code)}


def _created_message(broadcast: Broadcast, tz: Any) -> str:
    if broadcast.send_at is None or broadcast.send_at <= utcnow():
        return "Đã tạo chiến dịch, bắt đầu gửi ngay."
    return f"Đã lên lịch gửi lúc {broadcast.send_at.astimezone(tz):%H:%M %d/%m/%Y}."
