"""The member import: new members per second through the real job, next to bare INSERTs of the same rows.

    .venv/bin/python -m bench.member_import [--rows 50000] [--db postgresql|sqlite]

A CSV of N new customers (name, phone, birthday) is imported by `jobs.imports.run_import` as the console's
"Nhập danh sách" does (read, check every row against the members on file, create, progress every chunk).
The baseline, in the same run and on a fresh database: the same rows as one multi-row INSERT per chunk of
500 with nothing checked (no phone look-up, no referral code check, no tier, no progress).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench.common import scratch_database
from models import Member, MemberImport, Tier

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def csv_bytes(rows: int) -> bytes:
    lines = ["Họ tên,Số điện thoại,Ngày sinh"]
    lines += [f"Khách {i},09{i:08d},{1 + i % 28:02d}/{1 + i % 12:02d}/19{50 + i % 50}" for i in range(rows)]
    return "\n".join(lines).encode()


def run_job(engine, content: bytes) -> float:  # type: ignore[no-untyped-def]
    from jobs.imports import run_import
    from tichdiem import create_app

    os.environ.update(
        {
            "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
        }
    )
    os.environ.pop("REDIS_URL", None)
    app = create_app()
    services = app.extensions["tichdiem"]
    with services.sessions() as session:
        session.add(Tier(name="Thành viên", threshold=0))
        job = MemberImport(filename="khach.csv", content=content, status="queued")
        session.add(job)
        session.commit()
        import_id = job.id
    with app.app_context():
        start = time.perf_counter()
        assert run_import(import_id) == "done"
        elapsed = time.perf_counter() - start
    with services.sessions() as session:
        job = session.get(MemberImport, import_id)
        assert job is not None and job.errors == 0, job.error_rows[:3] if job else None
    return elapsed


def run_bare(engine, rows: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with engine.begin() as conn:
        for first in range(0, rows, 500):
            conn.execute(
                insert(Member),
                [
                    {"code": f"C{i:07d}", "name": f"Khách {i}", "phone": f"849{i:08d}", "joined_at": NOW}
                    for i in range(first, min(first + 500, rows))
                ],
            )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    content = csv_bytes(args.rows)
    with scratch_database(args.db) as engine:
        bare = run_bare(engine, args.rows)
    with scratch_database(args.db) as engine:
        elapsed = run_job(engine, content)
        with engine.connect() as conn:
            created = conn.scalar(select(func.count()).select_from(Member))
    assert created == args.rows, created
    print(f"member import on {args.db}: {args.rows:,} new members from a {len(content) / 1e6:.1f} MB CSV")
    print(f"  run_import (checked, coded, tiered) .... {args.rows / elapsed:9,.0f} rows/s   ({elapsed:.1f} s)")
    print(f"  baseline: bare multi-row INSERTs ....... {args.rows / bare:9,.0f} rows/s   ({bare:.1f} s)")


if __name__ == "__main__":
    main()
