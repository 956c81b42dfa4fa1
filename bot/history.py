"""How ledger entries read to people: "+25 điểm — hóa đơn HD123 — 12/11" (chat) and kind labels (exports).

Words for people live with the channels that show them, not in the domain (loyalty/ keeps numbers).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from loyalty import format as fmt
from models import EntryKind, LedgerEntry

KIND_LABELS = {
    EntryKind.EARN: "Tích điểm",
    EntryKind.REDEEM: "Đổi quà",
    EntryKind.EXPIRE: "Hết hạn",
    EntryKind.ADJUST: "Điều chỉnh",
    EntryKind.REVERSE: "Hoàn tác",
    EntryKind.REFERRAL_BONUS: "Thưởng giới thiệu",
    EntryKind.PAY: "Trừ vào hóa đơn",
    EntryKind.BONUS: "Thưởng",
    EntryKind.DONATE: "Ủng hộ",
}


def describe(entry: LedgerEntry, tz: ZoneInfo) -> str:
    """ "+25 điểm — hóa đơn HD123 — 12/11" for people."""
    return f"{fmt.signed_points(entry.points)} điểm — {_label(entry)} — {fmt.short_day(entry.created_at, tz)}"


def _label(entry: LedgerEntry) -> str:
    ref = entry.source_ref
    if entry.kind == EntryKind.EARN:
        if ref:
            return f"hóa đơn {ref}"
        return f"mua hàng {fmt.vnd(entry.bill_amount)}" if entry.bill_amount else "tích điểm"
    if entry.kind == EntryKind.REDEEM:
        return entry.reason or "đổi quà"
    if entry.kind == EntryKind.EXPIRE:
        return "điểm hết hạn"
    if entry.kind == EntryKind.REFERRAL_BONUS:
        return entry.reason or "thưởng giới thiệu"
    if entry.kind == EntryKind.PAY:
        return f"trừ vào hóa đơn {ref}" if ref else "trừ vào hóa đơn"
    if entry.kind == EntryKind.REVERSE:
        return f"hoàn tác {ref}" if ref else "hoàn tác"
    return entry.reason or "điều chỉnh"
