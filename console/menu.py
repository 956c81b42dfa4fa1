"""The console's menu: every section a role may open, in groups, with the current one marked.

One list for every width: a phone shows it behind "☰ Menu" (a checkbox, no script), a desktop inline. The
current item is the one whose address is the longest prefix of the page's (a member's page marks
"Thành viên"), so the highlight follows the visitor everywhere, not only on the section's first page.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for

from models import Role, Staff

OWNER, MARKETER, CASHIER = Role.OWNER, Role.MARKETER, Role.CASHIER


@dataclass(frozen=True)
class Item:
    endpoint: str
    label: str
    roles: frozenset[Role]
    exact: bool = False  # "Tổng quan" is /admin/, a prefix of every admin page


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    current: bool


MENU: tuple[tuple[str, tuple[Item, ...]], ...] = (
    (
        "Khách hàng",
        (
            Item("admin.home", "Tổng quan", frozenset({OWNER, MARKETER}), exact=True),
            Item("admin.members", "Thành viên", frozenset({OWNER, MARKETER})),
            Item("results.index", "Hiệu quả", frozenset({OWNER, MARKETER})),
            Item("transfer.import_members", "Nhập / xuất", frozenset({OWNER, MARKETER})),
        ),
    ),
    (
        "Chương trình",
        (
            Item("admin.program", "Chương trình", frozenset({OWNER, MARKETER})),
            Item("catalog.tiers", "Hạng", frozenset({OWNER, MARKETER})),
            Item("catalog.rewards", "Quà", frozenset({OWNER, MARKETER})),
            Item("stamp_cards.index", "Thẻ tem", frozenset({OWNER, MARKETER})),
            Item("vip_plans.index", "Gói VIP", frozenset({OWNER, MARKETER})),
            Item("causes.index", "Ủng hộ", frozenset({OWNER, MARKETER})),
            Item("catalog.promotions", "Khuyến mãi", frozenset({OWNER, MARKETER})),
        ),
    ),
    (
        "Zalo",
        (
            Item("broadcasts.index", "Chiến dịch", frozenset({OWNER, MARKETER})),
            Item("templates.index", "Mẫu tin Zalo", frozenset({OWNER})),
            Item("connect.index", "Kết nối Zalo OA", frozenset({OWNER})),
        ),
    ),
    (
        "Vận hành",
        (
            Item("counter.home", "Quầy thu ngân", frozenset({OWNER, CASHIER})),
            Item("counter.claim_form", "Mã tích điểm", frozenset({OWNER, CASHIER})),
            Item("stores.index", "Cửa hàng", frozenset({OWNER})),
            Item("team.staff", "Nhân viên", frozenset({OWNER})),
            Item("team.api_keys", "Khóa API", frozenset({OWNER})),
            Item("privacy.index", "Dữ liệu cá nhân", frozenset({OWNER})),
            Item("team.audit_log", "Nhật ký", frozenset({OWNER})),
        ),
    ),
)


def menu_for(staff: Staff | None) -> list[tuple[str, list[Link]]]:
    if staff is None:
        return []
    role = Role(staff.role)
    groups = [
        (title, [(item, url_for(item.endpoint)) for item in items if role in item.roles]) for title, items in MENU
    ]
    current = _current_url([pair for _, pairs in groups for pair in pairs], request.path)
    return [(title, [Link(item.label, url, url == current) for item, url in pairs]) for title, pairs in groups if pairs]


def _current_url(pairs: list[tuple[Item, str]], path: str) -> str | None:
    matches = [url for item, url in pairs if path == url or (not item.exact and path.startswith(url))]
    return max(matches, key=len, default=None)
