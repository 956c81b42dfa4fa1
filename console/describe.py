"""Audit rows and ledger actors in words an owner reads: "Thu ngân Hoa", "Số tiền: 250.000đ; Hóa đơn: HD12",
not "staff:3" and "amount: 250000; bill_ref: HD12"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loyalty import format as fmt
from models import Staff

ACTORS = {"cli": "Dòng lệnh trên máy chủ", "system": "Hệ thống", "demo": "Dữ liệu mẫu", "chat": "Khách qua Zalo"}
DETAIL_LABELS = {
    "amount": "Số tiền",
    "bill_ref": "Hóa đơn",
    "points": "Điểm",
    "code": "Mã",
    "username": "Tài khoản",
    "name": "Tên",
    "reason": "Lý do",
    "password": "Mật khẩu",
    "active": "Đang làm",
    "role": "Vai trò",
    "preset": "Chương trình khởi đầu",
    "stores": "Cửa hàng",
    "oa_id": "OA",
    "follower_sync": "Lần đồng bộ người quan tâm",
    "sync_id": "Lần đồng bộ",
    "reversed_entry_id": "Hoàn bút toán số",
    "template_id": "Mẫu tin",
    "purpose": "Dùng cho",
    "mapping": "Ghép tham số",
    "broadcast_id": "Chiến dịch số",
    "key_id": "Khóa API số",
    "version": "Phiên bản",
    "request_id": "Yêu cầu số",
    "zalo_user_id": "Tài khoản Zalo",
    "from": "Từ",
    "to": "Thành",
    "format": "Định dạng",
    "what": "Nội dung",
    "reward_id": "Quà số",
    "promotions": "Khuyến mãi",
    "threshold": "Mức điểm",
    "group": "Nhóm",
    "tier": "Hạng",
    "until": "Đến ngày",
    "members": "Số thành viên",
    "added": "Đã thêm",
    "vnd": "Quy ra tiền",
    "earn_points": "Điểm riêng",
    "earn_unit_amount": "mỗi số tiền",
    "is_active": "Đang mở",
    "kind": "Loại",
    "benefits": "Quyền lợi",
    "earn_multiplier_pct": "Hệ số tích (%)",
    "reward_discount_pct": "Giảm điểm đổi quà (%)",
}
VALUE_WORDS = {
    "changed": "đã đổi",
    "reset": "đặt lại",
    "cafe": "quán cà phê",
    "spa": "spa",
    "minimart": "cửa hàng tiện lợi",
}


def actor_label(actor: str | None, people: Mapping[int, Staff]) -> str:
    """ "staff:3" -> the staff member's name; "api:7" -> "Khóa API #7"; others by ACTORS."""
    if not actor:
        return ""
    kind, _, ident = actor.partition(":")
    if kind == "staff" and ident.isdigit() and int(ident) in people:
        return people[int(ident)].name
    if kind == "api" and ident:
        return f"Khóa API #{ident}"
    return ACTORS.get(actor, actor)


def detail_text(details: Mapping[str, Any] | None) -> str:
    """One line: each known key in Vietnamese, amounts in đồng, changes as "cũ → mới"."""
    parts = []
    for key, value in (details or {}).items():
        parts.append(f"{DETAIL_LABELS.get(key, key)}: {_value(key, value)}")
    return "; ".join(parts)


def _value(key: str, value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and key not in ("stores",):  # a change: [old, new]
        return f"{_plain(key, value[0])} → {_plain(key, value[1])}"
    if isinstance(value, list):
        return ", ".join(_plain(key, v) for v in value)
    return _plain(key, value)


def _plain(key: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "có" if value else "không"
    if key in ("amount", "vnd") and isinstance(value, int):
        return fmt.vnd(value)
    if key == "points" and isinstance(value, int):
        return fmt.points(value)
    if isinstance(value, dict):  # a tier's changes: {"threshold": [300, 500], ...}
        return "(" + ", ".join(f"{DETAIL_LABELS.get(k, k)}: {_value(k, v)}" for k, v in value.items()) + ")"
    return VALUE_WORDS.get(str(value), str(value))
