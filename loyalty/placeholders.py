"""Marketers' message texts with placeholders: "Chào {ten}, bạn có {diem} điểm".

Only the known names are replaced, by plain substitution. `str.format_map` would also run attribute and
index look-ups and format specs a marketer can type ("{ten.__class__}", "{ten:>5000000}": a 500 or a 5 MB
message), so it is never used on these texts. Forms refuse any other "{…}" with a field error.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from sqlalchemy.orm import Session

from loyalty import format as fmt
from models import Member, Tier

MEMBER = frozenset({"ten", "diem", "hang", "shop"})
# What each text may use: the member's fields plus those of its occasion.
ALLOWED = {
    "broadcast": MEMBER,
    "broadcast_gift": MEMBER | {"qua", "ma", "han"},  # with a voucher for each recipient
    "broadcast_followers": frozenset({"ten", "shop"}),  # followers who are not members have no points or tier
    "link_code": frozenset({"ma_xac_nhan", "ten", "shop"}),  # the phone-verification code (ZBS template only)
    "birthday_text": MEMBER | {"qua", "ma", "han"},
    "birthday_text_no_gift": MEMBER,
    "tier_up_text": MEMBER | {"quyen_loi"},
    "expiry_reminder_text": MEMBER | {"so_diem", "ngay"},
    "lapsed_text": MEMBER | {"qua", "ma", "han"},
    "vip_reminder_text": MEMBER | {"goi", "ngay"},
    "lapsed_text_no_gift": MEMBER,
}
_PLACEHOLDER = re.compile(r"\{([^{}\n]{0,40})\}")


def unknown(text: str, allowed: Collection[str]) -> list[str]:
    """The "{…}" in `text` that are not placeholders it may use, in order, once each."""
    found = [f"{{{name}}}" for name in _PLACEHOLDER.findall(text) if name not in allowed]
    return list(dict.fromkeys(found))


def personalize(text: str, **values: Any) -> str:
    """ "Chúc mừng {ten}" with the member's values: each "{name}" with a value is replaced by it, anything else
    stays as written (never an error)."""
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], text)


def follower_fields(display_name: str | None, shop: str) -> dict[str, Any]:
    """The values of a follower's placeholders when they are not a member (yet)."""
    return {"ten": display_name or "bạn", "shop": shop}


def member_fields(session: Session, member: Member, shop: str) -> dict[str, Any]:
    """The values of MEMBER's placeholders for this member."""
    tier = session.get(Tier, member.tier_id) if member.tier_id else None
    return {
        "ten": member.name or "bạn",
        "diem": fmt.points(member.points_balance),
        "hang": tier.name if tier else "",
        "shop": shop,
    }
