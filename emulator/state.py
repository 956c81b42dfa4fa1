"""The emulator's memory: customers, chat transcripts, uploads, tokens and injected failures (one process)."""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass
class Customer:
    user_id: str
    display_name: str
    phone: str
    birthday: str = ""  # dd/mm/yyyy, as Zalo shares it
    followed: bool = False
    last_interaction: datetime | None = None


@dataclass
class ZbsTemplate:
    """An approved ZBS template as Zalo's /template/info/v2 describes it (typed, length-limited params)."""

    template_id: str
    name: str
    params: list[dict[str, Any]]
    tag: str = "CUSTOMER_CARE"
    status: str = "ENABLE"
    by_uid: bool = True  # False: Zalo answers -249 to a send by UID
    price: int = 300


# The emulator's shop has these approved; their parameter names are the ones Zalo's editor suggests.
DEMO_TEMPLATES = (
    ZbsTemplate(
        "a1b2c3d4e5f6a7b8c9d0",
        "Quà sinh nhật thành viên",
        [
            {"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30, "acceptNull": False},
            {"name": "gift_name", "require": True, "type": "STRING", "maxLength": 30, "acceptNull": False},
            {"name": "voucher_code", "require": True, "type": "STRING", "maxLength": 30, "acceptNull": False},
            {"name": "expiry_date", "require": True, "type": "DATE", "maxLength": 20, "acceptNull": False},
        ],
    ),
    ZbsTemplate(
        "b2c3d4e5f6a7b8c9d0e1",
        "Nhắc điểm sắp hết hạn",
        [
            {"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30, "acceptNull": False},
            {"name": "points", "require": True, "type": "NUMBER", "maxLength": 20, "acceptNull": False},
            {"name": "expiry_date", "require": True, "type": "DATE", "maxLength": 20, "acceptNull": False},
        ],
        by_uid=False,
    ),
)


AUTH_CODE_LIFETIME = timedelta(minutes=10)


@dataclass
class Failure:
    code: int
    message: str
    times: int
    path: str = ""  # only calls whose path contains this (empty: any)


@dataclass
class EmulatorState:
    access_token: str = "demo-access-0"
    refresh_token: str = "demo-refresh-0"
    customers: dict[str, Customer] = field(default_factory=dict)
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    refreshes: int = 0
    # Consultation messages 48 h-7 d after a customer's last interaction draw on the OA package's quota.
    cs_quota_total: int = 2000
    cs_quota_used: int = 0
    # OAuth v4 codes the permission page handed out: code -> (code_challenge, redirect_uri, issued at).
    auth_codes: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)  # user_id -> the OA's tags on them
    templates: dict[str, ZbsTemplate] = field(default_factory=lambda: {t.template_id: t for t in DEMO_TEMPLATES})
    by_phone: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict
    )  # template messages to phones of no customer
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        return next(self._ids)

    def add_customer(self, name: str, phone: str, birthday: str = "") -> Customer:
        with self.lock:
            user_id = str(8_000_000_000_000_000_000 + secrets.randbelow(10**18))
            customer = Customer(user_id=user_id, display_name=name, phone=phone, birthday=birthday)
            self.customers[user_id] = customer
            self.transcripts[user_id] = []
            return customer

    def follow_before_the_bot(self, count: int) -> None:
        """Followers the OA had before tichdiem was installed: Zalo knows them, our app has had no event."""
        with self.lock:
            for i in range(count):
                name = f"{_SURNAMES[i % len(_SURNAMES)]} {_GIVEN[(i * 7) % len(_GIVEN)]}"
                customer = self.add_customer(name, phone="")
                customer.followed = True
                # some chatted this week, most long ago (outside the 7-day window)
                customer.last_interaction = datetime.now(UTC) - timedelta(days=2 + (i * 11) % 120)

    def customer_by_phone(self, phone: str) -> Customer | None:
        """Zalo finds the account of a phone ("84…"); the emulator's customers type theirs as "09…"."""
        local = "0" + phone[2:] if phone.startswith("84") else phone
        return next((c for c in self.customers.values() if c.phone in (phone, local)), None)

    def say(self, user_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Append to a customer's transcript (what the chat page shows)."""
        with self.lock:
            entry = {"id": self.next_id(), "at": datetime.now(UTC).isoformat(), **entry}
            self.transcripts.setdefault(user_id, []).append(entry)
            return entry

    def touch(self, user_id: str) -> None:
        with self.lock:
            customer = self.customers.get(user_id)
            if customer:
                customer.last_interaction = datetime.now(UTC)

    def in_free_window(self, user_id: str) -> bool:
        customer = self.customers.get(user_id)
        last = customer.last_interaction if customer else None
        return last is not None and datetime.now(UTC) - last <= timedelta(hours=48)

    def in_window(self, user_id: str) -> bool:
        customer = self.customers.get(user_id)
        last = customer.last_interaction if customer else None
        return last is not None and datetime.now(UTC) - last <= timedelta(days=7)

    def take_failure(self, path: str) -> Failure | None:
        with self.lock:
            for failure in self.failures:
                if failure.times > 0 and failure.path in path:
                    failure.times -= 1
                    if failure.times == 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def issue_code(self, challenge: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.auth_codes[code] = (challenge, redirect_uri, datetime.now(UTC))
        return code

    def take_code(self, code: str) -> tuple[str, str] | None:
        """(challenge, redirect_uri) of a code issued in the last 10 minutes; a code works once, as Zalo's."""
        with self.lock:
            issued = self.auth_codes.pop(code, None)
        if issued is None or datetime.now(UTC) - issued[2] > AUTH_CODE_LIFETIME:
            return None
        return issued[0], issued[1]

    def rotate_tokens(self) -> tuple[str, str]:
        with self.lock:
            self.refreshes += 1
            self.access_token = f"demo-access-{self.refreshes}-{secrets.token_hex(4)}"
            self.refresh_token = f"demo-refresh-{self.refreshes}-{secrets.token_hex(4)}"
            return self.access_token, self.refresh_token


_SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô")
_GIVEN = ("An", "Bình", "Chi", "Dũng", "Giang", "Hải", "Hương", "Lan", "Long", "Mai", "Nam", "Phương", "Quân", "Thảo")
