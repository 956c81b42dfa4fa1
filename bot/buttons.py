"""Quick-reply buttons (oa.query.show): each sends a command the router understands when typed too."""

from zalo.messages import Button

BALANCE = Button("Xem điểm", "#DIEM")
CARD = Button("Thẻ thành viên", "#THE")
REWARDS = Button("Đổi quà", "#QUA")
HISTORY = Button("Lịch sử", "#LICHSU")
TIERS = Button("Hạng thành viên", "#HANG")
REFERRAL = Button("Giới thiệu bạn", "#GIOITHIEU")
HELP = Button("Xem lệnh", "#TROGIUP")
YES = Button("CÓ", "CÓ")
NO = Button("KHÔNG", "KHÔNG")
OFFERS_YES = Button("Nhận ưu đãi", "#NHANTIN")
OFFERS_NO = Button("Không nhận", "#KHONGNHANTIN")
