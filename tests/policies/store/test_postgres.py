"""`PostgresPolicyStore` beyond the shared contract (see test_contract.py for that): migrations, replicas racing,
the append-only audit table, change propagation (LISTEN/NOTIFY and the poll fallback) and database outages,
simulated with a TCP proxy in front of the real server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from policies.errors import StoreUnavailable
from policies.registry import PolicyRegistry
from policies.schema import PolicyDocument, PolicyDraft
from policies.store.base import AuditEntry, PolicyStore, open_store
from policies.store.postgres import PostgresPolicyStore, split_schema
from tests.pgtools import FAST, require_postgres, store_url, temporary_schema
from tests.policies.helpers import AT, doc, entry
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> str:
    return require_postgres()


@pytest.fixture
def schema(server: str) -> Iterator[str]:
    with temporary_schema(server) as name:
        yield name


class Stores:
    """Opens stores on one schema (like replicas on one database) and closes them all afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[PostgresPolicyStore] = []

    def __call__(self, url: str | None = None, **options: Any) -> PostgresPolicyStore:
        store = PostgresPolicyStore(url or self.url, **{**FAST, **options})
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture
async def stores(server: str, schema: str) -> AsyncIterator[Stores]:
    opened = Stores(store_url(server, schema))
    yield opened
    await opened.close()


@pytest.fixture
def proxy(server: str) -> Iterator[TcpProxy]:
    parts = urlsplit(server)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


def via(proxy: TcpProxy, url: str) -> str:
    """`url` rewritten to go through the proxy."""
    parts = urlsplit(url)
    netloc = f"{parts.username + '@' if parts.username else ''}127.0.0.1:{proxy.port}"
    return parts._replace(netloc=netloc).geturl()


def sql(server: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


async def eventually(predicate: Any, deadline: float = 5.0, what: str = "condition") -> float:
    """Poll `predicate` (sync or async) until true; return the seconds it took, fail after `deadline`."""
    start = time.monotonic()
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > deadline:
            pytest.fail(f"{what} not reached within {deadline} s")
        await asyncio.sleep(0.02)


class TestUrlAndSchema:
    def test_split_schema(self) -> None:
        assert split_schema("postgresql://u@h:5/db") == ("postgresql://u@h:5/db", "csrm")
        assert split_schema("postgresql+psycopg://u@h/db?schema=abc&sslmode=disable") == (
            "postgresql://u@h/db?sslmode=disable",
            "abc",
        )

    @pytest.mark.parametrize("name", ["Upper", "a-b", "x;drop", "a" * 41, ""])
    def test_refuses_bad_schema_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="schema"):
            split_schema(f"postgresql://h/db?schema={name}")

    async def test_open_store_builds_it_without_connecting(self) -> None:
        store = open_store("postgresql://nobody@127.0.0.1:1/none?schema=lazy")
        assert isinstance(store, PostgresPolicyStore) and isinstance(store, PolicyStore)
        assert store.schema == "lazy" and store.channel == "csrm_policy_changes__lazy"
        await store.close()


class TestMigrations:
    async def test_replicas_starting_together_migrate_once(self, stores: Stores, server: str, schema: str) -> None:
        await asyncio.gather(*(stores().open() for _ in range(4)))
        rows = sql(server, f"SELECT version FROM {schema}.schema_version ORDER BY version")
        assert [r[0] for r in rows] == [1, 2]
        again = stores()
        await again.open()
        assert len(sql(server, f"SELECT * FROM {schema}.schema_version")) == 2

    async def test_pending_migrations_apply_to_an_older_schema(self, stores: Stores, server: str,
                                                                schema: str) -> None:
        await stores().add_version(doc(), entry())
        for statement in (f"DROP TRIGGER policy_audit_append_only ON {schema}.policy_audit",
                          f"DROP TRIGGER policy_audit_no_truncate ON {schema}.policy_audit",
                          f"DROP FUNCTION {schema}.refuse_audit_change()",
                          f"DELETE FROM {schema}.schema_version WHERE version = 2"):  # back to version 1
            sql(server, statement)
        newer = stores()
        assert await newer.list_policies() == ["demo"]
        assert [r[0] for r in sql(server, f"SELECT version FROM {schema}.schema_version ORDER BY 1")] == [1, 2]
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            sql(server, f"DELETE FROM {schema}.policy_audit")

    async def test_schemas_are_isolated(self, stores: Stores, server: str) -> None:
        with temporary_schema(server) as other_schema:
            other = stores(store_url(server, other_schema))
            mine = stores()
            await mine.add_version(doc(), entry())
            assert await other.list_policies() == []
            assert await mine.list_policies() == ["demo"]

    async def test_audit_table_is_append_only(self, stores: Stores, server: str, schema: str) -> None:
        await stores().add_version(doc(), entry())
        for statement in (f"UPDATE {schema}.policy_audit SET actor = 'x'", f"DELETE FROM {schema}.policy_audit",
                          f"TRUNCATE {schema}.policy_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                sql(server, statement)


class TestReplicas:
    async def test_concurrent_publishes_from_replicas(self, stores: Stores) -> None:
        replicas = [stores() for _ in range(3)]
        published = await asyncio.gather(
            *(r.add_version(doc(text=f"text {i}"), entry(reason=str(i))) for i in range(30) for r in [replicas[i % 3]])
        )
        assert sorted(d.version for d in published) == list(range(1, 31))
        audit = await replicas[0].list_audit("demo")
        assert [e.version for e in audit] == list(range(1, 31))
        assert sorted(e.reason or "" for e in audit) == sorted(str(i) for i in range(30))
        head = await replicas[1].get_head("demo")
        assert head is not None and head.latest_version == 30

    async def test_idempotent_retry_racing_on_two_replicas(self, stores: Stores) -> None:
        a, b = stores(), stores()
        one, two = await asyncio.gather(
            a.add_version(doc(), entry(idempotency_key="k"), idempotency_key="k"),
            b.add_version(doc(), entry(idempotency_key="k"), idempotency_key="k"),
        )
        assert one == two and one.version == 1
        assert len(await a.list_audit("demo")) == 1


class TestChangePropagation:
    async def test_notification_reaches_other_replica(self, stores: Stores) -> None:
        writer, reader = stores(), stores()
        seen: list[str | None] = []
        reader.subscribe(seen.append)
        await reader.open()
        await eventually(lambda: reader.listening, what="listener up")
        start = time.monotonic()
        await writer.add_version(doc(), entry())
        await eventually(lambda: "demo" in seen, deadline=2.0, what="notification")
        assert time.monotonic() - start < 2.0

    async def test_async_callbacks_and_unsubscribe(self, stores: Stores) -> None:
        store = stores()
        seen: list[str | None] = []

        async def callback(policy_id: str | None) -> None:
            seen.append(policy_id)

        unsubscribe = store.subscribe(callback)
        await store.open()
        await eventually(lambda: store.listening, what="listener up")
        await store.add_version(doc(), entry())
        await eventually(lambda: seen == ["demo"], what="async callback")
        unsubscribe()
        await store.add_version(doc(), entry())
        await asyncio.sleep(0.3)
        assert seen == ["demo"]

    async def test_change_before_the_listener_is_up_is_announced(self, stores: Stores) -> None:
        store, other = stores(), stores()
        seen: list[str | None] = []
        store.subscribe(seen.append)
        await store.open()
        await other.add_version(doc(), entry())  # may commit before the listener's LISTEN
        await eventually(lambda: bool(seen), what="announcement")  # "demo", or None if it beat the LISTEN
        assert set(seen) <= {"demo", None}

    async def test_poll_catches_a_change_without_notification(self, stores: Stores, server: str,
                                                               schema: str) -> None:
        store = stores()
        seen: list[str | None] = []
        store.subscribe(seen.append)
        await store.open()
        await eventually(lambda: store.listening, what="listener up")
        before = await store.version_token()
        sql(server, f"UPDATE {schema}.store_state SET change_seq = change_seq + 1")  # a writer that never NOTIFYs
        await eventually(lambda: None in seen, what="poll fallback")
        assert await store.version_token() != before

    async def test_registry_on_another_replica_follows_a_promotion(self, stores: Stores) -> None:
        writer = PolicyRegistry(stores(), cache_ttl=60.0)
        reader_store = stores()
        reader = PolicyRegistry(reader_store, cache_ttl=60.0)  # its own poll would be too slow: only the push
        reader_store.subscribe(reader.invalidate)
        await writer.create_policy({"id": "demo", "spec": {"text": "Version one."}}, actor="ops")
        await reader_store.open()
        await eventually(lambda: reader_store.listening, what="listener up")
        assert (await reader.resolve("demo")).version == 1
        v2 = await writer.publish("demo", {"spec": {"text": "Version two."}}, actor="ops")
        await writer.set_alias("demo", "stable", v2.version, actor="ops")

        async def served() -> bool:
            return (await reader.resolve("demo")).version == 2

        took = await eventually(served, deadline=5.0, what="promotion on the other replica")
        assert took < 5.0


class TestOutage:
    async def test_outage_and_recovery(self, stores: Stores, server: str, proxy: TcpProxy) -> None:
        store = stores(via(proxy, stores.url))
        other = stores()
        seen: list[str | None] = []
        store.subscribe(seen.append)
        await store.add_version(doc(), entry())
        await eventually(lambda: store.listening, what="listener up")
        token = await store.version_token()
        await store.add_version(doc(), entry())  # committed after the caller's last poll of the token...

        proxy.down()
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="PostgreSQL policy store at 127.0.0.1"):
            await store.ping()
        assert time.monotonic() - start < 1.5
        with pytest.raises(StoreUnavailable):
            await store.add_version(doc(), entry())
        await eventually(lambda: not store.listening, what="listener notices")
        start = time.monotonic()
        assert await store.version_token() == token  # ...not reported while nothing can be fetched; at once
        assert time.monotonic() - start < 0.1

        await other.add_version(doc(text="while down"), entry())  # a change this replica misses
        seen.clear()
        proxy.up()

        async def healthy() -> bool:
            try:
                await store.ping()
            except StoreUnavailable:
                return False
            return True

        await eventually(healthy, deadline=15.0, what="ping after recovery")
        await eventually(lambda: store.listening and None in seen, deadline=15.0, what="catch-up invalidation")
        assert await store.version_token() != token
        stored = await store.add_version(doc(text="after"), entry())
        assert stored.version == 4

    async def test_black_holed_database_fails_ping_fast(self, stores: Stores, proxy: TcpProxy) -> None:
        store = stores(via(proxy, stores.url))
        await store.open()
        proxy.hang()
        start = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert time.monotonic() - start < 1.5
        proxy.up()

    async def test_database_down_at_start(self, stores: Stores, proxy: TcpProxy) -> None:
        proxy.down()
        store = stores(via(proxy, stores.url))
        with pytest.raises(StoreUnavailable):
            await store.open()
        with pytest.raises(StoreUnavailable):
            await store.version_token()
        proxy.up()
        await store.open()
        assert await store.list_policies() == []

    async def test_corrupt_document_is_a_store_failure(self, stores: Stores, server: str, schema: str) -> None:
        store = stores()
        await store.add_version(doc(), entry())
        edit = "jsonb_set(document, '{spec,text}', '\"edited\"')"  # content changed, checksum not
        sql(server, f"UPDATE {schema}.policy_versions SET document = {edit}")
        with pytest.raises(StoreUnavailable, match="corrupt policy document"):
            await store.get_version("demo", 1)

    async def test_closed_store_refuses(self, stores: Stores) -> None:
        store = stores()
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(StoreUnavailable, match="closed"):
            await store.get_head("demo")


async def test_documents_round_trip_through_jsonb(stores: Stores) -> None:
    """jsonb reorders keys and normalises numbers: checksums must still verify on the way back."""
    original = PolicyDocument.from_draft(
        PolicyDraft.model_validate({"id": "demo", "threshold": 1.0, "spec": {"text": "é ü 漢字", "categories": [
            {"id": "weapons", "name": "Weapons", "description": "Making weapons.", "stance": "disallowed",
             "severity": "high", "examples": [{"prompt": "p", "response": "r", "expected": "violate"}]}]}}),
        policy_id="demo", version=1, parent_version=None, created_by="t", created_at=AT,
    )
    store = stores()
    await store.add_version(original, AuditEntry(actor="t", action="publish", policy_id="demo", at=AT))
    assert await store.get_version("demo", 1) == original
    assert await stores().list_versions("demo") == [original]
