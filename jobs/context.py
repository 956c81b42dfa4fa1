"""The one wiring object (Services) and how code finds it, in a request or in a job: `current_services()`.

`create_app` builds a Services and keeps it on the Flask app; each app context makes it current. A worker
(`jobs.worker`) makes its own Services current for each job it performs. It lives in a ContextVar, not a
process global: two apps in one process (tests, the demo) each see their own, and nothing a later
`create_app` does reaches a job already running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from loyalty.shop import ShopName
from tichdiem.config import Settings
from zalo.client import ZaloClient

if TYPE_CHECKING:
    from bot.router import Bot
    from jobs.cards import CardPublisher
    from jobs.proactive import ProactiveSender


@dataclass
class Services:
    """Everything a request or a job needs from the outside: settings, database, queue, Zalo, the bot."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queue: Queue
    zalo: ZaloClient
    bot: Bot
    cards: CardPublisher
    proactive: ProactiveSender
    shop_name: ShopName  # call it: the name saved in the console, else SHOP_NAME


_current: ContextVar[Services | None] = ContextVar("tichdiem_services", default=None)


def make_current(services: Services) -> Token[Services | None]:
    """Make `services` current until `reset_current(token)` (Flask's app context does this)."""
    return _current.set(services)


def reset_current(token: Token[Services | None]) -> None:
    _current.reset(token)


@contextmanager
def use_services(services: Services) -> Iterator[Services]:
    """Make `services` current for the code inside (a job, a test)."""
    token = make_current(services)
    try:
        yield services
    finally:
        reset_current(token)


def current_services() -> Services:
    services = _current.get()
    if services is None:
        raise RuntimeError("no current services: run inside an app context or a tichdiem worker (jobs.worker)")
    return services
