"""config version: a token the configuration tables' triggers replace on every change (models.config)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("program_settings", "tiers", "stamp_cards")  # models.config.CONFIG_TABLES when this was written
OPERATIONS = ("INSERT", "UPDATE", "DELETE")

# An upsert, not an UPDATE: a truncated config_version (the tests truncate every table) gets its row back at the
# next change. Random, not a counter: a counter could come back to a value some process has cached.
PG_FUNCTION = """
CREATE FUNCTION tichdiem_new_config_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO config_version (id, token) VALUES (1, gen_random_uuid()::text)
    ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token;
    RETURN NULL;
END $$
"""
SQLITE_BODY = "INSERT OR REPLACE INTO config_version (id, token) VALUES (1, lower(hex(randomblob(16))))"


def upgrade() -> None:
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_version")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute("INSERT INTO config_version (id, token) VALUES (1, gen_random_uuid()::text)")
        for table in TABLES:  # once per statement is enough: a token names a state, not a row
            op.execute(
                f"CREATE TRIGGER {table}_new_config_token AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tichdiem_new_config_token()"
            )
    else:  # SQLite: row triggers only, and no TRUNCATE
        op.execute(SQLITE_BODY)
        for table in TABLES:
            for operation in OPERATIONS:
                op.execute(
                    f"CREATE TRIGGER {table}_{operation.lower()}_new_config_token AFTER {operation} ON {table} "
                    f"BEGIN {SQLITE_BODY}; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_new_config_token ON {table}")
        op.execute("DROP FUNCTION tichdiem_new_config_token()")
    else:
        for table in TABLES:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER {table}_{operation.lower()}_new_config_token")
    op.drop_table("config_version")
