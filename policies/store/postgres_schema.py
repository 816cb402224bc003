"""The PostgreSQL store's schema, as ordered migrations, and `migrate()`, which applies them.

Each migration is `(number, description, statements)`. Statements name tables as `{schema}.table`; `migrate`
substitutes the store's schema (a validated lowercase identifier) before running them. Numbers only grow: a
released migration is never edited, a change is a new migration appended at the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

__all__ = ["MIGRATIONS", "migrate"]

logger = logging.getLogger(__name__)

_INITIAL = (
    """
    CREATE TABLE {schema}.policies (
        policy_id      text PRIMARY KEY,
        latest_version integer NOT NULL CHECK (latest_version >= 0),
        canary_weight  double precision NOT NULL DEFAULT 0 CHECK (canary_weight >= 0 AND canary_weight <= 1),
        created_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE {schema}.policy_versions (
        policy_id  text NOT NULL REFERENCES {schema}.policies (policy_id),
        version    integer NOT NULL CHECK (version >= 1),
        document   jsonb NOT NULL,
        checksum   text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        archived   boolean NOT NULL DEFAULT false,
        PRIMARY KEY (policy_id, version)
    )
    """,
    """
    CREATE TABLE {schema}.policy_aliases (
        policy_id  text NOT NULL,
        alias      text NOT NULL,
        version    integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (policy_id, alias),
        FOREIGN KEY (policy_id, version) REFERENCES {schema}.policy_versions (policy_id, version)
    )
    """,
    """
    CREATE TABLE {schema}.policy_audit (
        id              bigserial PRIMARY KEY,
        policy_id       text NOT NULL,
        actor           text NOT NULL,
        action          text NOT NULL,
        at              timestamptz NOT NULL,
        version         integer,
        alias           text,
        from_value      jsonb,
        to_value        jsonb,
        reason          text,
        idempotency_key text,
        recorded_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX policy_audit_policy_idx ON {schema}.policy_audit (policy_id, id)",
    """
    CREATE TABLE {schema}.idempotency_keys (
        policy_id  text NOT NULL,
        key        text NOT NULL,
        version    integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (policy_id, key),
        FOREIGN KEY (policy_id, version) REFERENCES {schema}.policy_versions (policy_id, version)
    )
    """,
    """
    CREATE TABLE {schema}.store_state (
        singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        change_seq bigint NOT NULL DEFAULT 0
    )
    """,
    "INSERT INTO {schema}.store_state (singleton, change_seq) VALUES (true, 0)",
)

_AUDIT_APPEND_ONLY = (
    """
    CREATE FUNCTION {schema}.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the policy audit log is append-only (% refused)', TG_OP;
    END
    $$
    """,
    """
    CREATE TRIGGER policy_audit_append_only BEFORE UPDATE OR DELETE ON {schema}.policy_audit
        FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_audit_change()
    """,
    """
    CREATE TRIGGER policy_audit_no_truncate BEFORE TRUNCATE ON {schema}.policy_audit
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_audit_change()
    """,
)

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "policies, versions, aliases, audit, idempotency keys, change counter", _INITIAL),
    (2, "audit log is append-only", _AUDIT_APPEND_ONLY),
)


async def migrate(conn: psycopg.AsyncConnection[TupleRow], schema: str) -> int:
    """Create `schema` and apply the pending migrations in one transaction; return the store's change counter.

    Idempotent and safe to run from several processes at once: the transaction holds a transaction-level advisory
    lock keyed on the schema, so concurrent callers wait and then find nothing left to do. `CREATE SCHEMA` is
    skipped when the schema exists (it needs the CREATE privilege on the database).

    Args:
        conn: An autocommit connection (the transaction is opened here).
        schema: A validated lowercase identifier.

    Raises:
        psycopg.Error: the database refused or failed; nothing was applied.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"csrm-migrate:{schema}",))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:
            await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer PRIMARY KEY, "
            "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute(f"SELECT coalesce(max(version), 0) FROM {schema}.schema_version")
        row = await cur.fetchone()
        current = int(row[0]) if row is not None else 0
        for number, description, statements in MIGRATIONS:
            if number <= current:
                continue
            for statement in statements:
                await conn.execute(statement.format(schema=schema))
            await conn.execute(
                f"INSERT INTO {schema}.schema_version (version, description) VALUES (%s, %s)", (number, description)
            )
            logger.info("policy store %s: applied migration %d (%s)", schema, number, description)
        cur = await conn.execute(f"SELECT change_seq FROM {schema}.store_state")
        row = await cur.fetchone()
        return int(row[0]) if row is not None else 0
