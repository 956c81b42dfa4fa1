"""Staff accounts and POS API keys: creation, password checks, ending sessions, key verification. No Flask."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from models import ApiKey, Role, Staff

MIN_PASSWORD = 8
API_KEY_PREFIX = 8
WRONG_LOGIN = "Sai tên đăng nhập hoặc mật khẩu."
_DUMMY_HASH = generate_password_hash("not-a-password")


class StaffError(ValueError):
    """A clear reason in Vietnamese, shown to the person at the screen."""


def create_staff(
    session: Session, *, username: str, password: str, role: str, name: str = "", store_id: int | None = None
) -> Staff:
    username = username.strip().lower()
    if not username or len(username) > 80:
        raise StaffError("Tên đăng nhập không hợp lệ.")
    if role not in set(Role):
        raise StaffError("Vai trò không hợp lệ.")
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự.")
    if session.scalar(select(Staff.id).where(Staff.username == username)) is not None:
        raise StaffError(f"Tên đăng nhập {username} đã có.")
    staff = Staff(
        username=username,
        name=name.strip() or username,
        password_hash=generate_password_hash(password),
        role=role,
        store_id=store_id,
    )
    session.add(staff)
    session.flush()
    return staff


def authenticate(session: Session, username: str, password: str, now: datetime) -> Staff:
    """The staff member, or StaffError with one message for every refusal (unknown, locked, wrong password).

    Wrong passwords never lock the account: a stranger who knows the owner's username could then keep the
    owner out. Guessing is throttled per client instead (console.throttle), which the view checks first.
    """
    staff = session.scalar(select(Staff).where(Staff.username == username.strip().lower()))
    if staff is None or not staff.is_active:
        check_password_hash(_DUMMY_HASH, password)  # same time as a real check
        raise StaffError(WRONG_LOGIN)
    if not check_password_hash(staff.password_hash, password):
        staff.failed_logins += 1  # shown to the owner; never a lock
        raise StaffError(WRONG_LOGIN)
    staff.failed_logins, staff.locked_until, staff.last_login_at = 0, None, now
    return staff


def set_password(staff: Staff, password: str) -> None:
    """A new password: lifts a lock-out and ends every session of this account (the caller keeps its own)."""
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự.")
    staff.password_hash, staff.failed_logins, staff.locked_until = generate_password_hash(password), 0, None
    end_sessions(staff)


def end_sessions(staff: Staff) -> None:
    """Every session cookie of this staff member stops working (logout, new password, locked)."""
    staff.session_version += 1


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once


def create_api_key(session: Session, *, store_id: int, name: str, created_by_id: int | None) -> NewApiKey:
    secret = "td_" + secrets.token_urlsafe(32)
    key = ApiKey(
        store_id=store_id,
        name=name.strip() or "POS",
        prefix=secret[: 3 + API_KEY_PREFIX],
        key_hash=_hash(secret),
        created_by_id=created_by_id,
    )
    session.add(key)
    session.flush()
    return NewApiKey(key, secret)


def verify_api_key(session: Session, secret: str, now: datetime) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == secret[: 3 + API_KEY_PREFIX]))
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, _hash(secret)):
        return None
    key.last_used_at = now
    return key


def _hash(secret: str) -> str:
    # API keys carry 256 random bits, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(secret.encode()).hexdigest()
