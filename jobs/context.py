"""What jobs need from the wiring (database, Zalo client, queue, bot), installed by create_app.

Jobs run in RQ worker processes that have no Flask request; the app factory installs this
context in the process that creates the app, and forked work horses inherit it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rq import Queue
from sqlalchemy.orm import Session, sessionmaker

from tichdiem.config import Settings
from zalo.client import ZaloClient

if TYPE_CHECKING:
    from bot.router import Bot
    from jobs.cards import CardPublisher
    from jobs.proactive import ProactiveSender


@dataclass
class JobContext:
    settings: Settings
    sessions: sessionmaker[Session]
    zalo: ZaloClient
    queue: Queue
    bot: Bot
    cards: CardPublisher
    proactive: ProactiveSender


_context: JobContext | None = None


def install_context(context: JobContext) -> None:
    global _context
    _context = context


def current_context() -> JobContext:
    if _context is None:
        raise RuntimeError("no job context: jobs must run in a process that called tichdiem.create_app()")
    return _context


def current_context_or_none() -> JobContext | None:
    return _context
