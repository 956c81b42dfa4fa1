"""Engine and Session factory; dialect details (SQLite pragmas, row locks) live here only."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from rq import Queue
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
QUEUE_KEY = "tichdiem.queue"  # Session.info: the RQ queue that jobs deferred until commit go to


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys so several threads can share it."""
    engine = _make_engine(url, **kwargs)
    _ENGINES.add(engine)
    return engine


def _dispose_pools_after_fork() -> None:
    """A forked RQ work horse must not reuse the parent's pooled connections (they belong to the parent)."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
os.register_at_fork(after_in_child=_dispose_pools_after_fork)


def _make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping round trip per request: a connection that died fails its request (the webhook answers
    # 503 and Zalo delivers again) and the pool replaces it; idle connections are recycled before servers
    # or proxies drop them.
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine, queue: Queue | None = None) -> sessionmaker[Session]:
    """Sessions on `engine` whose `jobs.deferred.enqueue_after_commit` calls go to `queue` after commit."""
    # expire_on_commit=False: jobs read attributes after commit (e.g. to send the reply).
    return sessionmaker(engine, expire_on_commit=False, info={QUEUE_KEY: queue} if queue is not None else {})


@contextmanager
def autocommit(sessions: sessionmaker[Session]) -> Iterator[Connection]:
    """A connection on which each statement is its own transaction: one round trip for a single-statement
    write (a claim, a "sent" mark) instead of three (BEGIN, it, COMMIT). Only for writes that are whole on
    their own; anything that must commit together belongs in a Session transaction."""
    with _autocommit_engine(sessions.kw["bind"]).connect() as connection:
        yield connection


@lru_cache(maxsize=16)
def _autocommit_engine(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")  # shares the engine's pool


def driver_scalar(engine: Engine, statement: Any, values: dict[str, Any]) -> Any:
    """`autocommit(...).scalar(statement, values)` on PostgreSQL, run on the pooled psycopg connection itself.

    For the one statement the busiest request runs (the webhook's insert): SQLAlchemy's execution around it
    (checking out a Connection, switching and resetting its isolation level, the execution context, the result)
    cost more CPU than psycopg's own call, ~100 µs of a request's ~600 (issue 16). The statement is compiled once
    and its values go through the columns' own bind processors, so what reaches the database is what SQLAlchemy
    would send. Errors keep SQLAlchemy's shape: a psycopg error is raised as the `sqlalchemy.exc.DBAPIError`
    subclass SQLAlchemy would raise (OperationalError for a dead server), and a connection that died is
    invalidated, so the pool replaces it as it would have."""
    sql, processors, constants = _driver_statement(engine.dialect, statement)
    params = {**constants, **{k: processors[k](v) if k in processors else v for k, v in values.items()}}
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()
    except dbapi_error as exc:  # the server is down: as a Connection would raise it
        raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc
    try:
        connection = pooled.driver_connection
        assert connection is not None
        try:
            connection.autocommit = True
            row = connection.execute(sql, params).fetchone()
        except dbapi_error as exc:
            disconnected = engine.dialect.is_disconnect(exc, pooled.dbapi_connection, None)
            if disconnected:
                pooled.invalidate(exc)
            raise DBAPIError.instance(sql, params, exc, dbapi_error, connection_invalidated=disconnected) from exc
        finally:
            if pooled.is_valid:  # back to the pool as it came: transactions by default
                connection.autocommit = False
    finally:
        pooled.close()
    return row[0] if row else None


@lru_cache(maxsize=8)
def _driver_statement(dialect: Any, statement: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(SQL text, bind processor per parameter, the statement's own literal parameters), built once."""
    compiled = statement.compile(dialect=dialect)
    processors = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()
    }
    return compiled.string, {k: p for k, p in processors.items() if p is not None}, dict(compiled.params)
