"""The owner and marketer console: dashboard, members (search, page, adjustment, block)."""

from __future__ import annotations

import uuid
from datetime import datetime, time

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from bot import history
from console.admin.program_form import CHANNELS, FLAGS, changes, from_form, to_form
from console.admin.reports import PAGE_SIZE, dashboard, member_filter, search_members
from console.auth import counter_actor, load_staff, login_required
from console.counter.operations import audit
from console.forms import a_page, an_id, bounded, read_date
from jobs.followers import follower_summary, start_sync
from loyalty import format as fmt
from loyalty import ledger, rewards
from loyalty.errors import InsufficientPoints, InvalidAmount
from loyalty.groups import GroupNameError, add_to_group, all_groups, clean_group, groups_of, remove_from_group
from loyalty.members import set_blocked
from loyalty.phones import display_phone
from loyalty.program import load_rules, save_rules
from loyalty.tiers import TierHoldError, hold_tier
from models import Member, OutboxMessage, Reward, Role, Staff, Tier, utcnow
from tichdiem.extensions import get_session, get_settings

bp = Blueprint("admin", __name__, url_prefix="/admin")
MAX_ADJUST = 10_000_000  # points in one adjustment; more is a typo (balances are 32-bit)


@bp.get("/")
@login_required(Role.MARKETER)
def home() -> str:
    settings = get_settings()
    db = get_session()
    figures = dashboard(db, utcnow(), settings.tz)
    return render_template("console/dashboard.html", d=figures, followers=follower_summary(db))


@bp.post("/followers/sync")
@login_required(Role.OWNER, Role.MARKETER)
def sync_followers() -> Response:
    """Read the OA's follower list from Zalo now (it also runs by itself once a day)."""
    db = get_session()
    now = utcnow()
    sync, started = start_sync(db, "console", now)
    if started:
        audit(db, counter_actor(), "follower_sync", now, details={"sync_id": sync.id})
    db.commit()
    flash("Đang đồng bộ danh sách người quan tâm OA từ Zalo." if started else "Đang đồng bộ rồi.", "success")
    return redirect(url_for("admin.home"))


@bp.get("/members")
@login_required(Role.MARKETER)
def members() -> str:
    db = get_session()
    flt = member_filter(request.args)
    page = request.args.get("page", 1, type=a_page)
    rows, total = search_members(db, flt, page, utcnow())
    tier_names = {t.id: t.name for t in db.scalars(select(Tier))}
    return render_template(
        "console/members.html",
        rows=rows,
        total=total,
        page=page,
        pages=-(-total // PAGE_SIZE),
        flt=flt,
        tiers=tier_names,
        groups=all_groups(db),
        phone=lambda p: display_phone(p) if p else "",
        export_args={k: v for k, v in request.args.items() if v and k != "page"},
    )


@bp.post("/members/<int:member_id>/tier")
@login_required(Role.OWNER)
def hold_member_tier(member_id: int) -> Response:
    """The owner assigns a tier by hand until a date (end of that day, the shop's time), with a reason."""
    db, now, settings = get_session(), utcnow(), get_settings()
    errors: dict[str, str] = {}
    day = read_date(request.form, "until", errors)
    tier_id = request.form.get("tier_id", type=an_id)
    if day is None or tier_id is None:
        flash(errors.get("until") or "Chọn hạng và ngày kết thúc.", "error")
        return redirect(url_for("admin.member", member_id=member_id))
    until = datetime.combine(day, time(23, 59, 59), settings.tz)  # to the end of that day, the shop's time
    by = counter_actor()
    try:
        hold_tier(db, member_id, tier_id, until=until, reason=request.form.get("reason", ""), by=by.actor, now=now)
    except TierHoldError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.member", member_id=member_id))
    tier = db.get(Tier, tier_id)
    details = {
        "tier": tier.name if tier else tier_id,
        "until": day.isoformat(),
        "reason": request.form.get("reason", ""),
    }
    audit(db, by, "tier_hold", now, member_id=member_id, details=details)
    db.commit()
    flash(f"Đã giữ hạng {details['tier']} đến hết {day:%d/%m/%Y}.", "success")
    return redirect(url_for("admin.member", member_id=member_id))


@bp.post("/members/groups")
@login_required(Role.MARKETER)
def group_members() -> Response:
    """Put the members ticked in the list into a group (a new name makes a new group)."""
    db, now = get_session(), utcnow()
    ids = [int(i) for i in request.form.getlist("member_ids") if i.isdigit() and len(i) <= 18]
    try:
        name = clean_group(request.form.get("group", ""))
    except GroupNameError as exc:
        flash(str(exc), "error")
        return redirect(request.referrer or url_for("admin.members"))
    if not ids:
        flash("Chưa chọn thành viên nào.", "error")
        return redirect(url_for("admin.members"))
    known = list(db.scalars(select(Member.id).where(Member.id.in_(ids))))
    added = add_to_group(db, known, name, now)
    audit(db, counter_actor(), "group_add", now, details={"group": name, "members": len(known), "added": added})
    db.commit()
    flash(f"Đã thêm {added} thành viên vào nhóm {name}.", "success")
    return redirect(url_for("admin.members", group=name))


@bp.post("/members/<int:member_id>/groups/remove")
@login_required(Role.MARKETER)
def ungroup_member(member_id: int) -> Response:
    db, now = get_session(), utcnow()
    name = request.form.get("group", "")[:60]
    remove_from_group(db, member_id, name)
    audit(db, counter_actor(), "group_remove", now, member_id=member_id, details={"group": name})
    db.commit()
    flash(f"Đã bỏ khỏi nhóm {name}.", "success")
    return redirect(url_for("admin.member", member_id=member_id))


@bp.get("/members/<int:member_id>")
@login_required(Role.MARKETER)
def member(member_id: int) -> str:
    db = get_session()
    found = db.get(Member, member_id) or abort(404)
    tier = db.get(Tier, found.tier_id) if found.tier_id else None
    entries = ledger.history(db, found.id, limit=50)
    vouchers = rewards.unused_vouchers(db, found.id, utcnow())
    referred = list(db.scalars(select(Member).where(Member.referred_by_id == found.id)))
    received = (
        list(
            db.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.zalo_user_id == found.zalo_user_id, OutboxMessage.broadcast_id.is_not(None))
                .order_by(OutboxMessage.id.desc())
                .limit(20)
            )
        )
        if found.zalo_user_id
        else []
    )
    staff = load_staff()
    return render_template(
        "console/member_admin.html",
        m=found,
        tier=tier,
        entries=entries,
        vouchers=vouchers,
        referred=referred,
        received=received,
        describe=history.describe,
        people={s.id: s for s in db.scalars(select(Staff))},
        groups=groups_of(db, found.id),
        tiers=list(db.scalars(select(Tier).order_by(Tier.threshold))),
        phone=display_phone(found.phone) if found.phone else "",
        op=uuid.uuid4().hex,
        is_owner=staff is not None and staff.role == Role.OWNER,
    )


@bp.post("/members/<int:member_id>/adjust")
@login_required(Role.OWNER)
def adjust(member_id: int) -> Response:
    db = get_session()
    by = counter_actor()
    try:
        points = bounded(-MAX_ADJUST, MAX_ADJUST)(request.form.get("points", "").replace(".", "").strip())
        now = utcnow()
        entry, replayed = ledger.adjust(
            db,
            member_id,
            points,
            key=f"console-adjust:{request.form.get('op', '')[:64]}",
            reason=request.form.get("reason", ""),
            now=now,
            actor=by.ledger_actor,
            expires_at=load_rules(db).expiry_for(now) if points > 0 else None,
        )
    except ValueError:
        flash("Số điểm phải là số nguyên, ví dụ 50 hoặc -20.", "error")
        return redirect(url_for("admin.member", member_id=member_id))
    except InvalidAmount:
        db.rollback()
        flash("Cần nhập số điểm khác 0 và lý do điều chỉnh.", "error")
        return redirect(url_for("admin.member", member_id=member_id))
    except InsufficientPoints as exc:
        db.rollback()
        flash(f"Không trừ được: thành viên chỉ có {fmt.points(exc.balance)} điểm.", "error")
        return redirect(url_for("admin.member", member_id=member_id))
    if not replayed:
        audit(
            db,
            by,
            "adjust",
            utcnow(),
            member_id=member_id,
            entry_id=entry.id,
            details={"points": points, "reason": entry.reason},
        )
    db.commit()
    flash(f"Đã điều chỉnh {fmt.signed_points(points)} điểm.", "success")
    return redirect(url_for("admin.member", member_id=member_id))


@bp.post("/members/<int:member_id>/block")
@login_required(Role.OWNER)
def block(member_id: int) -> Response:
    db = get_session()
    blocked = request.form.get("blocked") == "1"
    set_blocked(db, member_id, blocked)
    audit(db, counter_actor(), "block" if blocked else "unblock", utcnow(), member_id=member_id)
    db.commit()
    flash("Đã khóa thành viên." if blocked else "Đã mở khóa thành viên.", "success")
    return redirect(url_for("admin.member", member_id=member_id))


@bp.route("/program", methods=["GET", "POST"])
@login_required(Role.OWNER, Role.MARKETER)
def program() -> str | Response:
    """Earning rules, point value, expiry, referral bonus and the automations, validated; every change logged."""
    db = get_session()
    current = load_rules(db)
    errors: dict[str, str] = {}
    values = to_form(current)
    if request.method == "POST":
        rules, errors = from_form(request.form, current)
        values = {
            **values,
            **request.form.to_dict(),
            **{f: request.form.get(f) == "on" for f in FLAGS},
        }
        if rules is not None:
            by = counter_actor()
            diff = changes(current, rules)
            save_rules(db, rules, updated_by=by.actor)
            audit(db, by, "program_change", utcnow(), details=diff)
            db.commit()
            flash(f"Đã lưu thiết lập chương trình ({len(diff)} thay đổi).", "success")
            return redirect(url_for("admin.program"))
        flash("Chưa lưu: kiểm tra các ô được đánh dấu.", "error")
    rewards_list = list(db.scalars(select(Reward).where(Reward.is_active.is_(True)).order_by(Reward.name)))
    return render_template("console/program.html", v=values, errors=errors, rewards=rewards_list, channels=CHANNELS)
