"""Migrations match the models on both databases; the run command serves /healthz on a fresh database."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

import models
from tests.conftest import HEALTH
from tichdiem import migrate
from tichdiem.extensions import Services

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_match_models(services: Services) -> None:
    with services.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), models.Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_back(services: Services) -> None:
    migrate.downgrade(services.engine, "base")
    migrate.upgrade(services.engine)
    test_migrations_match_models(services)


def test_db_upgrade_command(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_command_serves_healthz_on_a_fresh_database(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("ZALO_")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.db'}"
    env["HEALTH_TOKEN"] = HEALTH["Authorization"].removeprefix("Bearer ")
    log = (tmp_path / "run.log").open("w")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "tichdiem", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/healthz", headers=HEALTH, timeout=1).json()
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert body is not None, (tmp_path / "run.log").read_text()
        assert body["status"] == "ok" and body["queue"]["mode"] == "embedded"
        assert body["database"]["backend"] == "sqlite"
        # No ZALO_APP_ID: the demo, with the local Zalo emulator and a seeded shop.
        assert "Zalo giả lập" in requests.get(f"http://127.0.0.1:{port}/_emulator/", timeout=5).text
        login = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "Đăng nhập" in login.text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        finally:
            log.close()
            print((tmp_path / "run.log").read_text()[-3000:])


def test_env_example_names_every_variable_the_app_reads() -> None:
    """.env.example is the operator's checklist: a variable the settings read but the example lacks is a
    setting nobody will find."""
    from pathlib import Path

    from tichdiem.config import _ENV_NAMES, PROJECT_ROOT

    example = (Path(PROJECT_ROOT) / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    procfile = (Path(PROJECT_ROOT) / "Procfile").read_text()
    wanted = {*_ENV_NAMES.values(), "ZALO_EMULATOR", *re.findall(r"\$\{([A-Z_]+)", procfile)}
    assert wanted <= names, sorted(wanted - names)
