"""Console benchmark: dashboard, member search and the results at 100,000 members and 1,000,000 ledger entries.

    .venv/bin/python -m bench.console [--members 100000] [--entries 1000000] [--repeat 20]

Seeds a scratch PostgreSQL schema with generate_series (members with phones, birthdays, tiers and Zalo
users; ledger entries spread over the last two years; vouchers), then times requests through the Flask
app as a logged-in owner: the dashboard, member search by phone / name / code, the tier and activity
filters, a deep page, and a member page. The baseline, measured in the same run, is the same requests
against an empty shop: what the size costs on top of rendering the page.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import Engine, text

from bench.common import DEFAULT_PG, scratch_database, timed
from console.staff import create_staff
from models import Reward, Store, Tier
from tichdiem.app import create_app
from tichdiem.config import Settings, load_settings
from tichdiem.db import make_session_factory

PASSWORD = "mat-khau-bench"


def seed_catalog(engine: Engine) -> None:
    with make_session_factory(engine)() as session:
        session.add_all(
            [
                Tier(name="Thành viên", threshold=0),
                Tier(name="Bạc", threshold=300),
                Tier(name="Vàng", threshold=1000, earn_multiplier_pct=150),
                Tier(name="Kim cương", threshold=3000, earn_multiplier_pct=200),
                Store(code="Q1", name="Quận 1"),
                Reward(name="Cà phê sữa đá", points_cost=50),
                Reward(name="Bánh ngọt", points_cost=80),
                Reward(name="Voucher 100.000đ", points_cost=300),
            ]
        )
        session.flush()
        create_staff(session, username="chu", password=PASSWORD, role="owner", name="Chủ quán")
        session.commit()


def seed_volume(engine: Engine, members: int, entries: int) -> None:
    """Bulk rows in SQL: the ORM would take many minutes for a million entries and measure nothing useful."""
    statements = [
        # A quarter of the members are Zalo followers; their last message is spread over 90 days.
        """INSERT INTO zalo_users (user_id, is_follower, last_interaction_at, created_at)
           SELECT 'zu' || g, true, now() - (g % 90) * interval '1 day', now() FROM generate_series(1, :members) g
           WHERE g % 4 = 0""",
        """INSERT INTO members (code, name, phone, birthday, zalo_user_id, status, tier_id, points_balance,
                                points_lifetime, joined_at, source, card_version)
           SELECT 'M' || lpad(g::text, 7, '0'),
                  (ARRAY['Nguyễn','Trần','Lê','Phạm','Hoàng','Vũ'])[1 + g % 6] || ' Thị ' ||
                  (ARRAY['Lan','Minh','Hoa','An','Bình','Chi','Dũng'])[1 + g % 7] || ' ' || g,
                  '849' || lpad(g::text, 8, '0'),
                  date '1980-01-01' + (g % 9000),
                  CASE WHEN g % 4 = 0 THEN 'zu' || g END,
                  'active',
                  (SELECT id FROM tiers ORDER BY threshold OFFSET (g % 4) LIMIT 1),
                  g % 500, g % 4000,
                  now() - (g % 400) * interval '1 day', 'import', 1
           FROM generate_series(1, :members) g""",
        """INSERT INTO ledger_entries (member_id, kind, points, balance_after, idempotency_key, reason, actor_type,
                                       details, created_at, qualifying_at, bill_amount)
           SELECT (SELECT min(id) FROM members) + (g % :members),
                  (ARRAY['earn','earn','earn','earn','redeem','expire','adjust','referral_bonus'])[1 + g % 8],
                  CASE WHEN g % 8 IN (4, 5) THEN -(g % 50) - 1 ELSE (g % 50) + 1 END,
                  g % 500, 'bench:' || g, '', 'system', '{}',
                  now() - (g % (730 * 24)) * interval '1 hour',
                  CASE WHEN g % 8 < 4 THEN now() - (g % (730 * 24)) * interval '1 hour' END,
                  CASE WHEN g % 8 < 4 THEN ((g % 50) + 1) * 10000 END
           FROM generate_series(1, :entries) g""",
        """INSERT INTO vouchers (code, member_id, reward_id, points_spent, source, status, idempotency_key,
                                 issued_at, expires_at)
           SELECT 'V' || lpad(g::text, 9, '0'), (SELECT min(id) FROM members) + (g % :members),
                  (SELECT min(id) FROM rewards) + (g % 3), 50, 'redeem', 'issued', 'bench-v:' || g,
                  now(), now() + interval '30 days'
           FROM generate_series(1, :members / 10) g""",
        # Bills of customers who are not members, one per member over two years (the results' "all bills").
        """INSERT INTO walk_in_bills (store_id, amount, channel, idempotency_key, created_at)
           SELECT NULL, ((g % 50) + 1) * 10000, 'pos', 'bench-w:' || g, now() - (g % (730 * 24)) * interval '1 hour'
           FROM generate_series(1, :members) g""",
        # Three broadcasts, 10, 40 and 80 days ago, each to every Zalo follower (a quarter of the members).
        """INSERT INTO broadcasts (name, text, buttons, segment, promotional, status, audience, left_out_no_consent,
                                   created_at, started_at, throttle_seconds)
           SELECT 'Chiến dịch ' || d, '…', '[]', '{}', true, 'done', :members / 4, 0,
                  now() - d * interval '1 day', now() - d * interval '1 day', 0
           FROM unnest(ARRAY[10, 40, 80]) d""",
        """INSERT INTO outbox_messages (key, zalo_user_id, kind, message, status, attempts, broadcast_id, created_at,
                                        sent_at)
           SELECT 'bc:' || b.id || ':' || u.user_id, u.user_id, 'message', '{}', 'sent', 1, b.id, b.started_at,
                  b.started_at
           FROM broadcasts b CROSS JOIN zalo_users u""",
        """UPDATE members SET last_earned_at = e.last FROM
           (SELECT member_id, max(created_at) AS last FROM ledger_entries WHERE kind = 'earn' GROUP BY member_id) e
           WHERE e.member_id = members.id""",
        "ANALYZE",
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), {"members": members, "entries": entries})


def console_app(engine: Engine, url: str) -> Flask:
    settings: Settings = load_settings(
        {"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-of-at-least-32-characters"}
    )
    return create_app(settings, config={"TESTING": True})


def requests_to_time(first_member: int, members: int) -> list[tuple[str, str]]:
    g = members // 2 + 1  # a member in the middle of the table, by generate_series number
    return [
        ("dashboard", "/admin/"),
        ("search by phone", f"/admin/members?q=09{g:08d}"),
        ("search by name", "/admin/members?q=Hoa"),
        ("search by code", f"/admin/members?q=M{g:07d}"),
        ("filter: tier + active", "/admin/members?tier=3&activity=active"),
        ("filter: birthday month", "/admin/members?birthday_month=7"),
        ("page 1000", "/admin/members?page=1000"),
        ("member page", f"/admin/members/{first_member + g - 1}"),
        ("results, 90 days", "/admin/results/"),
        ("results, 90 days, computed", "/admin/results/?fresh"),
        ("results, 365 days", "/admin/results/?days=365"),
        ("results, 365 days, computed", "/admin/results/?days=365&fresh"),
        ("stamp cards", "/admin/stamp-cards/"),
        ("VIP plans", "/admin/vip/"),
    ]


def measure(app: Flask, paths: list[tuple[str, str]], repeat: int) -> dict[str, tuple[float, float]]:
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"username": "chu", "password": PASSWORD, "csrf_token": token}).status_code == 302
    results = {}
    for label, path in paths:
        results[label] = timed(_getter(app, client, path), repeat=repeat)
    return results


def _getter(app: Flask, client: Any, path: str) -> Callable[[], None]:
    """A GET of `path`; one ending in "fresh" first drops the results page's 5-minute cache, so the figures are
    computed again (what the first owner to look in 5 minutes waits for)."""
    redis = app.extensions["tichdiem"].redis

    def get() -> None:
        if path.endswith("fresh"):
            for key in redis.scan_iter("tichdiem:results:*"):
                redis.delete(key)
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)

    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg", default=DEFAULT_PG)
    args = parser.parse_args()
    url = f"{args.pg}?options=-csearch_path%3Dtichdiem_bench"

    with scratch_database("postgresql", args.pg) as engine:
        seed_catalog(engine)
        baseline = measure(console_app(engine, url), requests_to_time(1, args.members), args.repeat)
        started = time.perf_counter()
        seed_volume(engine, args.members, args.entries)
        seeded = time.perf_counter() - started
        with engine.connect() as conn:
            first = int(conn.execute(text("SELECT min(id) FROM members")).scalar_one())
        app = console_app(engine, url)
        loaded = measure(app, requests_to_time(first, args.members), args.repeat)

    print(
        f"console at {args.members:,} members and {args.entries:,} ledger entries (PostgreSQL, seeded in {seeded:.0f}s)"
    )
    print(f"{'request':<26}{'empty shop (median/p99 ms)':>30}{'loaded (median/p99 ms)':>28}")
    for label, (median, p99) in loaded.items():
        base_median, base_p99 = baseline[label]
        print(f"{label:<26}{base_median:>19.1f} / {base_p99:<8.1f}{median:>19.1f} / {p99:<8.1f}")


if __name__ == "__main__":
    main()
