"""The configuration cache (models.config): read once per change, never older than the database's current state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from loyalty.program import ProgramRules, load_rules, save_rules
from loyalty.stamps import all_cards
from loyalty.tiers import list_tiers
from models import ConfigVersion
from models.config import _cache, current_token
from tests.loyalty.conftest import NOW

CHANGES = {  # what an operator in psql or a migration might do: no ORM, no hook of ours, only the triggers
    "program_settings": [
        "INSERT INTO program_settings (data, updated_at) VALUES ('{}', :now)",
        "UPDATE program_settings SET updated_by = 'psql'",
        "DELETE FROM program_settings",
    ],
    "tiers": [
        "INSERT INTO tiers (name, threshold, benefits, earn_multiplier_pct, reward_discount_pct) "
        "VALUES ('Đồng', 7, '', 100, 0)",
        "UPDATE tiers SET benefits = 'x2'",
        "DELETE FROM tiers",
    ],
    "stamp_cards": [
        "INSERT INTO stamp_cards (name, description, stamps_needed, reward_id, max_per_bill, min_bill_amount,"
        " min_hours_between, is_active, created_at) SELECT 'Thẻ', '', 5, id, 1, 0, 0, true, :now FROM rewards",
        "UPDATE stamp_cards SET stamps_needed = 6",
        "DELETE FROM stamp_cards",
    ],
}


def _engine(sessions: sessionmaker[Session]) -> Engine:
    engine: Engine = sessions.kw["bind"]
    return engine


def _token(sessions: sessionmaker[Session]) -> str | None:
    with sessions() as s:
        return s.scalar(select(ConfigVersion.token))


@contextmanager
def _statements(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    engine = _engine(sessions)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_every_change_to_a_configuration_table_gives_a_new_token(sessions: sessionmaker[Session], shop: object) -> None:
    seen = {_token(sessions)}
    assert None not in seen  # the migration (or the shop's tiers) wrote one
    truncate = ["TRUNCATE tiers CASCADE"] if _engine(sessions).dialect.name == "postgresql" else []
    for table, statements in [*CHANGES.items(), ("tiers", truncate)]:
        for sql in statements:
            with _engine(sessions).begin() as conn:
                conn.execute(text(sql), {"now": NOW})
            token = _token(sessions)
            assert token not in seen, f"{table}: {sql}"
            seen.add(token)


def test_a_truncated_token_table_disables_the_cache_until_the_next_change(sessions: sessionmaker[Session]) -> None:
    with _engine(sessions).begin() as conn:
        conn.execute(text("DELETE FROM config_version"))
    with sessions() as s, _statements(sessions) as seen:
        assert load_rules(s) == ProgramRules() and load_rules(s) == ProgramRules()
    assert sum("program_settings" in q for q in seen) == 2  # no token: every read goes to the database
    with sessions() as s:
        save_rules(s, ProgramRules(min_bill_amount=20_000))
        s.commit()
    assert _token(sessions) is not None


def test_the_rules_tiers_and_cards_are_read_once_per_change(sessions: sessionmaker[Session], shop: object) -> None:
    with sessions() as s:
        assert [t.name for t in list_tiers(s)][:2] == ["Thành viên", "Bạc"]
        load_rules(s), all_cards(s)
    with sessions() as s, _statements(sessions) as seen:
        tiers, rules, cards = list_tiers(s), load_rules(s), all_cards(s)
    assert len(seen) == 1 and "config_version" in seen[0]  # the token, nothing else
    assert len(tiers) == 4 and rules == ProgramRules() and cards == []
    with _engine(sessions).begin() as conn:  # another process, or psql
        conn.execute(text("UPDATE tiers SET name = 'Bạch kim' WHERE threshold = 500"))
    with sessions() as s:
        assert [t.name for t in list_tiers(s)][:2] == ["Thành viên", "Bạch kim"]


def test_a_sessions_own_change_is_read_back_and_a_rollback_leaves_no_trace(
    sessions: sessionmaker[Session], shop: object
) -> None:
    with sessions() as s:
        list_tiers(s)  # cached
    with sessions() as s:
        silver = list_tiers(s)[1]
        silver.name = "Bạc mới"  # not flushed: the next read flushes it, as a query's autoflush would
        s.add(s.merge(type(silver)(name="Đồng", threshold=100)))
        names = [t.name for t in list_tiers(s)]
        assert names[:3] == ["Thành viên", "Đồng", "Bạc mới"] and list_tiers(s)[2] is silver
        s.rollback()
    with sessions() as s:
        assert [t.name for t in list_tiers(s)] == ["Thành viên", "Bạc", "Vàng", "Kim cương"]


def test_an_object_a_session_edits_is_its_own_copy(sessions: sessionmaker[Session], shop: object) -> None:
    with sessions() as first, sessions() as second:
        list_tiers(first)
        mine = list_tiers(first)[0]
        mine.benefits = "đã sửa, chưa lưu"
        theirs = list_tiers(second)[0]
        assert theirs is not mine and theirs.benefits == "Tích 1 điểm mỗi 10.000đ"


def test_a_change_committed_between_the_token_and_the_load_is_not_cached(
    sessions: sessionmaker[Session], shop: object
) -> None:
    with sessions() as s:
        token = current_token(s)  # this transaction's token, read before the change below
        with _engine(sessions).begin() as conn:
            conn.execute(text("UPDATE tiers SET name = 'Bạch kim' WHERE threshold = 500"))
        list_tiers(s)  # loaded after the change: whatever it read must not be filed under the old token
    assert token is not None and ("tiers", token) not in _cache
    with sessions() as s:
        assert list_tiers(s)[1].name == "Bạch kim"
