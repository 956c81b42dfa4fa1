"""Shared by the console tests: a shop with an owner, a marketer and a cashier; logging in; page text."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from console.staff import create_staff
from tests.helpers import Console, seed_shop

STAFF = (("chu", "owner"), ("mkt", "marketer"), ("thu-ngan", "cashier"))


def staffed_shop(session: Session) -> dict[str, Any]:
    shop = seed_shop(session)
    for username, role in STAFF:
        create_staff(session, username=username, password="mat-khau-123", role=role, name=username)
    session.commit()
    return shop


def login(app: Flask, username: str, password: str = "mat-khau-123") -> Console:
    console = Console(app)
    assert console.login(username, password).status_code == 302
    return console


def text_of(response: Any) -> str:
    """The page's HTML with runs of whitespace collapsed, so assertions can span lines."""
    return re.sub(r"\s+", " ", response.get_data(as_text=True))
