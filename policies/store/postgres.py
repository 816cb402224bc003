"""`PostgresPolicyStore`: the policy store shared by several replicas, on PostgreSQL (psycopg 3, async).

`open_store("postgresql://...")` builds it.

Tables (in one schema, `csrm` by default; a `schema=NAME` query parameter in the URL picks another):

    schema_version   migrations applied (version, description, applied_at)
    policies         one row per policy: latest_version, canary_weight; its row lock serialises the policy's writers
    policy_versions  (policy_id, version) PK, document jsonb, checksum, created_at, archived
    policy_aliases   (policy_id, alias) PK -> version (FK to policy_versions)
    policy_audit     bigserial id, append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)
    idempotency_keys (policy_id, key) PK -> version
    store_state      one row: change_seq, bumped by every mutation (the `version_token`)

Migrations (`postgres_schema.migrate`) run at the first use of the store, in one transaction under
`pg_advisory_xact_lock`, so replicas that start together apply each migration exactly once.

Each mutation is one transaction: lock the policy row (`SELECT ... FOR UPDATE`), read its state into a
`PolicyRecord`, apply the same check-then-apply method the in-memory store uses, write the difference and the audit
rows, bump `store_state.change_seq` and `pg_notify(channel, policy_id)`. The notification is delivered on commit.
Concurrent publishes from several replicas therefore get distinct consecutive versions (the row lock; the primary
key would refuse a duplicate anyway) and exactly one audit row each.

Change propagation: `postgres_listen.ChangeListener` (its own connection, `LISTEN`, a polled fallback, reconnects)
calls the callbacks registered with `subscribe`. The channel is `csrm_policy_changes` for the default schema and
`csrm_policy_changes__<schema>` otherwise.

This module and its two siblings (`postgres_schema`, `postgres_listen`) are the only ones that use psycopg.

Outage: every driver, pool and network error surfaces as `StoreUnavailable` (raised `from` the original). The pool
reconnects by itself; `ping()` answers within `ping_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from policies.errors import StoreUnavailable
from policies.schema import PolicyDocument
from policies.store.base import AuditEntry, PolicyHead
from policies.store.memory import PolicyRecord
from policies.store.postgres_listen import ChangeCallback, ChangeListener, read_change_seq
from policies.store.postgres_schema import migrate

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

__all__ = ["DEFAULT_SCHEMA", "ChangeCallback", "PostgresPolicyStore", "split_schema"]

logger = logging.getLogger(__name__)

DEFAULT_SCHEMA = "csrm"
_SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_DRIVER_ERRORS = (psycopg.Error, OSError, TimeoutError)
# A pooled connection slot retries in the background with backoff (1 s, 2 s, ...) for this long, then frees the
# slot so that the next request connects at once: after an outage, requests recover within about this delay.
_RECONNECT_GIVE_UP = 2.0

AConn = psycopg.AsyncConnection["TupleRow"]


def split_schema(url: str) -> tuple[str, str]:
    """Split a store URL into a libpq conninfo URL and the schema named by its `schema` query parameter.

    Returns:
        (conninfo, schema): the URL without `schema=` (and with `postgresql+psycopg://` normalised to
        `postgresql://`), and the schema (`DEFAULT_SCHEMA` when absent).

    Raises:
        ValueError: the schema name is not a lowercase identifier of at most 40 characters.
    """
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    if not _SCHEMA_PATTERN.match(schema):
        raise ValueError(f"invalid PostgreSQL schema name {schema!r} (lowercase identifier, at most 40 chars)")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresPolicyStore:
    """A `PolicyStore` on PostgreSQL, safe to share between processes and replicas.

    Opens lazily: the first call (or `open()`) creates the pool, migrates the schema and starts the listener.
    If the database is down then, that call raises `StoreUnavailable` and the next one tries again.

    Args:
        url: `postgresql://user@host:port/db[?schema=NAME&...]`; other query parameters go to libpq.
        pool_min: Connections kept open.
        pool_max: Most connections open at once.
        timeout: Seconds to wait for a pooled connection and, per operation, for the database.
        ping_timeout: Seconds `ping()` may take before it reports the store unavailable.
        poll_interval: Seconds between the listener's liveness and change-counter polls.
        connect_timeout: Seconds one connection attempt may take.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_min: int = 1,
        pool_max: int = 4,
        timeout: float = 5.0,
        ping_timeout: float = 1.0,
        poll_interval: float = 2.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self._conninfo, self.schema = split_schema(url)
        params = conninfo_to_dict(self._conninfo)
        self._where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
        options = " ".join(filter(None, [str(params.get("options") or ""), f"-c search_path={self.schema}"]))
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"{options} -c TimeZone=UTC",
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": params.get("application_name") or "csrm-serve",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        self.channel = "csrm_policy_changes" if self.schema == DEFAULT_SCHEMA else f"csrm_policy_changes__{self.schema}"
        self._pool_size = (pool_min, pool_max)
        self._timeout = timeout
        self._ping_timeout = ping_timeout
        self._poll_interval = poll_interval
        self._pool: AsyncConnectionPool[AConn] | None = None
        self._migrated = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._known_seq: int | None = None  # highest change counter seen (reads, own commits, the listener)
        self._token: str | None = None  # what version_token last returned
        self._listener = ChangeListener(
            self._connect, self.channel, name=self.schema, on_seq=self._saw,
            timeout=timeout, ping_timeout=ping_timeout, poll_interval=poll_interval,
        )  # fmt: skip

    @property
    def listening(self) -> bool:
        """True while the change listener's connection is up and LISTENing (for diagnostics and tests)."""
        return self._listener.listening

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool, migrate the schema and start the listener; idempotent.

        Raises:
            StoreUnavailable: the database cannot be reached, or the store was closed.
        """
        await self._ready()

    async def close(self) -> None:
        """Stop the listener and close every connection. Idempotent; later calls raise `StoreUnavailable`."""
        self._closed = True
        await self._listener.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Register a change callback (e.g. `PolicyRegistry.invalidate`); returns a function that removes it.

        The callback runs on the listener task with a policy id, or None for "anything may have changed" (after a
        reconnection, or when the poll sees a change no notification announced). It may be sync or async; its
        errors are logged and ignored.
        """
        return self._listener.subscribe(callback)

    async def _connect(self) -> AConn:
        """A new connection outside the pool (the listener's)."""
        return await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)

    async def _ready(self) -> AsyncConnectionPool[AConn]:
        if self._closed:
            raise StoreUnavailable("the PostgreSQL policy store is closed")
        if self._pool is not None and self._migrated:
            return self._pool
        async with self._open_lock:
            if self._closed:
                raise StoreUnavailable("the PostgreSQL policy store is closed")
            if self._pool is None:
                pool: AsyncConnectionPool[AConn] = AsyncConnectionPool(
                    self._conninfo,
                    min_size=self._pool_size[0],
                    max_size=self._pool_size[1],
                    kwargs=self._kwargs,
                    timeout=self._timeout,
                    reconnect_timeout=_RECONNECT_GIVE_UP,
                    check=AsyncConnectionPool.check_connection,
                    name=f"csrm-{self.schema}",
                    open=False,
                )
                await pool.open(wait=False)
                self._pool = pool
            if not self._migrated:
                try:
                    await self._migrate(self._pool)
                except StoreUnavailable:
                    pool, self._pool = self._pool, None  # the next call starts afresh, not in the pool's backoff
                    await pool.close()
                    raise
                self._migrated = True
                self._listener.start(baseline=self._known_seq or 0)
        return self._pool

    async def _migrate(self, pool: AsyncConnectionPool[AConn]) -> None:
        try:
            async with asyncio.timeout(max(self._timeout, 10.0)), pool.connection() as conn:
                self._saw(await migrate(conn, self.schema))
        except _DRIVER_ERRORS as exc:
            raise self._unavailable("cannot migrate the schema", exc) from exc

    def _unavailable(self, what: str, exc: BaseException) -> StoreUnavailable:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailable(f"PostgreSQL policy store at {self._where}: {what}: {reason}")

    @contextlib.asynccontextmanager
    async def _connection(self, what: str, timeout: float | None = None) -> AsyncIterator[AConn]:
        pool = await self._ready()
        limit = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(2 * limit), pool.connection(timeout=limit) as conn:
                yield conn
        except _DRIVER_ERRORS as exc:
            raise self._unavailable(what, exc) from exc

    @contextlib.asynccontextmanager
    async def _locked(self, policy_id: str, what: str, *, create: bool = False) -> AsyncIterator[_Mutation]:
        """One mutation transaction holding the policy's row lock; commits on exit, rolls back on error.

        If the body wrote something (`_Mutation.write`), the change counter is bumped last (its row lock is held
        only until the commit) and the notification queued, to be delivered on commit.
        """
        seq = None
        async with self._connection(what) as conn:
            async with conn.transaction():
                if create:
                    await conn.execute(
                        "INSERT INTO policies (policy_id, latest_version) VALUES (%s, 0) ON CONFLICT DO NOTHING",
                        (policy_id,),
                    )
                mutation = _Mutation(conn, await _load_record(conn, policy_id))
                yield mutation
                if mutation.changed:
                    cur = await conn.execute("UPDATE store_state SET change_seq = change_seq + 1 RETURNING change_seq")
                    seq = _scalar(await cur.fetchone())
                    await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, policy_id))
        if seq is not None:
            self._saw(seq)

    # -- reads -----------------------------------------------------------------------------------------------

    async def list_policies(self) -> list[str]:
        """See `PolicyStore.list_policies`."""
        async with self._connection("cannot list policies") as conn:
            cur = await conn.execute("SELECT policy_id FROM policies WHERE latest_version > 0 ORDER BY policy_id")
            return [str(row[0]) for row in await cur.fetchall()]

    async def get_head(self, policy_id: str) -> PolicyHead | None:
        """See `PolicyStore.get_head` (one statement, so one snapshot)."""
        async with self._connection("cannot read the policy head") as conn:
            cur = await conn.execute(_HEAD_SQL, (policy_id,))
            row = await cur.fetchone()
        if row is None or row[0] == 0:
            return None
        return PolicyHead(
            policy_id=policy_id,
            latest_version=int(row[0]),
            aliases={str(k): int(v) for k, v in row[2].items()},
            canary_weight=float(row[1]),
            archived=frozenset(int(v) for v in row[3]),
        )

    async def get_version(self, policy_id: str, version: int) -> PolicyDocument | None:
        """See `PolicyStore.get_version`."""
        async with self._connection("cannot read a policy version") as conn:
            cur = await conn.execute(
                "SELECT document FROM policy_versions WHERE policy_id = %s AND version = %s", (policy_id, version)
            )
            row = await cur.fetchone()
        return None if row is None else self._document(row[0])

    async def list_versions(self, policy_id: str) -> list[PolicyDocument]:
        """See `PolicyStore.list_versions`."""
        async with self._connection("cannot list policy versions") as conn:
            cur = await conn.execute(
                "SELECT document FROM policy_versions WHERE policy_id = %s ORDER BY version", (policy_id,)
            )
            rows = await cur.fetchall()
        return [self._document(row[0]) for row in rows]

    async def list_audit(self, policy_id: str) -> list[AuditEntry]:
        """See `PolicyStore.list_audit`; append order is the order of the `bigserial` ids."""
        async with self._connection("cannot read the audit log") as conn:
            cur = await conn.execute(_AUDIT_SELECT, (policy_id,))
            rows = await cur.fetchall()
        return [_audit_from_row(row) for row in rows]

    async def version_token(self) -> str:
        """See `PolicyStore.version_token`: the store-wide change counter `store_state.change_seq`.

        Read from the database (one row, within `ping_timeout`), except after the listener has lost its
        connection and until it is back (an outage): then, and when the read fails, the token this method last
        returned is returned again at once. Callers that poll it on their hot path therefore neither wait on a
        dead database nor see a change they could not fetch (which would make them drop caches they cannot
        refill). Once the listener is back, the next call reads the database, so the token moves if anything
        changed meanwhile.

        Raises:
            StoreUnavailable: the database has not been reached since the store was opened.
        """
        if self._token is not None and self._listener.lost:
            return self._token
        try:
            async with self._connection("cannot read the change counter", timeout=self._ping_timeout) as conn:
                seq = self._saw(await read_change_seq(conn))
        except StoreUnavailable:
            if self._token is None:
                raise
            return self._token
        self._token = str(seq)
        return self._token

    async def ping(self) -> None:
        """See `PolicyStore.ping`: a `SELECT 1` through the pool, answered or failed within `ping_timeout`."""
        try:
            async with asyncio.timeout(self._ping_timeout):
                async with self._connection("unreachable", timeout=self._ping_timeout) as conn:
                    await conn.execute("SELECT 1")
        except TimeoutError as exc:
            raise self._unavailable("unreachable", TimeoutError(f"no answer within {self._ping_timeout} s")) from exc

    # -- mutations -------------------------------------------------------------------------------------------

    async def add_version(
        self,
        doc: PolicyDocument,
        audit: AuditEntry,
        *,
        expected_latest: int | None = None,
        set_aliases: tuple[str, ...] = (),
        idempotency_key: str | None = None,
    ) -> PolicyDocument:
        """See `PolicyStore.add_version`."""
        async with self._locked(doc.id, "cannot publish", create=True) as m:
            if idempotency_key is not None:
                earlier = await _idempotent_version(m.conn, doc.id, idempotency_key)
                if earlier is not None:
                    return self._document(earlier)
            number = m.record.add_version(audit, expected_latest, set_aliases, idempotency_key)
            stored = doc.model_copy(update={"version": number, "parent_version": number - 1 or None})
            await m.conn.execute(
                "INSERT INTO policy_versions (policy_id, version, document, checksum) VALUES (%s, %s, %s, %s)",
                (doc.id, number, Jsonb(stored.model_dump(mode="json")), stored.checksum),
            )
            if idempotency_key is not None:
                await m.conn.execute(
                    "INSERT INTO idempotency_keys (policy_id, key, version) VALUES (%s, %s, %s)",
                    (doc.id, idempotency_key, number),
                )
            await m.write()
            return stored

    async def set_alias(
        self,
        policy_id: str,
        alias: str,
        version: int,
        audit: AuditEntry,
        *,
        expected_version: int | None = None,
    ) -> None:
        """See `PolicyStore.set_alias`."""
        async with self._locked(policy_id, "cannot set the alias") as m:
            m.record.set_alias(alias, version, audit, expected_version)
            await m.write()

    async def delete_alias(
        self, policy_id: str, alias: str, audit: AuditEntry, *, expected_version: int | None = None
    ) -> bool:
        """See `PolicyStore.delete_alias`."""
        async with self._locked(policy_id, "cannot delete the alias") as m:
            if not m.record.delete_alias(alias, audit, expected_version):
                return False
            await m.write()
            return True

    async def set_canary_weight(self, policy_id: str, weight: float, audit: AuditEntry) -> None:
        """See `PolicyStore.set_canary_weight`."""
        async with self._locked(policy_id, "cannot set the canary weight") as m:
            m.record.set_canary_weight(weight, audit)
            await m.write()

    async def set_archived(self, policy_id: str, version: int, archived: bool, audit: AuditEntry) -> None:
        """See `PolicyStore.set_archived`."""
        async with self._locked(policy_id, "cannot archive") as m:
            m.record.set_archived(version, archived, audit)
            await m.write()

    def _document(self, data: Any) -> PolicyDocument:
        """A stored document, re-validated (checksum included); a corrupt row is a store failure."""
        try:
            return PolicyDocument.model_validate(data)
        except ValidationError as exc:
            raise StoreUnavailable(f"PostgreSQL policy store at {self._where}: corrupt policy document: {exc}") from exc

    # -- change counter ------------------------------------------------------------------------------------

    def _saw(self, seq: int) -> int:
        """Remember the highest change counter read (reads may finish out of order); return `seq`."""
        self._known_seq = seq if self._known_seq is None else max(self._known_seq, seq)
        return seq


class _Mutation:
    """The state of one policy inside a mutation transaction, and the writes that bring the row up to date."""

    def __init__(self, conn: AConn, record: PolicyRecord) -> None:
        self.conn = conn
        self.before = record
        self.record = record.copy()
        self.changed = False

    async def write(self) -> None:
        """Write what the `PolicyRecord` method changed: policy row, aliases, archive flags, audit entries."""
        old, new, conn = self.before, self.record, self.conn
        if (old.latest, old.canary_weight) != (new.latest, new.canary_weight):
            await conn.execute(
                "UPDATE policies SET latest_version = %s, canary_weight = %s WHERE policy_id = %s",
                (new.latest, new.canary_weight, new.policy_id),
            )
        for alias, version in new.aliases.items():
            if old.aliases.get(alias) != version:
                await conn.execute(_ALIAS_UPSERT, (new.policy_id, alias, version))
        for alias in old.aliases.keys() - new.aliases.keys():
            await conn.execute("DELETE FROM policy_aliases WHERE policy_id = %s AND alias = %s", (new.policy_id, alias))
        for version in old.archived ^ new.archived:
            await conn.execute(
                "UPDATE policy_versions SET archived = %s WHERE policy_id = %s AND version = %s",
                (version in new.archived, new.policy_id, version),
            )
        for entry in new.audit[len(old.audit) :]:
            await conn.execute(_AUDIT_INSERT, _audit_params(entry))
        self.changed = True


async def _load_record(conn: AConn, policy_id: str) -> PolicyRecord:
    """Lock the policy's row (if any) and read its state; an absent policy reads as latest 0."""
    cur = await conn.execute(
        "SELECT latest_version, canary_weight FROM policies WHERE policy_id = %s FOR UPDATE", (policy_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return PolicyRecord(policy_id)
    cur = await conn.execute("SELECT alias, version FROM policy_aliases WHERE policy_id = %s", (policy_id,))
    aliases = {str(a): int(v) for a, v in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT version FROM policy_versions WHERE policy_id = %s AND archived", (policy_id,)
    )
    archived = {int(r[0]) for r in await cur.fetchall()}
    return PolicyRecord(policy_id, latest=int(row[0]), aliases=aliases, canary_weight=float(row[1]), archived=archived)


async def _idempotent_version(conn: AConn, policy_id: str, key: str) -> Any:
    """The stored document (raw jsonb) an idempotency key published, or None."""
    cur = await conn.execute(
        "SELECT v.document FROM idempotency_keys k JOIN policy_versions v USING (policy_id, version) "
        "WHERE k.policy_id = %s AND k.key = %s",
        (policy_id, key),
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


def _scalar(row: TupleRow | None) -> int:
    return 0 if row is None or row[0] is None else int(row[0])


def _audit_params(entry: AuditEntry) -> tuple[Any, ...]:
    def as_json(value: int | float | None) -> Jsonb | None:
        return None if value is None else Jsonb(value)

    return (
        entry.policy_id, entry.actor, entry.action, entry.at, entry.version, entry.alias,
        as_json(entry.from_), as_json(entry.to), entry.reason, entry.idempotency_key,
    )  # fmt: skip


def _audit_from_row(row: TupleRow) -> AuditEntry:
    policy_id, actor, action, at, version, alias, from_, to, reason, key = row
    return AuditEntry(
        actor=actor, action=action, policy_id=policy_id, at=at, version=version, alias=alias,
        from_=from_, to=to, reason=reason, idempotency_key=key,
    )  # fmt: skip


_AUDIT_COLUMNS = "policy_id, actor, action, at, version, alias, from_value, to_value, reason, idempotency_key"
_AUDIT_INSERT = f"INSERT INTO policy_audit ({_AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_AUDIT_SELECT = f"SELECT {_AUDIT_COLUMNS} FROM policy_audit WHERE policy_id = %s ORDER BY id"
_ALIAS_UPSERT = (
    "INSERT INTO policy_aliases (policy_id, alias, version) VALUES (%s, %s, %s) "
    "ON CONFLICT (policy_id, alias) DO UPDATE SET version = EXCLUDED.version, updated_at = now()"
)
_HEAD_SQL = """
SELECT p.latest_version, p.canary_weight,
       coalesce((SELECT jsonb_object_agg(a.alias, a.version) FROM policy_aliases a
                 WHERE a.policy_id = p.policy_id), '{}'::jsonb),
       coalesce((SELECT array_agg(v.version ORDER BY v.version) FROM policy_versions v
                 WHERE v.policy_id = p.policy_id AND v.archived), '{}'::integer[])
FROM policies p WHERE p.policy_id = %s
"""
