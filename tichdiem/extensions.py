"""Per-app services (settings, database, queue, Zalo client) and the per-request Session."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tichdiem.config import Settings
from zalo.client import ZaloClient

EXTENSION_KEY = "tichdiem"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queue: Queue
    zalo: ZaloClient


def services() -> Services:
    result: Services = current_app.extensions[EXTENSION_KEY]
    return result


def get_settings() -> Settings:
    return services().settings


def get_queue() -> Queue:
    return services().queue


def get_session() -> Session:
    """The request's Session, opened on first use and closed at teardown (flaskr's get_db pattern)."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    session: Session = g.db_session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
