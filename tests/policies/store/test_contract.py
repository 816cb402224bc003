"""The `PolicyStore` contract, run against every backend in `conftest.STORE_BACKENDS`."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from policies.errors import PolicyNotFound, VersionConflict, VersionInUse
from policies.store.base import AuditEntry, PolicyStore
from tests.policies.helpers import doc, entry
from tests.policies.store.conftest import Opener


async def _seed(store: PolicyStore, n: int = 1, policy_id: str = "demo") -> None:
    for i in range(n):
        await store.add_version(doc(policy_id, f"text {i}"), entry(policy_id=policy_id),
                                set_aliases=("stable",) if i == 0 else ())


class TestReads:
    async def test_empty_store_returns_none_and_empties(self, store: PolicyStore) -> None:
        assert await store.list_policies() == []
        assert await store.get_head("demo") is None
        assert await store.get_version("demo", 1) is None
        assert await store.list_versions("demo") == []
        assert await store.list_audit("demo") == []

    async def test_ping_and_close(self, store: PolicyStore) -> None:
        await store.ping()
        await store.close()

    async def test_list_policies_is_sorted(self, store: PolicyStore) -> None:
        for pid in ("zeta", "alpha", "mid"):
            await _seed(store, 1, pid)
        assert await store.list_policies() == ["alpha", "mid", "zeta"]


class TestAddVersion:
    async def test_assigns_consecutive_versions_and_parents(self, store: PolicyStore) -> None:
        stored = [await store.add_version(doc(text=f"t{i}", version=99), entry()) for i in range(3)]
        assert [d.version for d in stored] == [1, 2, 3]
        assert [d.parent_version for d in stored] == [None, 1, 2]
        assert await store.list_versions("demo") == stored
        assert await store.get_version("demo", 2) == stored[1]
        head = await store.get_head("demo")
        assert head is not None and head.latest_version == 3

    async def test_round_trip_keeps_content_and_checksum(self, store: PolicyStore) -> None:
        original = doc(text="round trip ✓")
        stored = await store.add_version(original, entry())
        again = await store.get_version("demo", 1)
        assert again == stored
        assert again.checksum == original.checksum and again.spec == original.spec
        assert again.metadata == original.metadata

    async def test_fills_audit_version_and_to(self, store: PolicyStore) -> None:
        await _seed(store, 2)
        audit = await store.list_audit("demo")
        assert [(e.version, e.to) for e in audit] == [(1, 1), (2, 2)]

    async def test_sets_aliases_in_the_same_step(self, store: PolicyStore) -> None:
        await store.add_version(doc(), entry(), set_aliases=("stable", "canary"))
        head = await store.get_head("demo")
        assert head is not None and dict(head.aliases) == {"stable": 1, "canary": 1}

    async def test_expected_latest(self, store: PolicyStore) -> None:
        await store.add_version(doc(), entry(), expected_latest=0)
        with pytest.raises(VersionConflict):
            await store.add_version(doc(), entry(), expected_latest=0)
        with pytest.raises(VersionConflict):
            await store.add_version(doc(), entry(), expected_latest=5)
        assert (await store.add_version(doc(), entry(), expected_latest=1)).version == 2
        assert len(await store.list_audit("demo")) == 2  # refused calls wrote nothing
        assert len(await store.list_versions("demo")) == 2

    async def test_idempotency_key_returns_the_earlier_result(self, store: PolicyStore) -> None:
        first = await store.add_version(doc(text="a"), entry(), idempotency_key="k1")
        await store.add_version(doc(text="b"), entry())
        again = await store.add_version(doc(text="a"), entry(), idempotency_key="k1", expected_latest=0)
        assert again == first
        assert len(await store.list_audit("demo")) == 2
        assert (await store.add_version(doc(text="c"), entry(), idempotency_key="k2")).version == 3

    async def test_idempotency_keys_are_per_policy(self, store: PolicyStore) -> None:
        a = await store.add_version(doc("alpha"), entry(policy_id="alpha"), idempotency_key="k")
        b = await store.add_version(doc("beta"), entry(policy_id="beta"), idempotency_key="k")
        assert (a.id, b.id) == ("alpha", "beta")


class TestAliases:
    async def test_set_alias_check_and_set(self, store: PolicyStore) -> None:
        await _seed(store, 3)
        await store.set_alias("demo", "stable", 2, entry("set_alias"), expected_version=1)
        with pytest.raises(VersionConflict):
            await store.set_alias("demo", "stable", 3, entry("set_alias"), expected_version=1)
        await store.set_alias("demo", "canary", 3, entry("set_alias"), expected_version=0)
        with pytest.raises(VersionConflict):
            await store.set_alias("demo", "canary", 3, entry("set_alias"), expected_version=0)
        await store.set_alias("demo", "canary", 1, entry("set_alias"))
        head = await store.get_head("demo")
        assert head is not None and dict(head.aliases) == {"stable": 2, "canary": 1}
        assert len(await store.list_audit("demo")) == 3 + 3

    async def test_set_alias_refuses_missing_or_archived_targets(self, store: PolicyStore) -> None:
        await _seed(store, 2)
        with pytest.raises(VersionConflict):
            await store.set_alias("demo", "stable", 7, entry("set_alias"))
        await store.set_archived("demo", 2, True, entry("archive"))
        with pytest.raises(VersionConflict):
            await store.set_alias("demo", "canary", 2, entry("set_alias"))
        with pytest.raises(PolicyNotFound):
            await store.set_alias("nope", "stable", 1, entry("set_alias", policy_id="nope"))
        assert len(await store.list_audit("demo")) == 3

    async def test_delete_alias(self, store: PolicyStore) -> None:
        await _seed(store, 1)
        with pytest.raises(VersionConflict):
            await store.delete_alias("demo", "stable", entry("delete_alias"), expected_version=9)
        assert await store.delete_alias("demo", "stable", entry("delete_alias"), expected_version=1) is True
        assert await store.delete_alias("demo", "stable", entry("delete_alias")) is False
        head = await store.get_head("demo")
        assert head is not None and dict(head.aliases) == {}
        assert [e.action for e in await store.list_audit("demo")] == ["publish", "delete_alias"]

    async def test_canary_weight(self, store: PolicyStore) -> None:
        await _seed(store, 1)
        await store.set_canary_weight("demo", 0.25, entry("set_canary_weight", from_=0.0, to=0.25))
        head = await store.get_head("demo")
        assert head is not None and head.canary_weight == 0.25
        with pytest.raises(PolicyNotFound):
            await store.set_canary_weight("nope", 0.5, entry("set_canary_weight", policy_id="nope"))


class TestArchive:
    async def test_archive_refused_while_aliased(self, store: PolicyStore) -> None:
        await _seed(store, 2)
        with pytest.raises(VersionInUse):
            await store.set_archived("demo", 1, True, entry("archive"))
        await store.set_archived("demo", 2, True, entry("archive"))
        head = await store.get_head("demo")
        assert head is not None and head.archived == frozenset({2})
        assert await store.get_version("demo", 2) is not None  # archived versions stay readable
        await store.set_archived("demo", 2, False, entry("unarchive"))
        head = await store.get_head("demo")
        assert head is not None and head.archived == frozenset()
        assert [e.action for e in await store.list_audit("demo")][2:] == ["archive", "unarchive"]

    async def test_archive_missing_version(self, store: PolicyStore) -> None:
        await _seed(store, 1)
        with pytest.raises(PolicyNotFound):
            await store.set_archived("demo", 5, True, entry("archive"))
        with pytest.raises(PolicyNotFound):
            await store.set_archived("nope", 1, True, entry("archive", policy_id="nope"))


class TestAudit:
    async def test_entries_round_trip_exactly(self, store: PolicyStore) -> None:
        await _seed(store, 2)
        written = entry("set_alias", version=2, alias="stable", from_=1, to=2, reason="promote ✓",
                        idempotency_key=None)
        await store.set_alias("demo", "stable", 2, written)
        assert (await store.list_audit("demo"))[-1] == written

    def test_entry_dict_round_trip(self) -> None:
        e = entry("set_canary_weight", alias="canary", from_=0.1, to=0.2, reason="r", idempotency_key="k")
        data = e.to_dict()
        assert data["from"] == 0.1 and "from_" not in data
        assert AuditEntry.from_dict(data) == e


class TestConcurrency:
    async def test_concurrent_publishers_get_distinct_consecutive_versions(self, store_factory: Opener) -> None:
        stores = [await store_factory() for _ in range(3)]

        async def publish(i: int) -> int:
            s = stores[i % len(stores)]
            return (await s.add_version(doc(text=f"t{i}"), entry())).version

        versions = await asyncio.gather(*(publish(i) for i in range(24)))
        assert sorted(versions) == list(range(1, 25))
        assert len(await stores[0].list_audit("demo")) == 24

    async def test_racing_check_and_set_has_one_winner(self, store_factory: Opener) -> None:
        stores = [await store_factory() for _ in range(2)]
        await _seed(stores[0], 3)

        async def promote(i: int) -> bool:
            try:
                await stores[i % 2].set_alias("demo", "stable", 2 + i % 2, entry("set_alias"), expected_version=1)
            except VersionConflict:
                return False
            return True

        results = await asyncio.gather(*(promote(i) for i in range(10)))
        assert results.count(True) == 1
        assert len(await stores[0].list_audit("demo")) == 3 + 1

    async def test_version_token_changes_on_every_mutation_only(self, store: PolicyStore) -> None:
        tokens = [await store.version_token()]
        await _seed(store, 1)
        tokens.append(await store.version_token())
        await store.list_versions("demo")
        assert await store.version_token() == tokens[-1]
        await store.set_canary_weight("demo", 0.5, entry("set_canary_weight"))
        tokens.append(await store.version_token())
        await store.set_alias("demo", "canary", 1, entry("set_alias"))
        tokens.append(await store.version_token())
        assert len(set(tokens)) == len(tokens)

    async def test_second_client_sees_first_clients_writes(self, store_factory: Opener) -> None:
        a, b = await store_factory(), await store_factory()
        token = await b.version_token()
        await _seed(a, 2)
        assert [d.version for d in await b.list_versions("demo")] == [1, 2]
        assert await b.version_token() != token

    async def test_returned_head_is_a_snapshot(self, store: PolicyStore) -> None:
        await _seed(store, 2)
        head = await store.get_head("demo")
        await store.set_alias("demo", "stable", 2, entry("set_alias"))
        assert head is not None and head.aliases["stable"] == 1
        assert dataclasses.is_dataclass(head)
