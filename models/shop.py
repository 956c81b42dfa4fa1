"""The shop itself, as its owner set it up in the console (one row, id 1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, utcnow

SHOP_ROW = 1  # the only row: first-run setup inserts it, so a second setup racing the first fails on the key


class ShopProfile(Model):
    __tablename__ = "shop_profile"

    name: Mapped[str] = mapped_column(String(120), default="")  # "": SHOP_NAME from the environment
    # Zalo's domain verification code ("Xác thực domain"): served as /zalo_verifier<code>.html and a meta tag.
    zalo_site_verification: Mapped[str] = mapped_column(String(100), default="")
    connected_oa_id: Mapped[str | None] = mapped_column(String(32))  # the OA that granted us its token
    connected_at: Mapped[datetime | None]
    connected_by: Mapped[str | None] = mapped_column(String(64))
    set_up_at: Mapped[datetime | None]  # first-run setup finished (None: made by the CLI or the demo)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
