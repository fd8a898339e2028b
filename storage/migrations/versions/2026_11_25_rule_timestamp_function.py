"""wf_timestamp(text): the rule language's timestamp parse, in PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Exactly the forms engine/rules/values.py TIMESTAMP accepts; NULL for anything else, an
# impossible date included. A timestamp without an offset is UTC (never the session zone).
FUNCTION = r"""
CREATE OR REPLACE FUNCTION wf_timestamp(t text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF t IS NULL OR left(t, 4) = '0000' OR t !~ (
        '^[0-9]{4}-[0-9]{2}-[0-9]{2}'
        || '([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?'
        || '(Z|[+-][0-9]{2}:[0-9]{2})?)?$'
    ) THEN
        RETURN NULL;
    END IF;
    IF t ~ '(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
        RETURN t::timestamptz;
    END IF;
    RETURN t::timestamp AT TIME ZONE 'UTC';
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS wf_timestamp(text)")
