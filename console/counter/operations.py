"""What happens at the counter, for the cashier page and the POS API alike.

Each operation writes the ledger, the audit trail and the member's chat notification (an outbox row)
in the caller's transaction; the notification's delivery job starts when the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.notices import referral_notices
from bot.replies import Reply, render
from bot.stamps import stamped_replies
from console.actors import CounterActor
from jobs.outbox import OutboxItem, deliver_after_commit, queue_messages
from loyalty import earning, ledger, payments, rewards, stamps, vip
from loyalty import format as fmt
from loyalty.claims import create_claim
from loyalty.codes import pretty_voucher_code
from loyalty.errors import LoyaltyError
from loyalty.linking import confirm_link
from loyalty.program import ProgramRules
from loyalty.referrals import take_back_affiliate_share
from models import (
    AuditLog,
    Claim,
    EntryKind,
    LedgerEntry,
    LinkRequest,
    Member,
    Reward,
    Stamp,
    StampKind,
    Tier,
    Voucher,
    utcnow,
)
from zalo.messages import text_message

SELF_REVERSAL_WINDOW = timedelta(minutes=15)


class NotAllowed(LoyaltyError):
    code = "not_allowed"


def earn_for_bill(
    session: Session,
    member_id: int,
    amount: int,
    *,
    key: str,
    by: CounterActor,
    rules: ProgramRules,
    tz: ZoneInfo,
    now: datetime,
    bill_ref: str | None = None,
    channel: str = "counter",
    new_bill: bool = False,
    items: Mapping[str, int] | None = None,
) -> earning.EarnResult:
    """Points and stamps for a bill; the member's chat hears about both (the stamp cards as pictures)."""
    result = earning.earn(
        session,
        member_id,
        amount,
        key=key,
        rules=rules,
        tz=tz,
        now=now,
        actor=by.ledger_actor,
        store_id=by.store_id,
        channel=channel,
        bill_ref=bill_ref or None,
        new_bill=new_bill,
        items=items,
    )
    if result.replayed or (result.entry is None and not result.stamps_added):
        return result
    details: dict[str, Any] = {"amount": amount, "bill_ref": bill_ref, "points": result.points}
    if result.stamps:
        details["stamps"] = {str(p.card.id): p.added for p in result.stamps}
    entry_id = result.entry.id if result.entry else None
    audit(session, by, "earn", now, member_id=member_id, entry_id=entry_id, details=details)
    member = session.get(Member, member_id)
    assert member is not None
    replies = stamped_replies(session, result.stamps, tz)
    if result.entry is not None:
        text = render(
            "earned",
            points=fmt.points(result.points),
            amount=fmt.vnd(amount),
            bill_ref=bill_ref,
            balance=fmt.points(result.balance),
        )
        replies.insert(0, Reply(text=text))
    if member.zalo_user_id:
        messages = [m for r in replies for m in r.to_outbox()]
        notice_key = f"earn:{entry_id}" if entry_id else f"stamps:{key}"[:140]
        deliver_after_commit(
            session, queue_messages(session, key=notice_key, user_id=member.zalo_user_id, messages=messages)
        )
    for n, (user_id, notice) in enumerate(referral_notices(session, result.referral, member)):
        _notify_user(session, user_id, f"earn:{entry_id}:referral:{n}", notice)
    return result


def sell_vip(
    session: Session,
    member_id: int,
    plan_id: int,
    *,
    key: str,
    by: CounterActor,
    now: datetime,
    tz: ZoneInfo,
    bill_ref: str | None = None,
) -> vip.VipSale:
    """A paid membership sold at the till: the period, the tier held, the audit and the member's message."""
    sale = vip.sell(
        session, member_id, plan_id, key=key, now=now, by=by.actor, store_id=by.store_id, bill_ref=bill_ref or None
    )
    if sale.replayed:
        return sale
    membership = sale.membership
    details = {"plan": sale.plan.name, "price": membership.price, "ends_at": membership.ends_at.isoformat()}
    audit(session, by, "sell_vip", now, member_id=member_id, details={**details, "bill_ref": bill_ref})
    text = render(
        "vip_welcome",
        plan=sale.plan.name,
        tier=sale.tier.name,
        renewed=membership.starts_at > now,
        until=fmt.day(membership.ends_at, tz),
        benefits=sale.plan.benefits or sale.tier.benefits,
    )
    _notify(session, member_id, f"vip:{membership.id}", text)
    return sale


def pay_with_points(
    session: Session,
    member_id: int,
    points: int,
    bill_amount: int,
    *,
    key: str,
    by: CounterActor,
    rules: ProgramRules,
    now: datetime,
    bill_ref: str | None = None,
    channel: str = "counter",
) -> payments.PaymentResult:
    """Points pay part of a bill (PaymentRefused says why not); the member reads "−50 điểm (50.000đ) cho hóa đơn
    HD123" in the chat. A replay (double click, a POS retry) returns the first payment and tells nobody twice."""
    result = payments.pay_with_points(
        session,
        member_id,
        points,
        bill_amount=bill_amount,
        bill_ref=bill_ref,
        key=key,
        rules=rules,
        now=now,
        actor=by.ledger_actor,
        store_id=by.store_id,
        channel=channel,
    )
    if result.replayed:
        return result
    audit(
        session,
        by,
        "pay_points",
        now,
        member_id=member_id,
        entry_id=result.entry.id,
        details={"points": result.points, "amount": bill_amount, "bill_ref": bill_ref, "vnd": result.vnd},
    )
    text = render(
        "points_paid",
        points=fmt.points(result.points),
        vnd=fmt.vnd(result.vnd),
        bill_ref=bill_ref,
        balance=fmt.points(result.balance),
    )
    _notify(session, member_id, f"pay:{result.entry.id}", text)
    return result


def refund_points_payment(session: Session, entry_id: int, *, by: CounterActor, now: datetime) -> LedgerEntry:
    """A refunded bill gives its points back. A cashier: only their own latest payment, within 15 minutes."""
    entry = _entry_to_undo(session, entry_id, EntryKind.PAY, by, now, "chỉ hoàn được một lần trừ điểm vào hóa đơn")
    reversal, replayed = payments.refund_payment(session, entry.id, now=now, actor=by.ledger_actor)
    if replayed:
        return reversal
    audit(
        session,
        by,
        "refund_points",
        now,
        member_id=entry.member_id,
        entry_id=reversal.id,
        details={"reversed_entry_id": entry.id, "points": -entry.points, "bill_ref": entry.source_ref},
    )
    member = session.get(Member, entry.member_id)
    assert member is not None
    text = render(
        "points_payment_refunded",
        points=fmt.points(-entry.points),
        bill_ref=entry.source_ref,
        balance=fmt.points(member.points_balance),
    )
    _notify(session, entry.member_id, f"reverse:{reversal.id}", text)
    return reversal


def reverse_earn(session: Session, entry_id: int, *, by: CounterActor, now: datetime) -> LedgerEntry:
    """Refund a bill's points. A cashier may reverse only their own latest earn within 15 minutes."""
    entry = _entry_to_undo(session, entry_id, EntryKind.EARN, by, now, "only an earn can be reversed here")
    reversal, replayed = ledger.reverse(
        session, entry.id, key=f"refund:{entry.id}", now=now, actor=by.ledger_actor, reason="hoàn hóa đơn"
    )
    if replayed:
        return reversal
    kept = take_back_affiliate_share(session, entry, now=now, actor=by.ledger_actor)
    if kept is not None:  # the referrer spent it already: it stays, the audit says so, the owner may adjust
        audit(session, by, "affiliate_kept", now, member_id=kept.member_id, details={"points": kept.points})
    unstamped = stamps.unstamp_visit(session, entry.idempotency_key, now=now, actor=by.ledger_actor)
    details = {"reversed_entry_id": entry.id, "points": entry.points, **_unstamped_details(unstamped)}
    audit(session, by, "reverse", now, member_id=entry.member_id, entry_id=reversal.id, details=details)
    member = session.get(Member, entry.member_id)
    assert member is not None
    text = render(
        "earn_reversed",
        points=fmt.points(entry.points),
        bill_ref=entry.source_ref,
        amount=fmt.vnd(entry.bill_amount or 0),
        balance=fmt.points(member.points_balance),
        unstamped=unstamped,
    )
    _notify(session, entry.member_id, f"reverse:{reversal.id}", text)
    return reversal


def reverse_stamps(session: Session, stamp_id: int, *, by: CounterActor, now: datetime) -> list[stamps.Unstamped]:
    """Refund a bill that gave only stamps (no points): the same rules as refunding an earn."""
    row = session.get(Stamp, stamp_id)
    if row is None or row.kind != StampKind.STAMP or row.visit_key is None:
        raise NotAllowed("only a bill's stamps can be taken back here")
    if row.visit_key and ledger.find_entry(session, row.visit_key) is not None:
        raise NotAllowed("hóa đơn này có tích điểm: hoàn hóa đơn để trả cả điểm và tem")
    if not by.is_owner:
        _check_own_latest(session, Stamp, row, by, now, "lần tích tem")
    unstamped = stamps.unstamp_visit(session, row.visit_key, now=now, actor=by.ledger_actor)
    if not unstamped:  # taken back before: nothing more to do or say
        return unstamped
    audit(session, by, "reverse_stamps", now, member_id=row.member_id, details=_unstamped_details(unstamped))
    text = render("stamps_reversed", unstamped=unstamped, bill_ref=row.bill_ref)
    _notify(session, row.member_id, f"unstamp:{row.id}", text)
    return unstamped


def _unstamped_details(unstamped: list[stamps.Unstamped]) -> dict[str, Any]:
    if not unstamped:
        return {}
    return {
        "stamps": {str(u.card.id): {"taken": u.taken, "kept": u.kept} for u in unstamped},
        "vouchers_cancelled": [u.voucher_cancelled.code for u in unstamped if u.voucher_cancelled],
    }


def use_voucher(
    session: Session,
    code: str,
    *,
    key: str,
    by: CounterActor,
    now: datetime,
    tz: ZoneInfo,
    member_id: int | None = None,
) -> Voucher:
    voucher = rewards.use_voucher(
        session, code, key=key, now=now, used_by=by.actor, store_id=by.store_id, member_id=member_id
    )
    if voucher.used_key != key or _already_audited(session, voucher.id):
        return voucher
    audit(
        session,
        by,
        "use_voucher",
        now,
        member_id=voucher.member_id,
        voucher_id=voucher.id,
        details={"code": voucher.code},
    )
    reward = session.get(Reward, voucher.reward_id)
    text = render(
        "voucher_used",
        code=pretty_voucher_code(voucher.code),
        reward=reward.name if reward else "",
        time=now.astimezone(tz).strftime("%H:%M %d/%m/%Y"),
    )
    _notify(session, voucher.member_id, f"voucher-used:{voucher.id}", text)
    return voucher


def link_chat_user(
    session: Session, member_id: int, code: str, *, by: CounterActor, now: datetime, shop_name: str
) -> LinkRequest:
    """The cashier checked the person and typed the code from their chat: link, audit, welcome them in the chat."""
    request = confirm_link(session, member_id=member_id, code=code, by=by.actor, now=now)
    member = session.get(Member, member_id)
    assert member is not None
    audit(session, by, "link_zalo", now, member_id=member_id, details={"zalo_user_id": request.zalo_user_id})
    tier = session.get(Tier, member.tier_id) if member.tier_id else None
    text = render(
        "linked",
        name=member.name or request.name or "bạn",
        shop_name=shop_name,
        points=fmt.points(member.points_balance),
        tier=tier.name if tier else "Thành viên",
    )
    caption = render("card_caption", name=member.name or "bạn")
    messages: list[OutboxItem] = [text_message(text), ("member_card", {"member_id": member.id, "caption": caption})]
    ids = queue_messages(session, key=f"link:{request.id}", user_id=request.zalo_user_id, messages=messages)
    deliver_after_commit(session, ids)
    return request


def new_claim(
    session: Session, amount: int, *, key: str, by: CounterActor, now: datetime, bill_ref: str | None = None
) -> Claim:
    claim, replayed = create_claim(
        session, amount, key=key, now=now, store_id=by.store_id, bill_ref=bill_ref or None, created_by=by.actor
    )
    if not replayed:
        audit(session, by, "create_claim", now, claim_id=claim.id, details={"amount": amount, "bill_ref": bill_ref})
    return claim


def recent_earns(session: Session, store_id: int | None, limit: int = 20) -> list[LedgerEntry]:
    """The store's latest counter entries (earns, points paid on bills, reversals), newest first."""
    stmt = (
        select(LedgerEntry)
        .where(LedgerEntry.kind.in_([EntryKind.EARN, EntryKind.PAY, EntryKind.REVERSE]))
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    if store_id is not None:
        stmt = stmt.where(LedgerEntry.store_id == store_id)
    return list(session.scalars(stmt))


def recent_stamp_only_visits(session: Session, store_id: int | None, limit: int = 10) -> list[Stamp]:
    """The store's latest bills that gave stamps and no points (a stamp-only card): refunded by their stamp."""
    has_entry = select(LedgerEntry.id).where(LedgerEntry.idempotency_key == Stamp.visit_key).exists()
    stmt = (
        select(Stamp)
        .where(Stamp.kind == StampKind.STAMP, Stamp.visit_key.is_not(None), ~has_entry)
        .order_by(Stamp.id.desc())
        .limit(limit)
    )
    if store_id is not None:
        stmt = stmt.where(Stamp.store_id == store_id)
    return list(session.scalars(stmt))


def can_self_reverse(session: Session, entry: LedgerEntry, by: CounterActor, now: datetime) -> bool:
    try:
        _check_self_reversal(session, entry, by, now)
    except NotAllowed:
        return False
    reversed_already = session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == entry.id))
    return reversed_already is None


def _entry_to_undo(
    session: Session, entry_id: int, kind: str, by: CounterActor, now: datetime, wrong_kind: str
) -> LedgerEntry:
    """The entry a refund at the counter undoes: of that kind, and a cashier's own latest within 15 minutes
    (owners: any)."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None or entry.kind != kind:
        raise NotAllowed(wrong_kind)
    if not by.is_owner:
        _check_self_reversal(session, entry, by, now)
    return entry


def _check_self_reversal(session: Session, entry: LedgerEntry, by: CounterActor, now: datetime) -> None:
    what = "lần trừ điểm" if entry.kind == EntryKind.PAY else "giao dịch tích điểm"
    _check_own_latest(session, LedgerEntry, entry, by, now, what)


def _check_own_latest(
    session: Session, model: type[LedgerEntry] | type[Stamp], row: Any, by: CounterActor, now: datetime, what: str
) -> None:
    """A cashier undoes only their own latest row of this kind (an entry, a bill's stamps), within 15 minutes."""
    _check_own_recent(row.actor_id, row.created_at, by, now)
    latest = session.scalar(
        select(model.id).where(model.kind == row.kind, model.actor_id == by.actor).order_by(model.id.desc()).limit(1)
    )
    if latest != row.id:
        raise NotAllowed(f"chỉ hoàn được {what} gần nhất của bạn")


def _check_own_recent(actor_id: str | None, created_at: datetime, by: CounterActor, now: datetime) -> None:
    if actor_id != by.actor:
        raise NotAllowed("chỉ hoàn được giao dịch do chính bạn tạo")
    if now - created_at > SELF_REVERSAL_WINDOW:
        raise NotAllowed("đã quá 15 phút; cần chủ cửa hàng hoàn giúp")


def _notify(session: Session, member_id: int, key: str, text: str) -> None:
    """The member's chat message, sent once the caller commits (imported members without Zalo get none)."""
    member = session.get(Member, member_id)
    if member is not None and member.zalo_user_id:
        _notify_user(session, member.zalo_user_id, key, text)


def _notify_user(session: Session, zalo_user_id: str, key: str, text: str) -> None:
    ids = queue_messages(session, key=key, user_id=zalo_user_id, messages=[text_message(text)])
    deliver_after_commit(session, ids)


def audit(session: Session, by: CounterActor, action: str, now: datetime, **fields: Any) -> None:
    """One audit_log row: who (staff or API key), where (store), what, when."""
    session.add(
        AuditLog(
            actor=by.actor,
            staff_id=by.staff_id,
            store_id=by.store_id,
            action=action,
            ip=by.ip,
            created_at=now,
            **fields,
        )
    )


def _already_audited(session: Session, voucher_id: int) -> bool:
    stmt = select(AuditLog.id).where(AuditLog.voucher_id == voucher_id, AuditLog.action == "use_voucher")
    return session.scalar(stmt) is not None


def voucher_view(session: Session, voucher: Voucher) -> dict[str, Any]:
    reward = session.get(Reward, voucher.reward_id)
    member = session.get(Member, voucher.member_id)
    return {"voucher": voucher, "reward": reward, "member": member, "code": pretty_voucher_code(voucher.code)}


def save_changes(session: Session, by: CounterActor, target: Any, fields: dict[str, Any], *, action: str) -> None:
    """A console form's validated `fields` written onto `target` (a new row, or one being edited) and one audit
    row with what changed, `{field: [before, after]}` (dates as ISO text), under `<table>_id`."""
    new = target.id is None
    before = {} if new else {k: _plain(getattr(target, k, None)) for k in fields}
    for key, value in fields.items():
        setattr(target, key, value)
    session.add(target)
    session.flush()
    diff = {k: [before.get(k), _plain(v)] for k, v in fields.items() if before.get(k) != _plain(v)}
    ref = f"{target.__tablename__.removesuffix('s')}_id"
    audit(session, by, action, utcnow(), details={ref: target.id, **diff})


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
