"""Fixtures: the app on SQLite and on the PostgreSQL server, fake or real Redis, a mocked Zalo API."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import responses
from flask import Flask
from redis import Redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.helpers import ZaloFake
from tichdiem import migrate
from tichdiem.app import create_app
from tichdiem.config import Settings
from tichdiem.db import make_engine
from tichdiem.extensions import EXTENSION_KEY, Services

PG_BASE_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# One Redis database per xdist worker (15, 14, ...): two tests on one database would run each other's jobs.
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _XDIST_WORKER % 8}")
IN_CI = bool(os.environ.get("CI"))
HEALTH = {"Authorization": "Bearer health-token-for-tests"}  # /healthz's details

TEST_SETTINGS = Settings(
    zalo_app_id="3349222483842580322",
    zalo_app_secret="app-secret-xyz",
    zalo_oa_secret_key="oa-secret-key-abc",
    zalo_oa_id="4024926008133882615",
    zalo_access_token="AT-initial",
    zalo_refresh_token="RT-initial",
    shop_name="Cà phê Sữa Đá",
    secret_key="test-secret-key-of-at-least-32-characters",
    health_token="health-token-for-tests",
)


def _server_available(check: str) -> bool:
    try:
        if check == "postgresql":
            engine = make_engine(PG_BASE_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        else:
            Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def _need(server: str) -> None:
    """Skip on a laptop without the server; in CI a missing server is a failure, not a skip."""
    if not _server_available(server):
        if IN_CI:
            pytest.fail(f"{server} server is not reachable in CI")
        pytest.skip(f"{server} server not reachable")


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A private schema on the PostgreSQL server, migrated once; tests truncate it."""
    _need("postgresql")
    schema = f"tichdiem_test_{os.getpid()}"
    admin = make_engine(PG_BASE_URL)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt costs ~0.1 s a hash by design; tests create hundreds of staff (like Django's test hashers)."""
    import functools

    from werkzeug.security import generate_password_hash

    fast = functools.partial(generate_password_hash, method="pbkdf2:sha256:1")
    monkeypatch.setattr("console.staff.generate_password_hash", fast)
    monkeypatch.setattr("console.staff._DUMMY_HASH", fast("not-a-password"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test runs on SQLite (the embedded default) and on the PostgreSQL server."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_schema_url")
    _truncate_all(url)
    return url


def _truncate_all(url: str) -> None:
    import models

    engine = make_engine(url)
    tables = ", ".join(t.name for t in models.Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return TEST_SETTINGS.with_overrides(database_url=db_url)


@pytest.fixture
def zalo() -> Iterator[ZaloFake]:
    """The mocked Zalo API. Any request it does not know fails the call, so nothing reaches the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield ZaloFake(mock)


@pytest.fixture
def app(settings: Settings, zalo: ZaloFake) -> Iterator[Flask]:
    app = create_app(settings, config={"TESTING": True})
    yield app
    svc: Services = app.extensions[EXTENSION_KEY]
    svc.engine.dispose()


@pytest.fixture
def services(app: Flask) -> Services:
    svc: Services = app.extensions[EXTENSION_KEY]
    return svc


@pytest.fixture
def session(services: Services) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


@pytest.fixture
def real_redis() -> Iterator[Redis]:
    _need("redis")
    connection = Redis.from_url(REDIS_TEST_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class Demo:
    """The demo app (emulator on, seeded shop) served on loopback; jobs run when the test pumps them."""

    def __init__(self, app: Flask, base: str) -> None:
        self.app, self.base = app, base

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.app.extensions["tichdiem.emulator"]

    def customer(self, name: str = "Nguyễn Thu Hà", phone: str = "0987654321", birthday: str = "12/05/1995") -> str:
        return self.state.add_customer(name, phone, birthday).user_id

    def act(self, user_id: str, action: str, **extra: object) -> None:
        import requests

        response = requests.post(
            f"{self.base}/_emulator/api/act", json={"user_id": user_id, "action": action, **extra}, timeout=10
        )
        assert response.json()["webhook_status"] == 200
        self.pump()

    def pump(self, include_scheduled: bool = False) -> None:
        from tests.helpers import run_jobs

        run_jobs(self.app, include_scheduled=include_scheduled)

    def replies(self, user_id: str) -> list[dict]:
        return [m for m in self.state.transcripts[user_id] if m["from"] == "oa"]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    from models import utcnow
    from tichdiem.demo import seed_demo

    def seed(app: Flask) -> None:
        svc: Services = app.extensions[EXTENSION_KEY]
        with svc.sessions() as session:
            seed_demo(session, utcnow())
            session.commit()

    yield from _emulated_shop(tmp_path / "demo.db", "Cà phê Demo", seed=seed)


@pytest.fixture
def fresh_install(tmp_path: Path) -> Iterator[Demo]:
    """A production-like install on its first day: an empty database (no owner, no program, no OA token), with
    the emulator playing Zalo (its permission page, its API) on loopback."""

    def no_grant_yet(app: Flask) -> None:
        app.extensions["tichdiem.emulator"].access_token = app.extensions["tichdiem.emulator"].refresh_token = ""

    overrides = {"demo": False, "zalo_access_token": "", "zalo_refresh_token": ""}
    yield from _emulated_shop(tmp_path / "fresh.db", "Cửa hàng", seed=no_grant_yet, **overrides)


def _emulated_shop(database: Path, shop_name: str, seed: Any, **overrides: Any) -> Iterator[Demo]:
    """An app with the emulator on (its settings from demo_settings, then `overrides`), migrated, `seed`ed and
    served on a free loopback port for as long as the test runs."""
    import socket
    import threading

    from emulator.server import make_demo_server
    from tichdiem.demo import demo_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = demo_settings(
        TEST_SETTINGS.with_overrides(database_url=f"sqlite:///{database}", shop_name=shop_name), base
    ).with_overrides(**overrides)
    app = create_app(settings, config={"TESTING": True})
    svc: Services = app.extensions[EXTENSION_KEY]
    migrate.upgrade(svc.engine)
    seed(app)
    server = make_demo_server("127.0.0.1", port, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Demo(app, base)
    server.shutdown()
    svc.engine.dispose()


# Whole modules that start servers, workers or browsers: left out of the fast loop.
SLOW_MODULES = {"tests/test_resilience.py", "tests/test_broadcast_fault.py", "tests/test_fuzz.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the PostgreSQL or Redis server are marked `postgres` / `redis`, browsers and workers `slow`, so
    the fast loop can leave them out: pytest -m "not slow and not postgres and not redis" (docs/testing.md)."""
    for item in items:
        if "tests/browser/" in item.nodeid or item.nodeid.split("::")[0] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if "real_redis" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)
