"""The shop's own settings kept in the database (shop_profile): its name as the owner typed it at setup,
Zalo's domain verification code, and which OA it connected."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.shop import SHOP_ROW, ShopProfile

MAX_SHOP_NAME = 120
# Every chat reply names the shop: read it from the database at most this often per process; a new name
# reaches the other processes within this time.
NAME_CACHE_SECONDS = 30.0


class ShopNameError(ValueError):
    pass


def shop_profile(session: Session) -> ShopProfile | None:
    return session.get(ShopProfile, SHOP_ROW)


def profile_for_update(session: Session, now: datetime) -> ShopProfile:
    """The row, created on first use (the caller commits)."""
    profile = session.get(ShopProfile, SHOP_ROW, with_for_update=True)
    if profile is None:
        profile = ShopProfile(id=SHOP_ROW, updated_at=now)
        session.add(profile)
    profile.updated_at = now
    return profile


def clean_shop_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_SHOP_NAME:
        raise ShopNameError(f"Tên cửa hàng cần 1–{MAX_SHOP_NAME} ký tự.")
    return name


class ShopName:
    """The name the chat and the console use: the one saved in the console, else SHOP_NAME."""

    def __init__(self, sessions: sessionmaker[Session], default: str, cache_seconds: float = NAME_CACHE_SECONDS):
        self._sessions, self._default, self._cache_seconds = sessions, default, cache_seconds
        self._cached: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[1] < self._cache_seconds:
            return cached[0]
        with self._lock:
            try:
                with self._sessions() as session:
                    saved = session.scalar(select(ShopProfile.name).where(ShopProfile.id == SHOP_ROW))
            except Exception:  # noqa: BLE001 - no table yet (before `db upgrade`) or the database is away
                return self._default
            name = saved or self._default
            self._cached = (name, time.monotonic())
            return name

    def forget(self) -> None:
        """After this process saved a new name: read it at the next use."""
        self._cached = None
