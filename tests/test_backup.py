"""The backup and the restore of the VPS guide (scripts/backup, scripts/restore), run for real: a shop's
database is dumped, restored into a new database, and the copy holds the same members, entries and balances."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.conftest import PG_BASE_URL, _need
from tichdiem import migrate
from tichdiem.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
pytestmark = pytest.mark.postgres


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    _need("postgresql")
    names = [f"tichdiem_backup_{uuid.uuid4().hex[:8]}", f"tichdiem_restore_{uuid.uuid4().hex[:8]}"]
    admin = make_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_BASE_URL.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _figures(url: str) -> tuple[int, int, int, list[tuple[str, int]]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        members = conn.execute(text("SELECT count(*) FROM members")).scalar_one()
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
        total = conn.execute(text("SELECT coalesce(sum(points), 0) FROM ledger_entries")).scalar_one()
        balances = [tuple(r) for r in conn.execute(text("SELECT code, points_balance FROM members ORDER BY code"))]
    engine.dispose()
    return members, entries, total, balances  # type: ignore[return-value]


def test_a_backup_restores_into_an_identical_shop(databases: tuple[str, str], tmp_path: Path) -> None:
    from loyalty import earning
    from loyalty.members import create_member
    from loyalty.program import ProgramRules
    from models import utcnow
    from tichdiem.db import make_session_factory

    source, copy = databases
    engine = make_engine(source)
    migrate.upgrade(engine)
    with make_session_factory(engine)() as session:
        for i, name in enumerate(("Lan", "Minh", "Hà")):
            member = create_member(session, now=utcnow(), name=name, phone=f"8491234567{i}")
            earning.earn(
                session, member.id, 150_000 * (i + 1), key=f"b{i}", rules=ProgramRules(), tz=VIETNAM, now=utcnow()
            )
        session.commit()
    engine.dispose()

    env = {**os.environ, "DATABASE_URL": source, "BACKUP_DIR": str(tmp_path)}
    dump = subprocess.run(
        [ROOT / "scripts" / "backup"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(dump).is_file() and Path(dump).name.startswith("tichdiem-") and not list(tmp_path.glob("*.partial"))
    subprocess.run(
        [ROOT / "scripts" / "restore", dump, "--into", copy], env=env, capture_output=True, text=True, check=True
    )

    original = _figures(source)
    assert original[0] == 3 and original[2] > 0
    assert _figures(copy) == original
    migrate.upgrade(make_engine(copy))  # the restored database is at the current revision: nothing to do
