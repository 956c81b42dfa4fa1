"""The app's Services (jobs.context) as Flask views reach them, and the per-request Session."""

from __future__ import annotations

from flask import current_app, g
from rq import Queue
from sqlalchemy.orm import Session

from jobs.context import Services
from tichdiem.config import Settings

EXTENSION_KEY = "tichdiem"


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
