"""The shop's configuration read once per change, not once per event.

The program's rules, its tiers and its stamp cards change a few times a year and are read by every message and
every earn (two or three of a message's thirteen statements; each round trip costs a worker ~0.5 ms of CPU, issue
16). They are cached per process, keyed by a token: a random value in the one-row `config_version` table that the
database's own triggers replace on every INSERT, UPDATE, DELETE (and TRUNCATE) of those tables — whoever writes
them, the console, a migration or an operator in psql. A cached value is used only while the database still holds
the token it was read under, so no process ever serves rules older than its current transaction can see.

The token costs no round trip of its own on the hot paths: a message reads it in the statement that reads its
user (`bot.users`), an earn in the statement that locks the member (`loyalty.locks`). Elsewhere the first cached
read of a transaction reads it (one small statement instead of one per table). It is remembered for the rest of the
transaction, like the snapshot a read would see, and forgotten when the transaction ends or when this session
itself flushes a change to one of the tables (it then reads its own change, as a query would).

Why random and not a counter: a counter can come back to a value a cache already holds (tests truncate every
table, a restore puts an old one back); a random token never names two states. No row (a truncated table): no
caching, every read goes to the database until the next change writes a row.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import String, event, select
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from models.base import Base, Model, attach_loaded

CONFIG_ROW = 1
CONFIG_TABLES = ("program_settings", "tiers", "stamp_cards")  # what the triggers of migration 0022 watch
_TOKEN = "config_token"  # session.info key: the token this transaction read (None: no row, do not cache)
_MAX_ENTRIES = 32  # a few kinds × a few databases (the tests use many); a process's own shop needs 3

T = TypeVar("T")
M = TypeVar("M", bound=Model)


class ConfigVersion(Base):
    """One row: the token of the configuration's current state (written only by the triggers)."""

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(36))


@lru_cache(maxsize=1)
def token_column() -> Any:
    """The current token as a scalar subquery, to read in a statement the caller runs anyway (one object, so the
    statements that embed it are built and compiled once)."""
    return select(ConfigVersion.token).where(ConfigVersion.id == CONFIG_ROW).scalar_subquery()


def remember_token(session: Session, token: str | None) -> None:
    """The token read in one of the caller's statements: this transaction's cached reads need no statement."""
    session.info[_TOKEN] = token


def current_token(session: Session) -> str | None:
    """This transaction's token: remembered, or read now (and remembered)."""
    if _TOKEN not in session.info:
        session.info[_TOKEN] = _read_token(session)
    token: str | None = session.info[_TOKEN]
    return token


def cached(session: Session, kind: str, load: Callable[[Session], T]) -> T:
    """`load(session)`, or what it returned last time under the database's current token. The value is shared by
    every session of the process: it must be immutable (ORM rows go through `cached_rows`)."""
    _flush_pending(session)
    token = current_token(session)
    if token is None:
        return load(session)
    key = (kind, token)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            value: T = _cache[key]
            return value
    value = load(session)
    if _read_token(session) == token:  # nothing changed between the token's read and the load: the pair is true
        with _lock:
            _cache[key] = value
            while len(_cache) > _MAX_ENTRIES:
                _cache.popitem(last=False)
    return value


def cached_rows(session: Session, model: type[M], load: Callable[[Session], Iterable[M]]) -> list[M]:
    """`cached` for a few ORM rows of `model`: the cache keeps their column values, and each session gets its own
    persistent objects (the ones already in its identity map, or new clean ones made without a query), so a
    session that edits them changes its copies only, and flushes them as it would have after a query."""
    columns = [c.key for c in model.__mapper__.column_attrs]
    values = cached(
        session,
        model.__tablename__,
        lambda s: tuple({c: getattr(row, c) for c in columns} for row in load(s)),
    )
    return [attach_loaded(session, model, _copied(row)) for row in values]


_cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
_lock = threading.Lock()


def _read_token(session: Session) -> str | None:
    token: str | None = session.scalar(select(token_column()))
    return token


def _flush_pending(session: Session) -> None:
    """What a query's autoflush would do: this session's own unflushed changes reach the database (and, if they
    touch the configuration, drop the remembered token) before a read that may not query."""
    if session.autoflush and (session.new or session.deleted or session.dirty):
        session.flush()


def _copied(values: dict[str, Any]) -> dict[str, Any]:
    """A session's own copy of the mutable values (JSON lists and dicts): editing one must not edit the cache."""
    return {k: copy.deepcopy(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}


def _touches_config(objects: Iterable[object]) -> bool:
    return any(isinstance(o, Base) and o.__tablename__ in CONFIG_TABLES for o in objects)


@event.listens_for(Session, "after_flush")
def _forget_token_after_own_change(session: Session, _context: Any) -> None:
    if _TOKEN in session.info and _touches_config(chain(session.new, session.dirty, session.deleted)):
        session.info.pop(_TOKEN, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_token_at_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """The end of the transaction or of a savepoint (a rolled-back savepoint may have changed the configuration);
    not of the inner transaction each flush opens."""
    if transaction.parent is None or transaction.nested:
        session.info.pop(_TOKEN, None)


__all__ = [
    "CONFIG_TABLES",
    "ConfigVersion",
    "cached",
    "cached_rows",
    "current_token",
    "remember_token",
    "token_column",
]
