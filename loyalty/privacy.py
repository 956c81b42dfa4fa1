"""Customers' rights over their personal data (Law 91/2025/QH15, Decree 356/2025/ND-CP): the privacy notice,
access ("dữ liệu của tôi"), erasure ("xóa tài khoản") and how long raw data is kept.

Erasure removes or blanks every personal field of the member and of their Zalo account, in every table that
holds one (names, phone, birthday, Zalo ids and profile, stored webhook bodies, message texts, link requests,
conversation state), while the ledger keeps its entries so balances, liabilities and reports stay exact: the
entries point at a member row that no longer says who it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from loyalty.locks import lock_member
from models import (
    ConversationState,
    DataRequest,
    EntryKind,
    EventStatus,
    ImportStatus,
    LedgerEntry,
    LinkRequest,
    Member,
    MemberGroup,
    MemberImport,
    MemberStatus,
    OutboxMessage,
    OutboxStatus,
    PrivacyNotice,
    RequestKind,
    RequestStatus,
    Tier,
    WebhookEvent,
    ZaloUser,
    rows_updated,
)
from models.privacy import Consent

REQUEST_DUE = timedelta(days=15)  # the shop's own deadline for an erasure (README: the decree's is unverified)
DEFAULT_NOTICE = (
    "{shop} giữ các thông tin sau của thành viên: họ tên, số điện thoại, ngày sinh, tài khoản Zalo (mã người "
    "dùng, tên hiển thị, ảnh đại diện), lịch sử tích và đổi điểm, voucher.\n\n"
    "Mục đích: quản lý thẻ thành viên, tích điểm, đổi quà, gửi tin về điểm và voucher của bạn. Chỉ khi bạn "
    'đồng ý ("nhận tin"), {shop} mới gửi ưu đãi, quà sinh nhật và khuyến mãi qua Zalo (tin nhắn OA hoặc tin '
    "mẫu ZBS), vài tin mỗi tháng.\n\n"
    'Quyền của bạn: nhắn "hủy nhận tin" để dừng ưu đãi bất cứ lúc nào; "dữ liệu của tôi" để xem thông tin '
    '{shop} đang giữ; "xóa tài khoản" để yêu cầu xóa. {shop} xác nhận yêu cầu ngay và thực hiện trong thời '
    "hạn pháp luật quy định.\n\n"
    "Dữ liệu không được bán hay chia sẻ cho bên khác ngoài Zalo (nền tảng gửi tin). Nội dung tin nhắn thô "
    "được xóa sau {days} ngày."
)


# --- the notice ----------------------------------------------------------------------------------------------


def current_notice(session: Session, shop: str, retention_days: int) -> tuple[str, str]:
    """(version, text) of the notice customers see now; "v0" is the built-in one until the owner writes theirs."""
    row = session.scalar(select(PrivacyNotice).order_by(PrivacyNotice.id.desc()).limit(1))
    if row is None:
        return "v0", DEFAULT_NOTICE.format(shop=shop, days=retention_days)
    return f"v{row.id}", row.text.replace("{shop}", shop)


def notice_version(session: Session) -> str:
    latest = session.scalar(select(PrivacyNotice.id).order_by(PrivacyNotice.id.desc()).limit(1))
    return f"v{latest}" if latest else "v0"


def publish_notice(session: Session, text: str, by: str, now: datetime) -> PrivacyNotice:
    """A new version (the old ones stay: consents name the version they were given under)."""
    notice = PrivacyNotice(text=text.strip(), created_by=by, created_at=now)
    session.add(notice)
    session.flush()
    return notice


# --- access ---------------------------------------------------------------------------------------------------


def member_data(session: Session, member: Member) -> dict[str, Any]:
    """Everything personal the shop holds about the member, for "dữ liệu của tôi" and the console."""
    user = (
        session.scalar(select(ZaloUser).where(ZaloUser.user_id == member.zalo_user_id)) if member.zalo_user_id else None
    )
    tier = session.get(Tier, member.tier_id) if member.tier_id else None
    return {
        "name": member.name,
        "phone": member.phone,
        "birthday": member.birthday,
        "code": member.code,
        "tier": tier.name if tier else "",
        "points": member.points_balance,
        "joined_at": member.joined_at,
        "consent": member.marketing_consent,
        "zalo_name": user.display_name if user else None,
    }


def record_access(session: Session, member: Member, channel: str, now: datetime) -> DataRequest:
    """An access request answered on the spot (the chat shows the data at once), kept as a record."""
    request = DataRequest(
        kind=RequestKind.ACCESS,
        member_id=member.id,
        channel=channel,
        status=RequestStatus.DONE,
        created_at=now,
        due_at=now,
        done_at=now,
        done_by=channel,
    )
    session.add(request)
    return request


# --- erasure --------------------------------------------------------------------------------------------------


def request_erasure(session: Session, member: Member, channel: str, now: datetime) -> DataRequest:
    """The member's open erasure request, or a new one due in REQUEST_DUE."""
    open_request = session.scalar(
        select(DataRequest).where(
            DataRequest.member_id == member.id,
            DataRequest.kind == RequestKind.ERASURE,
            DataRequest.status == RequestStatus.OPEN,
        )
    )
    if open_request is not None:
        return open_request
    request = DataRequest(
        kind=RequestKind.ERASURE, member_id=member.id, channel=channel, created_at=now, due_at=now + REQUEST_DUE
    )
    session.add(request)
    session.flush()
    return request


def erase_member(session: Session, member_id: int, *, by: str, now: datetime) -> Member:
    """Forget who the member was. Points stay on the ledger (exact balances and reports); nobody can earn or
    redeem as them any more (status erased, no Zalo account, no phone)."""
    member = lock_member(session, member_id, allow_blocked=True)
    user_id, phone = member.zalo_user_id, member.phone
    member.name, member.phone, member.birthday = "", None, None
    member.zalo_user_id, member.zalo_tag, member.status = None, None, MemberStatus.ERASED
    member.tier_held_reason = None  # the owner's words about them
    if user_id:
        _forget_zalo_user(session, user_id)
    session.execute(update(LinkRequest).where(LinkRequest.member_id == member_id).values(name="", birthday=None))
    session.execute(delete(MemberGroup).where(MemberGroup.member_id == member_id))  # a group can say who one is
    # The referrer's bonus entry named the referee: amounts stay, the name goes.
    session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.kind == EntryKind.REFERRAL_BONUS, LedgerEntry.source_ref == member.code)
        .values(reason="thưởng giới thiệu (thành viên đã xóa)")
    )
    session.execute(update(Consent).where(Consent.member_id == member_id).values(zalo_user_id=None))
    if user_id:  # "chat:<zalo user>" named who gave it: the record stays (it was given), the id goes
        session.execute(
            update(Consent)
            .where(Consent.member_id == member_id, Consent.actor == f"chat:{user_id}")
            .values(actor="chat")
        )
    if phone:  # template messages sent to the phone
        _blank_messages(session, OutboxMessage.message["phone"].as_string() == phone)
    session.execute(
        update(DataRequest)
        .where(DataRequest.member_id == member_id, DataRequest.kind == RequestKind.ERASURE)
        .where(DataRequest.status == RequestStatus.OPEN)
        .values(status=RequestStatus.DONE, done_at=now, done_by=by)
    )
    session.flush()
    return member


def _forget_zalo_user(session: Session, user_id: str) -> None:
    session.execute(delete(ConversationState).where(ConversationState.user_id == user_id))
    session.execute(
        update(LinkRequest).where(LinkRequest.zalo_user_id == user_id).values(zalo_user_id="", name="", birthday=None)
    )
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.zalo_user_id == user_id)
        .values(zalo_user_id=None, payload={"erased": True}, error=None)
    )
    _blank_messages(session, OutboxMessage.zalo_user_id == user_id)
    session.execute(delete(ZaloUser).where(ZaloUser.user_id == user_id))


def _blank_messages(session: Session, which: Any) -> None:
    """Message texts carry names and points: kept as rows (counts, reports), emptied of what they said; those
    not sent yet are cancelled (nobody to send them to any more)."""
    session.execute(
        update(OutboxMessage)
        .where(which, OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboxMessage)
        .where(which)
        .values(zalo_user_id=None, message={"erased": True}, last_error=None)
        .execution_options(synchronize_session=False)
    )


# --- retention ------------------------------------------------------------------------------------------------


def prune_raw_data(session: Session, now: datetime, keep_days: int) -> dict[str, int]:
    """Raw copies of personal data older than `keep_days`: webhook bodies (names, phones) and finished message
    texts are emptied; the rows stay (a redelivered event is still recognised by its dedupe key, reports still
    count). Uploaded member lists are dropped once applied, or after `keep_days` if never confirmed."""
    before = now - timedelta(days=keep_days)
    events = rows_updated(
        session,
        update(WebhookEvent)
        .where(WebhookEvent.received_at < before, WebhookEvent.status != EventStatus.RECEIVED)
        .where(WebhookEvent.pruned_at.is_(None))
        .values(payload={"pruned": True}, pruned_at=now),
    )
    finished = [
        OutboxStatus.SENT,
        OutboxStatus.FAILED,
        OutboxStatus.SKIPPED,
        OutboxStatus.UNKNOWN,
        OutboxStatus.CANCELLED,
    ]
    messages = rows_updated(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.created_at < before, OutboxMessage.status.in_(finished))
        .where(OutboxMessage.pruned_at.is_(None))
        .values(message={"pruned": True}, pruned_at=now),
    )
    uploads = rows_updated(
        session,
        update(MemberImport)
        .where(MemberImport.content != b"")
        .where((MemberImport.status.in_([ImportStatus.DONE, ImportStatus.FAILED])) | (MemberImport.created_at < before))
        .values(content=b""),
    )
    return {"events": events, "messages": messages, "uploads": uploads}
