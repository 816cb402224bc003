"""`PolicyRegistry`: resolution, canary split, lifecycle verbs, refusals, audit completeness, caching, seeding."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from policies.errors import (
    AliasNotFound,
    InvalidPolicy,
    PolicyExists,
    PolicyNotFound,
    StoreUnavailable,
    VersionConflict,
    VersionInUse,
)
from policies.registry import PolicyRegistry, canary_bucket, parse_ref, seed_library
from policies.render import RenderedPolicy
from policies.schema import PolicyDocument
from policies.store.base import AuditEntry
from policies.store.file import FilePolicyStore
from policies.store.memory import InMemoryPolicyStore
from tests.policies.helpers import AT, draft


@pytest.fixture(params=["memory", "file"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> PolicyRegistry:
    store = InMemoryPolicyStore() if request.param == "memory" else FilePolicyStore(tmp_path)
    return PolicyRegistry(store, clock=lambda: AT, rng=random.Random(0))


async def _with_versions(registry: PolicyRegistry, n: int) -> None:
    await registry.create_policy(draft("v1"), actor="alice")
    for i in range(2, n + 1):
        await registry.publish("demo", draft(f"v{i}", None), actor="alice")


async def _audit_len(registry: PolicyRegistry) -> int:
    return len(await registry.audit("demo"))


async def _refused(registry: PolicyRegistry, error: type[Exception], call: Awaitable[Any]) -> None:
    """The call raises `error` and writes no audit entry."""
    before = await _audit_len(registry)
    with pytest.raises(error):
        await call
    assert await _audit_len(registry) == before


class TestParseRef:
    @pytest.mark.parametrize(
        ("ref", "parsed"),
        [("demo", ("demo", None, None)), ("demo@7", ("demo", 7, None)), ("demo:canary", ("demo", None, "canary"))],
    )
    def test_good(self, ref: str, parsed: tuple[str, int | None, str | None]) -> None:
        r = parse_ref(ref)
        assert (r.policy_id, r.version, r.alias) == parsed

    @pytest.mark.parametrize("ref", ["", "Demo", "demo@", "demo@0", "demo@x", "demo@-1", "demo:", "demo:Bad",
                                     "demo:1x", "demo:a:b", "de mo"])
    def test_bad(self, ref: str) -> None:
        with pytest.raises(InvalidPolicy):
            parse_ref(ref)


class TestLifecycle:
    async def test_create_resolves_stable_v1(self, registry: PolicyRegistry) -> None:
        created = await registry.create_policy(draft(threshold=0.7), actor="alice", reason="first")
        assert (created.version, created.parent_version, created.metadata.created_by) == (1, None, "alice")
        resolved = await registry.resolve("demo")
        assert (resolved.id, resolved.version, resolved.alias, resolved.threshold) == ("demo", 1, "stable", 0.7)
        assert resolved.checksum == created.checksum and resolved.template_id == "policy-text/1"
        assert resolved.text == "Be helpful and harmless."
        [entry] = await registry.audit("demo")
        assert (entry.actor, entry.action, entry.version, entry.alias, entry.to, entry.reason) == (
            "alice", "create", 1, "stable", 1, "first")

    async def test_publish_does_not_move_aliases(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        v2 = await registry.get("demo", 2)
        assert (v2.parent_version, v2.spec.text) == (1, "v2")
        assert (await registry.resolve("demo")).version == 1
        assert (await registry.resolve("demo@2")).alias is None
        assert (await registry.get("demo")).version == 2

    async def test_promote_and_rollback(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 3)
        await registry.set_alias("demo", "stable", 2, actor="bob")
        await registry.set_alias("demo", "stable", 3, actor="bob")
        assert (await registry.resolve("demo")).version == 3
        assert await registry.rollback("demo", actor="carol") == 2
        assert (await registry.resolve("demo")).version == 2
        assert await registry.rollback("demo", actor="carol") == 1
        await _refused(registry, VersionConflict, registry.rollback("demo", actor="carol"))
        await registry.set_alias("demo", "stable", 3, actor="bob")
        assert await registry.rollback("demo", actor="carol") == 1
        entries = [e for e in await registry.audit("demo") if e.action == "rollback"]
        assert [(e.from_, e.to, e.actor) for e in entries] == [(3, 2, "carol"), (2, 1, "carol"), (3, 1, "carol")]

    async def test_custom_alias_and_delete(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        await registry.set_alias("demo", "eu-prod", 2, actor="bob", expected_version=0)
        resolved = await registry.resolve("demo:eu-prod")
        assert (resolved.version, resolved.alias) == (2, "eu-prod")
        await registry.delete_alias("demo", "eu-prod", actor="bob")
        await _refused(registry, AliasNotFound, registry.resolve("demo:eu-prod"))
        await _refused(registry, AliasNotFound, registry.delete_alias("demo", "eu-prod", actor="bob"))
        await _refused(registry, AliasNotFound, registry.rollback("demo", actor="bob", alias="eu-prod"))

    async def test_archive(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        await _refused(registry, VersionInUse, registry.archive("demo", 1, actor="bob"))
        await registry.archive("demo", 2, actor="bob", reason="bad wording")
        await _refused(registry, PolicyNotFound, registry.resolve("demo@2"))
        await _refused(registry, PolicyNotFound, registry.set_alias("demo", "canary", 2, actor="bob"))
        assert (await registry.get("demo", 2)).version == 2  # still readable
        rows = await registry.versions("demo")
        assert [(r.version, r.archived, r.aliases) for r in rows] == [(1, False, ("stable",)), (2, True, ())]
        await registry.unarchive("demo", 2, actor="bob")
        assert (await registry.resolve("demo@2")).version == 2
        await _refused(registry, PolicyNotFound, registry.archive("demo", 9, actor="bob"))

    async def test_rollback_to_archived_target_is_refused(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        await registry.set_alias("demo", "stable", 2, actor="bob")
        await registry.archive("demo", 1, actor="bob")
        await _refused(registry, VersionConflict, registry.rollback("demo", actor="bob"))

    async def test_list_and_versions(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        await registry.create_policy(draft(policy_id="another"), actor="alice")
        rows = await registry.list_policies()
        assert [(r.id, r.latest_version, dict(r.aliases)) for r in rows] == [
            ("another", 1, {"stable": 1}), ("demo", 2, {"stable": 1})]
        assert [v.created_by for v in await registry.versions("demo")] == ["alice", "alice"]

    async def test_diff(self, registry: PolicyRegistry) -> None:
        cat = {"id": "fraud", "name": "Fraud", "description": "Scams.", "stance": "disallowed", "severity": "low"}
        await registry.create_policy({"id": "demo", "spec": {"text": "a\nb", "categories": [cat]}}, actor="a")
        changed = {**cat, "severity": "high"}
        new_cat = {**cat, "id": "spam", "name": "Spam"}
        await registry.publish("demo", {"spec": {"text": "a\nc", "categories": [changed, new_cat]},
                                        "threshold": 0.6}, actor="a")
        d = await registry.diff("demo", 1, 2)
        assert d["changed_fields"] == ["threshold", "spec.text", "spec.categories"]
        assert d["categories"] == {"added": ["spam"], "removed": [], "changed": {"fraud": ["severity"]}}
        assert "-b\n+c\n" in d["text_diff"] and "+- Spam (low): Scams." in d["rendered_diff"]
        assert not d["same_content"] and (await registry.diff("demo", 1, 1))["same_content"]
        await _refused(registry, PolicyNotFound, registry.diff("demo", 1, 3))


class TestRefusals:
    async def test_unknown_policy(self, registry: PolicyRegistry) -> None:
        for call in (registry.resolve("nope"), registry.get("nope"), registry.audit("nope"),
                     registry.versions("nope"), registry.publish("nope", draft(policy_id=None), actor="a"),
                     registry.set_alias("nope", "stable", 1, actor="a"), registry.rollback("nope", actor="a"),
                     registry.set_canary_weight("nope", 0.1, actor="a"), registry.archive("nope", 1, actor="a")):
            with pytest.raises(PolicyNotFound):
                await call

    async def test_create_existing(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        await _refused(registry, PolicyExists, registry.create_policy(draft(), actor="a"))

    async def test_invalid_documents_list_errors(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        with pytest.raises(InvalidPolicy) as info:
            await registry.publish("demo", {"spec": {}, "threshold": 3}, actor="a")
        assert {tuple(e["loc"]) for e in info.value.details} == {("spec",), ("threshold",)}
        await _refused(registry, InvalidPolicy, registry.publish("demo", draft(policy_id="other"), actor="a"))
        await _refused(registry, InvalidPolicy, registry.create_policy(draft(policy_id=None), actor="a"))
        await _refused(registry, InvalidPolicy, registry.set_alias("demo", "Bad Alias", 1, actor="a"))
        await _refused(registry, InvalidPolicy, registry.set_canary_weight("demo", 1.5, actor="a"))
        await _refused(registry, PolicyNotFound, registry.set_alias("demo", "stable", 5, actor="a"))
        await _refused(registry, AliasNotFound, registry.resolve("demo:canary"))
        await _refused(registry, PolicyNotFound, registry.resolve("demo@2"))

    async def test_unqualified_without_stable(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        await registry.delete_alias("demo", "stable", actor="a")
        with pytest.raises(AliasNotFound):
            await registry.resolve("demo")

    async def test_validate_hook_refusal_writes_nothing(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        seen: list[tuple[PolicyDocument, RenderedPolicy]] = []

        async def over_budget(doc: PolicyDocument, rendered: RenderedPolicy) -> None:
            seen.append((doc, rendered))
            raise InvalidPolicy("policy too long", details={"tokens": 300, "budget": 256})

        await _refused(registry, InvalidPolicy,
                       registry.publish("demo", draft("v2", None), actor="a", validate=over_budget))
        assert [d.version for d in await registry.store.list_versions("demo")] == [1]
        assert seen[0][0].version == 2 and seen[0][1].text == "v2"

        async def ok(doc: PolicyDocument, rendered: RenderedPolicy) -> None:
            return None

        assert (await registry.publish("demo", draft("v2", None), actor="a", validate=ok)).version == 2


class TestConcurrencyAndIdempotency:
    async def test_expected_latest(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        await _refused(registry, VersionConflict,
                       registry.publish("demo", draft("v3", None), actor="a", expected_latest=1))
        assert (await registry.publish("demo", draft("v3", None), actor="a", expected_latest=2)).version == 3

    async def test_expected_alias_version(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 3)
        await registry.set_alias("demo", "stable", 2, actor="a", expected_version=1)
        await _refused(registry, VersionConflict,
                       registry.set_alias("demo", "stable", 3, actor="a", expected_version=1))
        await _refused(registry, VersionConflict,
                       registry.delete_alias("demo", "stable", actor="a", expected_version=1))

    async def test_concurrent_publishes_with_the_same_expectation_have_one_winner(
        self, registry: PolicyRegistry
    ) -> None:
        await _with_versions(registry, 1)
        calls = [registry.publish("demo", draft(f"r{i}", None), actor="a", expected_latest=1) for i in range(8)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(r, PolicyDocument) for r in results) == 1
        assert all(isinstance(r, (PolicyDocument, VersionConflict)) for r in results)
        assert await _audit_len(registry) == 2

    async def test_publish_idempotency(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        first = await registry.publish("demo", draft("v2", None), actor="a", idempotency_key="req-1")
        await registry.publish("demo", draft("v3", None), actor="a")
        again = await registry.publish("demo", draft("v2", None), actor="a", idempotency_key="req-1",
                                       expected_latest=1)
        assert again == first and await _audit_len(registry) == 3
        await _refused(registry, VersionConflict,
                       registry.publish("demo", draft("other", None), actor="a", idempotency_key="req-1"))

    async def test_concurrent_retries_with_one_key_create_one_version(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 1)
        calls = [registry.publish("demo", draft("v2", None), actor="a", idempotency_key="k") for _ in range(6)]
        results = await asyncio.gather(*calls)
        assert {r.version for r in results} == {2} and await _audit_len(registry) == 2

    async def test_create_idempotency(self, registry: PolicyRegistry) -> None:
        first = await registry.create_policy(draft(), actor="a", idempotency_key="c1")
        assert await registry.create_policy(draft(), actor="a", idempotency_key="c1") == first
        assert await _audit_len(registry) == 1


class TestAuditCompleteness:
    async def test_one_entry_per_mutation(self, registry: PolicyRegistry) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("create", lambda: registry.create_policy(draft(), actor="u1")),
            ("publish", lambda: registry.publish("demo", draft("v2", None), actor="u2")),
            ("publish", lambda: registry.publish("demo", draft("v3", None), actor="u2")),
            ("set_alias", lambda: registry.set_alias("demo", "canary", 2, actor="u3")),
            ("set_canary_weight", lambda: registry.set_canary_weight("demo", 0.2, actor="u3")),
            ("set_alias", lambda: registry.set_alias("demo", "stable", 2, actor="u3")),
            ("rollback", lambda: registry.rollback("demo", actor="u4")),
            ("delete_alias", lambda: registry.delete_alias("demo", "canary", actor="u3")),
            ("archive", lambda: registry.archive("demo", 3, actor="u5")),
            ("unarchive", lambda: registry.unarchive("demo", 3, actor="u5")),
        ]
        for i, (_, step) in enumerate(steps, start=1):
            await step()
            assert await _audit_len(registry) == i
        entries = await registry.audit("demo")
        assert [e.action for e in entries] == [name for name, _ in steps]
        assert all(e.policy_id == "demo" and e.at == AT for e in entries)
        weight = entries[4]
        assert (weight.from_, weight.to) == (0.0, 0.2)
        assert (entries[5].from_, entries[5].to) == (1, 2)
        assert (entries[7].from_, entries[7].to) == (2, None)


class TestCanary:
    async def _canary(self, registry: PolicyRegistry, weight: float) -> None:
        await _with_versions(registry, 2)
        await registry.set_alias("demo", "canary", 2, actor="a")
        await registry.set_canary_weight("demo", weight, actor="a")

    @pytest.mark.parametrize("weight", [0.1, 0.5])
    async def test_proportion_over_10000_request_ids(self, weight: float) -> None:
        registry = PolicyRegistry(InMemoryPolicyStore())
        await self._canary(registry, weight)
        n = 10_000
        hits = 0
        for i in range(n):
            resolved = await registry.resolve("demo", request_id=f"req-{i}")
            hits += resolved.alias == "canary"
            assert resolved.version == (2 if resolved.alias == "canary" else 1)
        assert abs(hits / n - weight) < 4 * math.sqrt(weight * (1 - weight) / n)

    async def test_deterministic_per_request_id(self, registry: PolicyRegistry) -> None:
        await self._canary(registry, 0.5)
        first = [(await registry.resolve("demo", request_id=f"r{i}")).alias for i in range(200)]
        second = [(await registry.resolve("demo", request_id=f"r{i}")).alias for i in range(200)]
        assert first == second and {"stable", "canary"} == set(first)
        assert all((a == "canary") == (canary_bucket("demo", f"r{i}") < 0.5) for i, a in enumerate(first))

    async def test_random_without_request_id(self) -> None:
        registry = PolicyRegistry(InMemoryPolicyStore(), rng=random.Random(7))
        await self._canary(registry, 0.3)
        hits = sum([(await registry.resolve("demo")).alias == "canary" for _ in range(4000)])
        assert abs(hits / 4000 - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)

    async def test_qualified_refs_ignore_the_split(self, registry: PolicyRegistry) -> None:
        await self._canary(registry, 1.0)
        assert (await registry.resolve("demo", request_id="x")).alias == "canary"
        assert (await registry.resolve("demo:stable", request_id="x")).version == 1
        assert (await registry.resolve("demo@1", request_id="x")).version == 1

    async def test_weight_without_canary_alias_routes_to_stable(self, registry: PolicyRegistry) -> None:
        await self._canary(registry, 1.0)
        await registry.delete_alias("demo", "canary", actor="a")
        assert (await registry.resolve("demo", request_id="x")).alias == "stable"


class TestCache:
    async def test_resolve_is_served_from_cache(self, tmp_path: Path) -> None:
        store = InMemoryPolicyStore()
        registry = PolicyRegistry(store, cache_ttl=3600)
        await _with_versions(registry, 1)
        calls = 0
        original = store.get_head

        async def counting(policy_id: str) -> Any:
            nonlocal calls
            calls += 1
            return await original(policy_id)

        store.get_head = counting  # type: ignore[method-assign]
        for _ in range(50):
            await registry.resolve("demo")
        assert calls <= 1

    async def test_local_mutations_are_visible_immediately(self, registry: PolicyRegistry) -> None:
        await _with_versions(registry, 2)
        assert (await registry.resolve("demo")).version == 1
        await registry.set_alias("demo", "stable", 2, actor="a")
        assert (await registry.resolve("demo")).version == 2

    async def test_other_writers_seen_after_invalidate_or_ttl(self, tmp_path: Path) -> None:
        writer = PolicyRegistry(FilePolicyStore(tmp_path))
        await _with_versions(writer, 2)
        cached = PolicyRegistry(FilePolicyStore(tmp_path), cache_ttl=3600)
        polling = PolicyRegistry(FilePolicyStore(tmp_path), cache_ttl=0)
        assert (await cached.resolve("demo")).version == (await polling.resolve("demo")).version == 1
        await writer.set_alias("demo", "stable", 2, actor="a")
        assert (await polling.resolve("demo")).version == 2
        assert (await cached.resolve("demo")).version == 1
        cached.invalidate("demo")
        assert (await cached.resolve("demo")).version == 2


class _FailingStore(InMemoryPolicyStore):
    """An in-memory store whose reads fail with `StoreUnavailable` while `down` is set."""

    down = False

    async def get_head(self, policy_id: str) -> Any:
        if self.down:
            raise StoreUnavailable("database unreachable")
        return await super().get_head(policy_id)

    async def version_token(self) -> str:
        if self.down:
            raise StoreUnavailable("database unreachable")
        return await super().version_token()


async def test_store_outage_serves_last_known_state() -> None:
    store = _FailingStore()
    registry = PolicyRegistry(store, cache_ttl=0)
    await _with_versions(registry, 2)
    assert (await registry.resolve("demo")).version == 1
    store.down = True
    registry.invalidate()  # e.g. a change notice that arrived just before the outage
    assert (await registry.resolve("demo")).version == 1
    assert (await registry.resolve("demo@2")).version == 2
    with pytest.raises(StoreUnavailable):
        await registry.resolve("never-read")
    store.down = False
    await registry.set_alias("demo", "stable", 2, actor="a")
    assert (await registry.resolve("demo")).version == 2


class _PushingStore(InMemoryPolicyStore):
    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable[[str | None], None]] = []

    def subscribe(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)


async def test_registry_subscribes_to_pushed_changes() -> None:
    store = _PushingStore()
    writer = PolicyRegistry(store)
    await _with_versions(writer, 2)
    reader = PolicyRegistry(store, cache_ttl=3600)
    assert (await reader.resolve("demo")).version == 1
    await store.set_alias("demo", "stable", 2, AuditEntry("x", "set_alias", "demo", AT))  # behind its back
    assert (await reader.resolve("demo")).version == 1
    for callback in list(store.callbacks):
        callback("demo")
    assert (await reader.resolve("demo")).version == 2
    reader.close()
    writer.close()
    assert store.callbacks == []


class TestSeedLibrary:
    async def test_seeds_once(self, registry: PolicyRegistry) -> None:
        created = await seed_library(registry)
        assert created == ["general-safety", "kids-education", "mature-fiction"]
        for pid in created:
            resolved = await registry.resolve(pid)
            assert (resolved.version, resolved.alias) == (1, "stable")
            [entry] = await registry.audit(pid)
            assert (entry.actor, entry.action) == ("system", "create")
        assert await seed_library(registry) == []

    async def test_existing_policies_are_left_alone(self, registry: PolicyRegistry) -> None:
        await registry.create_policy(draft("custom", "general-safety"), actor="ops")
        assert "general-safety" not in await seed_library(registry)
        assert (await registry.resolve("general-safety")).text == "custom"

    async def test_bad_library_document(self, registry: PolicyRegistry, tmp_path: Path) -> None:
        (tmp_path / "wrong-name.json").write_text('{"id": "other", "spec": {"text": "t"}}')
        with pytest.raises(InvalidPolicy):
            await seed_library(registry, tmp_path)
