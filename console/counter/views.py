"""The cashier page: find a member (scan the card, type a phone), credit a bill, use a voucher, make a claim."""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from bot.parsing import BadInput, parse_amount
from console.auth import counter_actor, login_required
from console.counter.operations import (
    CounterActor,
    NotAllowed,
    audit,
    can_self_reverse,
    earn_for_bill,
    link_chat_user,
    new_claim,
    pay_with_points,
    recent_earns,
    recent_stamp_only_visits,
    refund_points_payment,
    reverse_earn,
    reverse_stamps,
    sell_vip,
    use_voucher,
    voucher_view,
)
from console.forms import an_id
from console.messages import message
from console.qr import qr_svg
from console.throttle import code_guesses
from loyalty import format as fmt
from loyalty import rewards, stamps, vip
from loyalty.bills import record_walk_in
from loyalty.cards import InvalidCard, RevokedCard, member_from_token
from loyalty.codes import pretty_voucher_code
from loyalty.consent import record_consent
from loyalty.errors import (
    DuplicateBill,
    InvalidAmount,
    LinkRefused,
    LoyaltyError,
    MemberBlocked,
    PaymentRefused,
    VoucherError,
    VoucherNotFound,
)
from loyalty.linking import requests_for_member
from loyalty.members import find_by_code, find_by_phone
from loyalty.phones import display_phone, normalize_phone
from loyalty.program import load_rules
from models import Claim, EntryKind, LedgerEntry, Member, Role, StampCard, Tier, Voucher, utcnow
from tichdiem.extensions import get_session, get_settings, services

bp = Blueprint("counter", __name__, url_prefix="/counter")
BAD_AMOUNT = message("invalid_amount")


@bp.get("/")
@login_required(Role.CASHIER)
def home() -> str:
    actor = counter_actor()
    db = get_session()
    entries = recent_earns(db, actor.store_id)
    rows = [{"entry": e, "member": db.get(Member, e.member_id), "can_reverse": _may_reverse(e, actor)} for e in entries]
    stamp_rows = [
        {"stamp": s, "member": db.get(Member, s.member_id), "card": db.get(StampCard, s.stamp_card_id)}
        for s in recent_stamp_only_visits(db, actor.store_id)
    ]
    return render_template("console/counter.html", rows=rows, stamp_rows=stamp_rows, op=uuid.uuid4().hex)


@bp.post("/find")
@login_required(Role.CASHIER)
def find_member() -> Response:
    query = request.form.get("q", "").strip()
    member = _lookup(query)
    if member is None:
        return redirect(url_for("counter.home"))
    return redirect(url_for("counter.member", member_id=member.id))


@bp.get("/members/<int:member_id>")
@login_required(Role.CASHIER)
def member(member_id: int) -> str:
    db = get_session()
    found = db.get(Member, member_id) or abort(404)
    tier = db.get(Tier, found.tier_id) if found.tier_id else None
    vouchers = [voucher_view(db, v) for v in rewards.unused_vouchers(db, found.id, _now())]
    return render_template(
        "console/member.html",
        member=found,
        tier=tier,
        rules=load_rules(db),
        vouchers=vouchers,
        group_cards=stamps.group_cards(db, counter_actor().store_id),
        vip_plans=vip.active_plans(db),
        vip_now=vip.current_membership(db, found.id, _now()),
        cards=stamps.member_cards(db, found.id, _now()),
        link_requests=requests_for_member(db, found.id, _now()),
        phone=display_phone(found.phone) if found.phone else "",
        op=uuid.uuid4().hex,
    )


@bp.post("/members/<int:member_id>/earn")
@login_required(Role.CASHIER)
def earn(member_id: int) -> Response:
    db = get_session()
    try:
        amount = parse_amount(request.form.get("amount", ""))
        result = earn_for_bill(
            db,
            member_id,
            amount,
            key=f"counter:{_op()}",
            by=counter_actor(),
            rules=load_rules(db),
            tz=get_settings().tz,
            now=_now(),
            bill_ref=request.form.get("bill_ref", "").strip()[:120] or None,
            new_bill=request.form.get("new_bill") == "on",
            items=_items_from_form(),
        )
    except BadInput:
        flash(BAD_AMOUNT, "error")
        return redirect(url_for("counter.member", member_id=member_id))
    except DuplicateBill as exc:
        db.rollback()
        when = exc.credited_at.astimezone(get_settings().tz).strftime("%H:%M %d/%m/%Y")
        flash(
            f"Hóa đơn {exc.bill_ref} đã được tích điểm lúc {when}. Nếu đây là một hóa đơn khác trùng số, "
            "đánh dấu “Hóa đơn mới, trùng số” rồi tích lại.",
            "error",
        )
        return redirect(url_for("counter.member", member_id=member_id))
    except (InvalidAmount, MemberBlocked) as exc:
        db.rollback()
        flash(message(exc), "error")
        return redirect(url_for("counter.member", member_id=member_id))
    db.commit()
    if result.points:
        flash(f"+{fmt.points(result.points)} điểm — số dư {fmt.points(result.balance)} điểm.", "success")
    elif not result.stamps_added:
        flash("Hóa đơn chưa đủ điều kiện tích điểm (dưới mức tối thiểu hoặc đã đạt giới hạn).", "info")
    for line in _stamp_lines(result.stamps):
        flash(*line)
    return redirect(url_for("counter.member", member_id=member_id))


def _items_from_form() -> dict[str, int]:
    """The quantities typed for each product-group stamp card ("items:<card id>")."""
    items: dict[str, int] = {}
    for card in stamps.group_cards(get_session(), counter_actor().store_id):
        raw = request.form.get(f"items:{card.id}", "").strip()
        if raw.isdigit() and card.product_group:
            items[card.product_group] = min(int(raw), 1000)
    return items


def _stamp_lines(progress: tuple[stamps.StampProgress, ...]) -> list[tuple[str, str]]:
    """What the cashier reads about each card the bill touched."""
    lines = []
    for p in progress:
        name, card = p.card.name, f"{p.stamps}/{p.card.stamps_needed}"
        if p.voucher is not None:
            code = pretty_voucher_code(p.voucher.code)
            lines.append((f"Thẻ “{name}” đã đủ tem: khách được voucher {code} (thẻ mới {card} tem).", "success"))
        elif p.added:
            lines.append((f"+{p.added} tem thẻ “{name}” — {card} tem.", "success"))
        elif p.skipped == "cooldown":
            lines.append((f"Thẻ “{name}”: chưa tích tem, khách vừa được tem gần đây ({card} tem).", "info"))
        elif p.skipped == "min_bill":
            lines.append((f"Thẻ “{name}”: hóa đơn dưới mức tối thiểu để tích tem ({card} tem).", "info"))
    return lines


@bp.post("/members/<int:member_id>/pay")
@login_required(Role.CASHIER)
def pay(member_id: int) -> Response:
    """Points pay part of a bill: the cashier types the bill and the points the customer wants to use."""
    db = get_session()
    try:
        amount = parse_amount(request.form.get("pay_amount", ""))
        points = int(request.form.get("points", "").strip().replace(".", ""))
    except (BadInput, ValueError):
        flash("Nhập số tiền hóa đơn và số điểm muốn trừ, ví dụ 250000 và 50.", "error")
        return redirect(url_for("counter.member", member_id=member_id))
    try:
        result = pay_with_points(
            db,
            member_id,
            points,
            amount,
            key=f"counter-pay:{_op()}",
            by=counter_actor(),
            rules=load_rules(db),
            now=_now(),
            bill_ref=request.form.get("pay_bill_ref", "").strip()[:120] or None,
        )
    except (PaymentRefused, MemberBlocked) as exc:
        db.rollback()
        flash(message(exc), "error")
        return redirect(url_for("counter.member", member_id=member_id))
    db.commit()
    flash(
        f"−{fmt.points(result.points)} điểm = {fmt.vnd(result.vnd)} trừ vào hóa đơn; khách trả "
        f"{fmt.vnd(amount - result.vnd)}. Số dư {fmt.points(result.balance)} điểm.",
        "success",
    )
    return redirect(url_for("counter.member", member_id=member_id))


@bp.post("/members/<int:member_id>/vip")
@login_required(Role.CASHIER)
def vip_sale(member_id: int) -> Response:
    """Sell a paid membership: the plan the customer paid for at the till, once per form."""
    db = get_session()
    plan_id = request.form.get("plan_id", type=an_id)
    if plan_id is None:
        flash("Chọn gói VIP khách mua.", "error")
        return redirect(url_for("counter.member", member_id=member_id))
    tz = get_settings().tz
    try:
        sale = sell_vip(
            db,
            member_id,
            plan_id,
            key=f"counter-vip:{_op()}",
            by=counter_actor(),
            now=_now(),
            tz=tz,
            bill_ref=request.form.get("vip_bill_ref", "").strip()[:120] or None,
        )
    except (vip.VipUnavailable, MemberBlocked) as exc:
        db.rollback()
        flash("Gói VIP này đã ngừng bán." if isinstance(exc, vip.VipUnavailable) else message(exc), "error")
        return redirect(url_for("counter.member", member_id=member_id))
    db.commit()
    until = fmt.day(sale.membership.ends_at, tz)
    flash(f"Đã bán {sale.plan.name} ({fmt.vnd(sale.membership.price)}): hạng {sale.tier.name} đến {until}.", "success")
    return redirect(url_for("counter.member", member_id=member_id))


@bp.post("/members/<int:member_id>/link")
@login_required(Role.CASHIER)
def link_zalo(member_id: int) -> Response:
    """Link the chat user who showed the code from their Zalo chat to this member (checked by the cashier)."""
    db = get_session()
    db.get(Member, member_id) or abort(404)
    try:
        link_chat_user(
            db,
            member_id,
            request.form.get("code", "")[:20],
            by=counter_actor(),
            now=_now(),
            shop_name=services().shop_name(),
        )
    except LinkRefused as exc:
        db.commit()  # keep the count of wrong codes
        flash(message(exc), "error")
        return redirect(url_for("counter.member", member_id=member_id))
    db.commit()
    flash("Đã liên kết Zalo của khách với thẻ thành viên. ✔", "success")
    return redirect(url_for("counter.member", member_id=member_id))


@bp.post("/members/<int:member_id>/consent")
@login_required(Role.CASHIER)
def consent(member_id: int) -> Response:
    """The customer, in person, agrees to offers or declines: recorded with the cashier as who took it."""
    db = get_session()
    member = db.get(Member, member_id) or abort(404)
    granted = request.form.get("granted") == "1"
    by = counter_actor()
    if record_consent(db, member, granted=granted, channel="counter", actor=by.actor, now=_now()):
        audit(db, by, "consent_grant" if granted else "consent_withdraw", _now(), member_id=member_id)
    db.commit()
    flash("Đã ghi nhận: khách đồng ý nhận ưu đãi." if granted else "Đã ghi nhận: khách không nhận ưu đãi.", "success")
    return redirect(url_for("counter.member", member_id=member_id))


@bp.post("/entries/<int:entry_id>/reverse")
@login_required(Role.CASHIER)
def reverse(entry_id: int) -> Response:
    db = get_session()
    entry = db.get(LedgerEntry, entry_id)
    undo = refund_points_payment if entry is not None and entry.kind == EntryKind.PAY else reverse_earn
    try:
        undo(db, entry_id, by=counter_actor(), now=_now())
    except NotAllowed as exc:
        db.rollback()
        flash(f"Không hoàn được: {exc}.", "error")
        return redirect(url_for("counter.home"))
    except LoyaltyError:
        db.rollback()
        flash("Không hoàn được: thành viên không còn đủ điểm hoặc giao dịch đã hoàn.", "error")
        return redirect(url_for("counter.home"))
    db.commit()
    flash("Đã hoàn điểm của hóa đơn." if undo is reverse_earn else "Đã trả lại điểm đã trừ vào hóa đơn.", "success")
    return redirect(url_for("counter.home"))


@bp.post("/bills")
@login_required(Role.CASHIER)
def walk_in_bill() -> Response:
    """A bill of a customer who is not a member: no points, only counted in the owner's results."""
    db = get_session()
    actor = counter_actor()
    try:
        amount = parse_amount(request.form.get("walk_in_amount", ""))
        bill, replayed = record_walk_in(
            db,
            amount,
            key=f"counter-bill:{_op()}",
            now=_now(),
            store_id=actor.store_id,
            bill_ref=request.form.get("walk_in_ref", "").strip()[:120] or None,
            by=actor.actor,
        )
    except (BadInput, InvalidAmount):
        db.rollback()
        flash(BAD_AMOUNT, "error")
        return redirect(url_for("counter.home"))
    if not replayed:
        audit(db, actor, "walk_in_bill", _now(), details={"bill_id": bill.id, "amount": amount})
    db.commit()
    flash(f"Đã ghi hóa đơn khách lẻ {fmt.vnd(bill.amount)}.", "success")
    return redirect(url_for("counter.home"))


@bp.post("/stamps/<int:stamp_id>/reverse")
@login_required(Role.CASHIER)
def reverse_stamp_visit(stamp_id: int) -> Response:
    """Refund a bill that gave stamps and no points (one with points is refunded by its earn)."""
    db = get_session()
    try:
        reverse_stamps(db, stamp_id, by=counter_actor(), now=_now())
    except NotAllowed as exc:
        db.rollback()
        flash(f"Không hoàn được: {exc}.", "error")
        return redirect(url_for("counter.home"))
    db.commit()
    flash("Đã hoàn tem của hóa đơn.", "success")
    return redirect(url_for("counter.home"))


@bp.post("/voucher")
@login_required(Role.CASHIER)
def find_voucher() -> Response:
    voucher = _voucher_or_flash(request.form.get("code", "").strip())
    if voucher is None:
        return redirect(url_for("counter.home"))
    return redirect(url_for("counter.voucher", code=voucher.code))


@bp.get("/vouchers/<code>")
@login_required(Role.CASHIER)
def voucher(code: str) -> str | Response:
    db = get_session()
    found = _voucher_or_flash(code)
    if found is None:
        return redirect(url_for("counter.home"))
    return render_template(
        "console/voucher.html",
        v=voucher_view(db, found),
        op=uuid.uuid4().hex,
        now=_now(),
    )


@bp.post("/vouchers/<code>/use")
@login_required(Role.CASHIER)
def use(code: str) -> Response:
    db = get_session()
    if _voucher_or_flash(code) is None:
        return redirect(url_for("counter.home"))
    member_id = request.form.get("member_id", type=an_id)
    try:
        use_voucher(
            db,
            code,
            key=f"counter-voucher:{_op()}",
            by=counter_actor(),
            now=_now(),
            tz=get_settings().tz,
            member_id=member_id,
        )
    except VoucherError as exc:
        db.rollback()
        flash(message(exc), "error")
        return redirect(url_for("counter.voucher", code=code))
    db.commit()
    flash("Đã dùng voucher. ✔", "success")
    return redirect(url_for("counter.voucher", code=code))


def _voucher_or_flash(code: str) -> Voucher | None:
    """The voucher, or None with the reason flashed; every unknown code counts toward the staff member's limit,
    whichever page or form it came through."""
    throttle, who = code_guesses(services().redis), counter_actor().actor
    if throttle.blocked(who):
        flash("Nhập sai mã voucher quá nhiều lần. Vui lòng thử lại sau 10 phút.", "error")
        return None
    try:
        return rewards.find_voucher(get_session(), code)
    except VoucherNotFound:
        throttle.failed(who)
        flash(message("voucher_not_found"), "error")
        return None


@bp.get("/claims/new")
@login_required(Role.CASHIER)
def claim_form() -> str:
    return render_template("console/claim_new.html", op=uuid.uuid4().hex)


@bp.post("/claims")
@login_required(Role.CASHIER)
def create_claim() -> Response:
    db = get_session()
    try:
        amount = parse_amount(request.form.get("amount", ""))
        claim = new_claim(
            db,
            amount,
            key=f"counter-claim:{_op()}",
            by=counter_actor(),
            now=_now(),
            bill_ref=request.form.get("bill_ref", "").strip()[:120] or None,
        )
    except (BadInput, InvalidAmount):
        db.rollback()
        flash(BAD_AMOUNT, "error")
        return redirect(url_for("counter.claim_form"))
    except DuplicateBill as exc:
        db.rollback()
        flash(f"Hóa đơn {exc.bill_ref} đã được tích điểm rồi: không tạo mã cho hóa đơn này nữa.", "error")
        return redirect(url_for("counter.claim_form"))
    db.commit()
    return redirect(url_for("counter.claim", claim_id=claim.id))


@bp.get("/claims/<int:claim_id>")
@login_required(Role.CASHIER)
def claim(claim_id: int) -> str:
    found = get_session().get(Claim, claim_id)
    store_id = counter_actor().store_id
    if found is None or (store_id is not None and found.store_id != store_id):
        abort(404)  # a cashier sees only their own store's claims
    url = claim_url(found.code)
    return render_template(
        "console/claim_show.html",
        claim=found,
        url=url,
        qr=Markup(qr_svg(url)),
        oa_link=get_settings().oa_link,
    )


def claim_url(code: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/c/{code}"


def _lookup(query: str) -> Member | None:
    db = get_session()
    if not query:
        flash("Quét thẻ thành viên hoặc nhập số điện thoại.", "error")
        return None
    if query.upper().startswith("TD-"):
        try:
            return member_from_token(db, query, get_settings().secret_key)
        except RevokedCard:
            flash("Thẻ này đã được thay bằng thẻ mới. Nhờ khách mở thẻ mới trong Zalo (nhắn 'thẻ').", "error")
        except InvalidCard:
            flash("Mã thẻ không hợp lệ.", "error")
        return None
    phone = normalize_phone(query)
    member = find_by_phone(db, phone) if phone else find_by_code(db, query)
    if member is None:
        flash(f"Không tìm thấy thành viên với “{query[:40]}”.", "error")
    return member


def _may_reverse(entry: LedgerEntry, actor: CounterActor) -> bool:
    if entry.kind not in (EntryKind.EARN, EntryKind.PAY):
        return False
    return actor.is_owner or can_self_reverse(get_session(), entry, actor, _now())


def _op() -> str:
    """The form's one-time operation id: a double click or a resubmitted form reuses it."""
    op = request.form.get("op", "")
    if not op or len(op) > 64:
        abort(400)
    return op


def _now() -> datetime:
    return utcnow()
