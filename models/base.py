"""Declarative base, portable column types and the row-lock helper shared by every model."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, Connection, DateTime, Integer, MetaData, bindparam, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, make_transient_to_detached, mapped_column
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.types import TypeDecorator

# Named constraints so Alembic migrations are stable on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JsonType, list[dict[str, Any]]: JsonType}

    def __repr__(self) -> str:
        pk = ", ".join(f"{c.key}={getattr(self, str(c.key), None)!r}" for c in self.__mapper__.primary_key)
        return f"<{type(self).__name__} {pk}>"


class Model(Base):
    """Abstract base with a BIGINT surrogate primary key."""

    __abstract__ = True
    id: Mapped[int] = mapped_column(BigId, primary_key=True)


ModelT = TypeVar("ModelT", bound=Model)


def lock_row(session: Session, model: type[ModelT], row_id: int) -> ModelT | None:
    """Lock one row for the rest of the transaction and return its fresh state.

    PostgreSQL takes a row lock with SELECT ... FOR UPDATE. SQLite has no row locks, so a no-op
    UPDATE takes the database write lock instead: the next writer waits until we commit, then
    reads our committed state. One helper, so domain code never branches on the dialect.
    """
    locked = lock_row_reading(session, model, row_id)
    return locked[0] if locked is not None else None


def lock_row_reading(
    session: Session, model: type[ModelT], row_id: int, *extra: Any
) -> tuple[ModelT, tuple[Any, ...]] | None:
    """`lock_row`, and in the same statement a few more values (scalar subqueries, e.g. the configuration's token):
    (row, values), or None if there is no such row. The subqueries read what the statement's snapshot saw before
    the lock was granted, so they must not be what the lock protects."""
    locked = not _took_sqlite_write_lock(session, model, row_id)
    found = session.execute(_lock_statement(model, locked, extra), {"row_id": row_id}).first()
    return (found[0], tuple(found[1:])) if found is not None else None


@lru_cache(maxsize=64)
def _lock_statement(model: type[ModelT], row_lock: bool, extra: tuple[Any, ...]) -> Any:
    stmt = (
        select(model, *extra)
        .where(model.id == bindparam("row_id"))
        .execution_options(populate_existing=True)  # the row's fresh state, over what the session held
    )
    return stmt.with_for_update(of=model) if row_lock else stmt


def lock_row_values(session: Session, model: type[ModelT], row_id: int, *columns: Any) -> Any:
    """`lock_row` for a few columns, as a Core row (None if there is no such row): no ORM object to build, fill and
    flush, for a hot path that only reads a status and writes it back with a Core UPDATE."""
    stmt = select(*columns).where(model.id == row_id)
    if not _took_sqlite_write_lock(session, model, row_id):
        stmt = stmt.with_for_update()
    return session.execute(stmt).first()


def _took_sqlite_write_lock(session: Session, model: type[ModelT], row_id: int) -> bool:
    """On SQLite, take the database write lock with a no-op UPDATE of the row (True); elsewhere do nothing."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    session.execute(update(model).where(model.id == row_id).values(id=model.id))
    return True


def attach_loaded(session: Session, model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """The session's object for a row it just read or wrote with Core (`values`: every column, the id included):
    the one already in its identity map, or a new one, persistent and clean, made without SQL (no constructor, no
    attribute history: the ORM will not write it again). Hot paths use Core to save round trips and ORM overhead;
    their callers still get ORM objects."""
    existing = session.identity_map.get(session.identity_key(model, values["id"]))
    if existing is not None:
        return existing
    row = model.__mapper__.class_manager.new_instance()
    instance_state(row).dict.update(values)
    make_transient_to_detached(row)  # clean, with its identity: adding it issues no SQL
    session.add(row)
    return row


def rows_updated(session: Session, stmt: Any) -> int:
    """Run an UPDATE and return how many rows it changed: how a conditional UPDATE says who won a race."""
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def insert_ignore(
    session: Session | Connection, model: type[Model], values: dict[str, Any], conflict: list[str]
) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; returns the new id, or None if it existed.

    The building block of every idempotent write: two racing inserts of one key leave one row. The
    statement is built once per (dialect, model, columns) and executed with parameters, so SQLAlchemy
    compiles it once (the webhook calls this on every request).
    """
    dialect = (session.dialect if isinstance(session, Connection) else session.get_bind().dialect).name
    stmt = insert_ignore_statement(dialect, model, tuple(sorted(values)), tuple(conflict))
    return session.scalar(stmt, values)


@lru_cache(maxsize=256)
def insert_ignore_statement(
    dialect: str, model: type[Model], columns: tuple[str, ...], conflict: tuple[str, ...]
) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id with a bound parameter per column, built once (also the
    base of a statement that adds to it, as the webhook's insert that wakes the lanes)."""
    from sqlalchemy import Table, bindparam
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    assert isinstance(table, Table)
    params = {name: bindparam(name, type_=table.c[name].type) for name in columns}
    # On the Table, not the mapped class: a Core insert skips the ORM's bulk-insert machinery (a third of the
    # insert's CPU; the statement returns an id, never objects, so the ORM has nothing to add).
    return insert(table).values(params).on_conflict_do_nothing(index_elements=list(conflict)).returning(table.c.id)
