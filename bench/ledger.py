"""Ledger benchmark: earn throughput, and reads for a member with a long history.

    .venv/bin/python -m bench.ledger [--db sqlite|postgresql] [--ops 100000] [--workers 2] [--processes 1]

Prints earn operations per second next to a baseline measured in the same run: bare INSERTs of
the same ledger rows with no lock, no idempotency check and no rules. Then the time to read a
balance and the last 10 entries of a member with 10,000 entries, next to recomputing the balance
from all entries (what the cached balance saves).
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from bench.common import scratch_database, timed
from bot import history
from loyalty import earning, ledger
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import LedgerEntry, Member, Tier
from tichdiem.db import make_engine, make_session_factory

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
RULES = ProgramRules()
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def seed(engine: Engine, members: int) -> list[int]:
    sessions = make_session_factory(engine)
    with sessions() as s:
        s.add_all(
            [
                Tier(name="Thành viên", threshold=0),
                Tier(name="Bạc", threshold=500),
                Tier(name="Vàng", threshold=1500, earn_multiplier_pct=150),
            ]
        )
        s.flush()
        ids = [create_member(s, now=NOW, name=f"M{i}").id for i in range(members)]
        s.commit()
    return ids


def run_earns(engine: Engine, member_ids: list[int], ops: int, workers: int, processes: int = 1) -> float:
    """Earns per second by `workers` threads in each of `processes` processes (the Procfile's web runs 2 processes
    of 4 threads: threads share one interpreter lock, processes do not)."""
    if processes > 1:
        return _run_earns_in_processes(engine, member_ids, ops, workers, processes)
    sessions = make_session_factory(engine)
    start = time.perf_counter()
    _earn_in_threads(sessions, member_ids, ops, first=0, step=workers, workers=workers)
    return ops / (time.perf_counter() - start)


def _run_earns_in_processes(engine: Engine, member_ids: list[int], ops: int, workers: int, processes: int) -> float:
    url = engine.url.render_as_string(hide_password=False)
    share = workers * processes
    context = multiprocessing.get_context("spawn")  # a fresh interpreter and its own connections, as gunicorn's
    ready, go = context.Barrier(processes + 1), context.Event()
    children = [
        context.Process(target=_earn_process, args=(url, member_ids, ops, share, p * workers, workers, ready, go))
        for p in range(processes)
    ]
    for child in children:
        child.start()
    ready.wait()  # every process imported and connected: time the earns, not the start-up
    start = time.perf_counter()
    go.set()
    for child in children:
        child.join()
        if child.exitcode:
            raise SystemExit(f"an earn process failed (exit code {child.exitcode})")
    return ops / (time.perf_counter() - start)


def _earn_process(
    url: str, member_ids: list[int], ops: int, share: int, first: int, workers: int, ready: Any, go: Any
) -> None:
    sessions = make_session_factory(make_engine(url, pool_size=workers))
    with sessions() as s:
        s.execute(select(1))
    ready.wait()
    go.wait()
    _earn_in_threads(sessions, member_ids, ops, first=first, step=share, workers=workers)


def _earn_in_threads(sessions: Any, member_ids: list[int], ops: int, *, first: int, step: int, workers: int) -> None:
    """Earns number first+w, first+w+step, ... below ops in thread w of `workers`."""
    threads = [
        threading.Thread(target=_earn_share, args=(sessions, member_ids, range(first + w, ops, step)))
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _earn_share(sessions: Any, member_ids: list[int], numbers: range) -> None:
    with sessions() as s:
        for i in numbers:
            member_id = member_ids[i % len(member_ids)]
            earning.earn(
                s,
                member_id,
                50_000 + (i % 7) * 10_000,
                key=f"bench:{i}",
                rules=RULES,
                tz=TZ,
                now=NOW + timedelta(seconds=i),
                bill_ref=f"HD{i}",
            )
            s.commit()


def check_books(engine: Engine) -> str:
    """After the run: every earn written once, and each member's cached balance equal to the sum of their entries
    and to the sum of their unspent lots (a fast path that loses a write shows here, not only in the tests)."""
    with engine.connect() as conn:
        earns = conn.scalar(text("SELECT count(*) FROM ledger_entries WHERE idempotency_key LIKE 'bench:%'"))
        wrong = conn.scalar(
            text(
                "SELECT count(*) FROM members m WHERE m.points_balance <> "
                "(SELECT coalesce(sum(points), 0) FROM ledger_entries e WHERE e.member_id = m.id"
                " AND e.idempotency_key NOT LIKE 'bare:%') "  # the baseline's rows, written with no balance
                "OR m.points_balance <> (SELECT coalesce(sum(remaining), 0) FROM point_lots l WHERE l.member_id = m.id)"
                " OR m.points_lifetime <> m.points_balance"
            )
        )
    return f"{earns:,} earn entries, {wrong} members whose balance disagrees with their entries or lots"


def run_bare_inserts(engine: Engine, member_id: int, ops: int) -> float:
    """The floor: one INSERT + COMMIT per operation, nothing else."""
    start = time.perf_counter()
    with engine.connect() as conn:
        for i in range(ops):
            conn.execute(
                insert(LedgerEntry).values(
                    member_id=member_id,
                    kind="adjust",
                    points=1,
                    balance_after=0,
                    idempotency_key=f"bare:{i}",
                    reason="",
                    actor_type="system",
                    details={},
                    created_at=NOW,
                )
            )
            conn.commit()
    return ops / (time.perf_counter() - start)


def long_history_member(engine: Engine, entries: int) -> int:
    sessions = make_session_factory(engine)
    with sessions() as s:
        member = create_member(s, now=NOW, name="Long history")
        for i in range(entries):
            ledger.credit(
                s,
                member,
                ledger.Posting(kind="earn", points=1, key=f"long:{i}", qualifying=True),  # type: ignore[arg-type]
                now=NOW - timedelta(minutes=entries - i),
                expires_at=None,
            )
            if i % 1000 == 999:
                s.commit()
        s.commit()
        return member.id


def read_figures(engine: Engine, member_id: int) -> dict[str, tuple[float, float]]:
    sessions = make_session_factory(engine)

    def balance_and_history() -> None:
        with sessions() as s:
            s.scalar(select(Member.points_balance).where(Member.id == member_id))
            [history.describe(e, TZ) for e in ledger.history(s, member_id, limit=10)]

    def recompute(session: Session | None = None) -> None:
        with sessions() as s:
            ledger.ledger_totals(s, member_id)

    return {
        "balance + last 10 entries": timed(balance_and_history),
        "baseline: balance recomputed from all entries": timed(recompute),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2, help="threads per process")
    parser.add_argument("--processes", type=int, default=1, help="2: the Procfile's web (gunicorn -w 2)")
    parser.add_argument("--history", type=int, default=10_000)
    args = parser.parse_args()
    with scratch_database(args.db) as engine:
        member_ids = seed(engine, args.members)
        bare = run_bare_inserts(engine, member_ids[0], min(args.ops, 20_000))
        earns = run_earns(engine, member_ids, args.ops, args.workers, args.processes)
        print(
            f"ledger benchmark on {args.db}: {args.ops:,} earns over {args.members:,} members, "
            f"{args.processes} process(es) x {args.workers} threads"
        )
        print(f"  earn operations/s ............ {earns:10,.0f}")
        print(f"  baseline bare INSERT+COMMIT/s  {bare:10,.0f}   (earn = {earns / bare:.2f}x of bare, 1 worker)")
        print(f"  books after the run .......... {check_books(engine)}")
        member_id = long_history_member(engine, args.history)
        for name, (p50, p99) in read_figures(engine, member_id).items():
            print(f"  {name:<46} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  ({args.history:,} entries)")


if __name__ == "__main__":
    main()
