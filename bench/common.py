"""Shared benchmark plumbing: a scratch database (SQLite file or a PostgreSQL schema) and timing."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from tichdiem import migrate
from tichdiem.db import make_engine

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WEBHOOK_APP_ID, WEBHOOK_SECRET = "bench-app", "bench-secret"


def shop_env(engine: Engine, redis_url: str, zalo_url: str) -> dict[str, str]:
    """The environment of the shop's processes in a benchmark: this database, this Redis, the fake Zalo (its
    OAuth too: the token keeper refreshes a pair at its first run), and the venv's commands on the PATH."""
    import os
    import sys

    return {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "ZALO_APP_ID": WEBHOOK_APP_ID,
        "ZALO_OA_SECRET_KEY": WEBHOOK_SECRET,
        "ZALO_APP_SECRET": "s",
        "ZALO_ACCESS_TOKEN": "t",
        "ZALO_REFRESH_TOKEN": "r",
        "ZALO_OPENAPI_URL": zalo_url,
        "ZALO_OAUTH_URL": zalo_url,
        "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
    }


@contextmanager
def scratch_database(kind: str, pg_url: str = DEFAULT_PG) -> Iterator[Engine]:
    """A migrated, empty database that is thrown away afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            migrate.upgrade(engine)
            yield engine
            engine.dispose()
        return
    schema = "tichdiem_bench"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(f"{pg_url}?options=-csearch_path%3D{schema}", pool_size=10)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def timed(fn: Callable[[], object], repeat: int = 50) -> tuple[float, float]:
    """(median, p99) milliseconds of `fn` over `repeat` runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]
