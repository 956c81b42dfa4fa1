"""What the console says when the domain refuses: one table from error code to Vietnamese words.

Like templates/replies/ for the chat, so a cashier and a marketer read the same sentence for the same refusal
on every page. Keys are `LoyaltyError.code`, or `code:reason` for errors that carry a reason.
"""

from __future__ import annotations

from loyalty import format as fmt
from loyalty import placeholders
from loyalty.errors import LinkRefused, LoyaltyError, PaymentRefused

ERRORS = {
    "invalid_amount": "Số tiền không hợp lệ. Ví dụ: 250000 hoặc 250.000 hoặc 250k.",
    "member_blocked": "Thành viên đang bị khóa.",
    "member_not_found": "Không tìm thấy thành viên.",
    "voucher_not_found": "Không tìm thấy voucher này. Kiểm tra lại mã.",
    "voucher_expired": "Voucher đã hết hạn, không dùng được.",
    "voucher_used": "Voucher này đã được sử dụng rồi.",
    "voucher_cancelled": "Voucher này đã bị hủy.",
    "voucher_wrong_member": "Voucher này thuộc về thành viên khác.",
    "insufficient_points": "Thành viên không còn đủ điểm.",
    "already_reversed": "Giao dịch này đã được hoàn rồi.",
    "not_reversible": "Giao dịch này không hoàn được.",
    "link_refused:wrong_code": "Mã xác nhận không đúng. Nhờ khách mở lại tin nhắn của quán trong Zalo và đọc lại mã.",
    "link_refused:no_request": "Không có yêu cầu liên kết nào đang chờ (hết hạn hoặc đã hủy). "
    "Nhờ khách nhắn lại số điện thoại.",
    "link_refused:taken": "Thẻ này hoặc Zalo của khách đã được liên kết rồi.",
    "payment_refused:off": "Cửa hàng chưa bật thanh toán bằng điểm (trang Chương trình).",
    "payment_refused:min_balance": "Khách cần có ít nhất {limit} điểm mới trừ điểm vào hóa đơn được.",
    "payment_refused:over_limit": "Hóa đơn này trừ được tối đa {limit} điểm.",
    "payment_refused:insufficient": "Khách chỉ còn {limit} điểm.",
    "payment_refused:invalid": "Số điểm và số tiền hóa đơn phải lớn hơn 0.",
}
FALLBACK = "Không thực hiện được. Vui lòng thử lại."


def message(error: LoyaltyError | str) -> str:
    """The console's sentence for a refusal (an exception, or its code)."""
    if isinstance(error, str):
        return ERRORS.get(error, FALLBACK)
    if isinstance(error, LinkRefused):
        return ERRORS.get(f"{error.code}:{error.reason}", FALLBACK)
    if isinstance(error, PaymentRefused):
        return ERRORS.get(f"{error.code}:{error.reason}", FALLBACK).format(limit=fmt.points(error.limit))
    return ERRORS.get(error.code, FALLBACK)


PLACEHOLDER_LABELS = {
    "ten": "tên khách",
    "diem": "số điểm",
    "hang": "hạng",
    "shop": "tên quán",
    "qua": "tên quà",
    "ma": "mã voucher",
    "han": "hạn dùng",
    "quyen_loi": "quyền lợi của hạng",
    "so_diem": "số điểm sắp hết hạn",
    "ngay": "ngày hết hạn",
    "ma_xac_nhan": "mã xác nhận",
    "goi": "tên gói VIP",
}


def placeholder_error(text: str, occasion: str) -> str | None:
    """The form's message for a text with "{…}" it may not use (loyalty.placeholders.ALLOWED), or None."""
    allowed = placeholders.ALLOWED[occasion]
    bad = placeholders.unknown(text, allowed)
    if not bad:
        return None
    known = ", ".join(f"{{{name}}} ({PLACEHOLDER_LABELS[name]})" for name in PLACEHOLDER_LABELS if name in allowed)
    return f"Không hiểu {', '.join(bad)}. Chỉ dùng được: {known}."


HEALTH = {
    "database_down": "Không kết nối được cơ sở dữ liệu: tích điểm và tin nhắn đang dừng.",
    "queue_down": "Không kết nối được hàng đợi (Redis): tin nhắn của khách đang chờ, sẽ được trả lời khi có lại.",
    "events_waiting": "Có tin nhắn của khách chờ quá 2 phút chưa được trả lời. Kiểm tra tiến trình worker.",
    "messages_waiting": "Có tin gửi khách chờ quá 2 phút chưa gửi được. Kiểm tra tiến trình worker.",
    "no_worker": "Không có tiến trình worker nào đang chạy (quá 1 phút không thấy tín hiệu): khách không được trả lời.",
    "no_scheduler": "Bộ hẹn giờ của hàng đợi không chạy: gửi lại và tin hẹn giờ đang dừng.",
    "requests_overdue": "Có yêu cầu xóa dữ liệu của khách đã quá hạn: xử lý ở trang Dữ liệu cá nhân.",
    "zalo_token": (
        "Kết nối Zalo OA bị gián đoạn: không gia hạn được mã truy cập. "
        "Hãy cấp quyền lại cho ứng dụng trên Zalo, nếu không bot sẽ ngừng trả lời khách."
    ),
    "no_cron": "Tiến trình cron không chạy (quá 2 phút không thấy tín hiệu): việc định kỳ và tự phục hồi đang dừng.",
}
