"""`PolicyRegistry`: the rules of the policy lifecycle on top of a `PolicyStore`.

- References: `id` (alias `stable`, subject to the canary split), `id@N` (a version), `id:alias`.
- Canary split: a per-policy weight `w` sends that share of *unqualified* references to the `canary` alias (when it
  exists). With a `request_id` the choice is deterministic: canary iff
  `int(sha256(policy_id + "\\0" + request_id)[:8 bytes]) / 2**64 < w`; without one it is random.
- Versions are immutable and numbered 1, 2, ... by the store; `publish` sets `parent_version` to the latest.
- Every successful mutation writes exactly one audit entry in the same atomic store call; a refused one writes none.
- Archived versions stay readable (`get`, `versions`, `diff`) but `resolve` refuses them and no alias may point at
  them; archiving is refused (`VersionInUse`) while an alias points at the version.
- Rollback moves an alias back to the target it had before its current one, replaying the alias's audit history
  as a stack (set pushes, rollback pops, delete clears), so repeated rollbacks walk further back.
- Resolution is cached: version texts forever (they are immutable), policy heads (aliases, canary weight,
  archived set) until a local mutation, an `invalidate()` call, or a change of `store.version_token()`, which is
  polled at most every `cache_ttl` seconds. A store with the optional `subscribe(callback) -> unsubscribe`
  capability (the postgres store's LISTEN/NOTIFY) gets `invalidate` subscribed at construction; `close()` undoes it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from policies.errors import (
    AliasNotFound,
    InvalidPolicy,
    PolicyExists,
    PolicyNotFound,
    StoreUnavailable,
    VersionConflict,
)
from policies.render import RenderedPolicy, render_policy
from policies.schema import POLICY_ID_PATTERN, PolicyDocument, PolicyDraft, compute_checksum
from policies.store.base import AuditAction, AuditEntry, PolicyHead

if TYPE_CHECKING:
    from policies.store.base import PolicyStore

__all__ = [
    "ALIAS_PATTERN",
    "CANARY",
    "STABLE",
    "PolicyRef",
    "PolicyRegistry",
    "PolicySummary",
    "ResolvedPolicy",
    "Validator",
    "VersionSummary",
    "canary_bucket",
    "diff_documents",
    "load_library",
    "seed_library",
    "parse_draft",
    "parse_ref",
]

STABLE = "stable"
CANARY = "canary"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"

Validator = Callable[[PolicyDocument, RenderedPolicy], Awaitable[None]]
"""Publish hook (token budget, golden-example gate): raise `InvalidPolicy` to refuse; nothing is written then."""

_ID_RE = re.compile(POLICY_ID_PATTERN)
_ALIAS_RE = re.compile(ALIAS_PATTERN)
_MAX_CACHED_VERSIONS = 4096


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """What scoring needs from a policy reference; every score echoes id, version, alias and checksum."""

    id: str
    version: int
    alias: str | None
    checksum: str
    text: str
    threshold: float
    template_id: str


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A parsed reference: exactly one of `version` / `alias`, or neither (unqualified)."""

    policy_id: str
    version: int | None = None
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """One row of `PolicyRegistry.list_policies`."""

    id: str
    latest_version: int
    aliases: Mapping[str, int]
    canary_weight: float


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One row of `PolicyRegistry.versions`."""

    version: int
    checksum: str
    parent_version: int | None
    created_by: str | None
    created_at: datetime | None
    change_note: str | None
    archived: bool
    aliases: tuple[str, ...]


def parse_ref(ref: str) -> PolicyRef:
    """Parse `id`, `id@N` or `id:alias`.

    Raises:
        InvalidPolicy: malformed reference.
    """
    policy_id, alias, version = ref, None, None
    if "@" in ref:
        policy_id, _, number = ref.partition("@")
        if not number.isdigit() or int(number) < 1:
            raise InvalidPolicy(f"bad policy reference {ref!r}: version must be a positive integer")
        version = int(number)
    elif ":" in ref:
        policy_id, _, alias = ref.partition(":")
        if not _ALIAS_RE.match(alias):
            raise InvalidPolicy(f"bad policy reference {ref!r}: alias must match {ALIAS_PATTERN}")
    if not _ID_RE.match(policy_id):
        raise InvalidPolicy(f"bad policy reference {ref!r}: id must match {POLICY_ID_PATTERN}")
    return PolicyRef(policy_id, version, alias)


def canary_bucket(policy_id: str, request_id: str) -> float:
    """Deterministic point in [0, 1) for a request; canary iff it is below the weight."""
    digest = hashlib.sha256(f"{policy_id}\0{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_draft(data: Mapping[str, Any] | PolicyDraft) -> PolicyDraft:
    """Validate a publisher's document.

    Raises:
        InvalidPolicy: with `details` = pydantic's error list (loc, msg, type), JSON-safe, for a 422.
    """
    if isinstance(data, PolicyDraft):
        return data
    try:
        return PolicyDraft.model_validate(data)
    except ValidationError as exc:
        raise InvalidPolicy("invalid policy document", details=json.loads(exc.json(include_url=False))) from exc


def _check_alias_name(alias: str) -> None:
    if not _ALIAS_RE.match(alias):
        raise InvalidPolicy(f"bad alias {alias!r}: must match {ALIAS_PATTERN}")


class PolicyRegistry:
    """Resolves references and applies lifecycle verbs; the only code that owns the policy rules."""

    def __init__(
        self,
        store: PolicyStore,
        *,
        cache_ttl: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Args:
        store: Where versions, aliases and audit live.
        cache_ttl: Seconds between polls of `store.version_token()`; 0 polls on every resolve.
        clock: Source of audit and `created_at` times (UTC); for tests.
        rng: Random source for the canary split of requests without a request id.
        """
        self._store = store
        self._ttl = cache_ttl
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._heads: dict[str, PolicyHead] = {}
        self._last_known: dict[str, PolicyHead] = {}  # survives invalidation; served while the store is down
        self._versions: dict[tuple[str, int], ResolvedPolicy] = {}
        self._generation = 0
        self._token: str | None = None
        self._polled_at = float("-inf")
        subscribe = getattr(store, "subscribe", None)  # optional push capability (PostgresPolicyStore)
        self._unsubscribe: Callable[[], None] | None = subscribe(self.invalidate) if callable(subscribe) else None

    def close(self) -> None:
        """Stop receiving the store's change notifications (the store itself is the caller's to close)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def store(self) -> PolicyStore:
        """The backing store."""
        return self._store

    @property
    def has_known_state(self) -> bool:
        """True once any policy head was read from the store, i.e. resolution can go on through an outage."""
        return bool(self._last_known)

    # -- cache -------------------------------------------------------------------------------------------------

    def invalidate(self, policy_id: str | None = None) -> None:
        """Forget cached heads (aliases, weights, archive state) of one policy, or all. Safe from any task.

        The last head read from the store is kept aside: while the store is unavailable, `head` serves it rather
        than failing, so scoring goes on from the last known state through an outage.
        """
        self._generation += 1
        if policy_id is None:
            self._heads.clear()
        else:
            self._heads.pop(policy_id, None)

    async def _poll(self) -> None:
        now = time.monotonic()
        if now - self._polled_at < self._ttl:
            return
        self._polled_at = now
        token = await self._store.version_token()
        if token != self._token:
            self._token = token
            self.invalidate()

    async def head(self, policy_id: str) -> PolicyHead:
        """Current aliases, canary weight, archived set and latest version (cached).

        While the store is unavailable, the cached head, or else the last head ever read, is served.

        Raises:
            PolicyNotFound: no such policy.
            StoreUnavailable: the store is down and this policy was never read from it.
        """
        try:
            await self._poll()
        except StoreUnavailable:
            pass  # the cached state stays in force until the store answers again
        cached = self._heads.get(policy_id)
        if cached is not None:
            return cached
        generation = self._generation
        try:
            head = await self._store.get_head(policy_id)
        except StoreUnavailable:
            if policy_id in self._last_known:
                return self._last_known[policy_id]
            raise
        if head is None:
            raise PolicyNotFound(f"no policy {policy_id!r}")
        self._last_known[policy_id] = head
        if generation == self._generation:
            self._heads[policy_id] = head
        return head

    async def _resolved_version(self, policy_id: str, version: int) -> ResolvedPolicy:
        key = (policy_id, version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        doc = await self.get(policy_id, version)
        rendered = render_policy(doc)
        resolved = ResolvedPolicy(doc.id, doc.version, None, doc.checksum, rendered.text, doc.threshold,
                                  rendered.template_id)
        if len(self._versions) >= _MAX_CACHED_VERSIONS:
            self._versions.pop(next(iter(self._versions)))
        self._versions[key] = resolved
        return resolved

    # -- reads -------------------------------------------------------------------------------------------------

    async def resolve(self, ref: str, request_id: str | None = None) -> ResolvedPolicy:
        """Resolve `id`, `id@N` or `id:alias` to the text and threshold to score with.

        Raises:
            InvalidPolicy: malformed reference.
            PolicyNotFound: no such policy, or the version does not exist or is archived.
            AliasNotFound: the alias (or `stable`, for an unqualified id) does not exist.
        """
        parsed = parse_ref(ref)
        head = await self.head(parsed.policy_id)
        alias = parsed.alias
        if parsed.version is not None:
            version = parsed.version
            if not 1 <= version <= head.latest_version or version in head.archived:
                state = "is archived" if version in head.archived else "does not exist"
                raise PolicyNotFound(f"policy {parsed.policy_id!r} version {version} {state}")
        else:
            alias = alias or self._route(head, request_id)
            if alias not in head.aliases:
                raise AliasNotFound(f"policy {parsed.policy_id!r} has no alias {alias!r}")
            version = head.aliases[alias]
        resolved = await self._resolved_version(parsed.policy_id, version)
        return dataclasses.replace(resolved, alias=alias)

    def _route(self, head: PolicyHead, request_id: str | None) -> str:
        weight = head.canary_weight
        if weight <= 0.0 or CANARY not in head.aliases:
            return STABLE
        point = self._rng.random() if request_id is None else canary_bucket(head.policy_id, request_id)
        return CANARY if point < weight else STABLE

    async def get(self, policy_id: str, version: int | None = None) -> PolicyDocument:
        """One version (the latest when `version` is None), archived ones included.

        Raises:
            PolicyNotFound: no such policy or version.
        """
        if version is None:
            version = (await self._fresh_head(policy_id)).latest_version
        doc = await self._store.get_version(policy_id, version)
        if doc is None:
            raise PolicyNotFound(f"policy {policy_id!r} has no version {version}")
        return doc

    async def list_policies(self) -> list[PolicySummary]:
        """Every policy with its latest version, aliases and canary weight, sorted by id."""
        rows = []
        for policy_id in await self._store.list_policies():
            head = await self._store.get_head(policy_id)
            if head is not None:
                rows.append(PolicySummary(policy_id, head.latest_version, dict(head.aliases), head.canary_weight))
        return rows

    async def versions(self, policy_id: str) -> list[VersionSummary]:
        """Every version, ascending, with archive state and the aliases pointing at it.

        Raises:
            PolicyNotFound: no such policy.
        """
        head = await self._fresh_head(policy_id)
        rows = []
        for doc in await self._store.list_versions(policy_id):
            aliases = tuple(sorted(a for a, v in head.aliases.items() if v == doc.version))
            meta = doc.metadata
            rows.append(VersionSummary(doc.version, doc.checksum, doc.parent_version, meta.created_by,
                                       meta.created_at, meta.change_note, doc.version in head.archived, aliases))
        return rows

    async def audit(self, policy_id: str) -> list[AuditEntry]:
        """The policy's audit log in order.

        Raises:
            PolicyNotFound: no such policy.
        """
        await self._fresh_head(policy_id)
        return await self._store.list_audit(policy_id)

    async def _fresh_head(self, policy_id: str) -> PolicyHead:
        head = await self._store.get_head(policy_id)
        if head is None:
            raise PolicyNotFound(f"no policy {policy_id!r}")
        return head

    # -- verbs -------------------------------------------------------------------------------------------------

    def _entry(self, actor: str, action: str, policy_id: str, **fields: Any) -> AuditEntry:
        return AuditEntry(actor=actor, action=action, policy_id=policy_id, at=self._clock(), **fields)

    async def _build(
        self, policy_id: str, draft: PolicyDraft, actor: str, latest: int, validate: Validator | None
    ) -> PolicyDocument:
        if draft.id is not None and draft.id != policy_id:
            raise InvalidPolicy(f"document id {draft.id!r} does not match policy {policy_id!r}",
                                details=[{"loc": ["id"], "msg": "does not match the policy id", "type": "value"}])
        doc = PolicyDocument.from_draft(draft, policy_id=policy_id, version=latest + 1,
                                        parent_version=latest or None, created_by=actor, created_at=self._clock())
        if validate is not None:
            await validate(doc, render_policy(doc))
        return doc

    async def _replay(self, policy_id: str, key: str | None, draft: PolicyDraft) -> PolicyDocument | None:
        if key is None:
            return None
        for entry in await self._store.list_audit(policy_id):
            if entry.idempotency_key == key and entry.version is not None:
                earlier = await self.get(policy_id, entry.version)
                self._check_same_content(earlier, draft, key)
                return earlier
        return None

    @staticmethod
    def _check_same_content(earlier: PolicyDocument, draft: PolicyDraft, key: str | None) -> None:
        if key is not None and earlier.checksum != compute_checksum(earlier.id, draft.spec, draft.threshold):
            raise VersionConflict(f"idempotency key {key!r} was already used with different content",
                                  details={"idempotency_key": key, "version": earlier.version})

    async def create_policy(
        self,
        draft: PolicyDraft | Mapping[str, Any],
        *,
        actor: str,
        idempotency_key: str | None = None,
        reason: str | None = None,
        validate: Validator | None = None,
    ) -> PolicyDocument:
        """Create a policy: version 1 with `stable` -> 1, one `create` audit entry.

        Raises:
            InvalidPolicy: schema errors (field by field in `details`), missing id, or `validate` refused it.
            PolicyExists: the id is taken (unless this is a retry with the same idempotency key and content).
            VersionConflict: the idempotency key was used with different content.
        """
        draft = parse_draft(draft)
        if draft.id is None:
            raise InvalidPolicy("a new policy needs an id",
                                details=[{"loc": ["id"], "msg": "Field required", "type": "missing"}])
        policy_id = draft.id
        replay = await self._replay(policy_id, idempotency_key, draft)
        if replay is not None:
            return replay
        if await self._store.get_head(policy_id) is not None:
            raise PolicyExists(f"policy {policy_id!r} already exists")
        doc = await self._build(policy_id, draft, actor, 0, validate)
        entry = self._entry(actor, AuditAction.CREATE, policy_id, alias=STABLE, reason=reason,
                            idempotency_key=idempotency_key)
        try:
            stored = await self._store.add_version(doc, entry, expected_latest=0, set_aliases=(STABLE,),
                                                   idempotency_key=idempotency_key)
        except VersionConflict as exc:
            raise PolicyExists(f"policy {policy_id!r} already exists") from exc
        self._check_same_content(stored, draft, idempotency_key)
        self.invalidate(policy_id)
        return stored

    async def publish(
        self,
        policy_id: str,
        draft: PolicyDraft | Mapping[str, Any],
        *,
        actor: str,
        expected_latest: int | None = None,
        idempotency_key: str | None = None,
        reason: str | None = None,
        validate: Validator | None = None,
    ) -> PolicyDocument:
        """Publish a new immutable version (latest + 1, `parent_version` = latest); aliases do not move.

        Args:
            expected_latest: Optimistic concurrency: refuse unless the latest version is this one.
            idempotency_key: A retry with the same key returns the version the first call created.
            validate: Hook run on the built document and its rendering before anything is written. The
                document's `version` is provisional (latest + 1 when read); without `expected_latest` a
                concurrent publisher may take that number and the store assigns the next one.

        Raises:
            PolicyNotFound: no such policy (use `create_policy`).
            InvalidPolicy: schema errors, id mismatch, or `validate` refused it.
            VersionConflict: stale `expected_latest`, or the idempotency key was used with different content.
        """
        draft = parse_draft(draft)
        replay = await self._replay(policy_id, idempotency_key, draft)
        if replay is not None:
            return replay
        head = await self._fresh_head(policy_id)
        if expected_latest is not None and expected_latest != head.latest_version:
            raise VersionConflict(
                f"policy {policy_id!r}: expected latest version {expected_latest}, found {head.latest_version}",
                details={"expected": expected_latest, "actual": head.latest_version},
            )
        doc = await self._build(policy_id, draft, actor, head.latest_version, validate)
        entry = self._entry(actor, AuditAction.PUBLISH, policy_id, reason=reason, idempotency_key=idempotency_key)
        stored = await self._store.add_version(doc, entry, expected_latest=expected_latest,
                                               idempotency_key=idempotency_key)
        self._check_same_content(stored, draft, idempotency_key)
        self.invalidate(policy_id)
        return stored

    async def set_alias(
        self,
        policy_id: str,
        alias: str,
        version: int,
        *,
        actor: str,
        expected_version: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Point `alias` at `version` (promote); creates the alias if needed.

        Args:
            expected_version: Check-and-set: the alias's current target (0 = must not exist yet).

        Raises:
            InvalidPolicy: bad alias name.
            PolicyNotFound: no such policy, or the version does not exist or is archived.
            VersionConflict: stale `expected_version`.
        """
        _check_alias_name(alias)
        head = await self._fresh_head(policy_id)
        self._require_live(head, version)
        entry = self._entry(actor, AuditAction.SET_ALIAS, policy_id, version=version, alias=alias,
                            from_=head.aliases.get(alias), to=version, reason=reason)
        await self._store.set_alias(policy_id, alias, version, entry, expected_version=expected_version)
        self.invalidate(policy_id)

    @staticmethod
    def _require_live(head: PolicyHead, version: int) -> None:
        if not 1 <= version <= head.latest_version:
            raise PolicyNotFound(f"policy {head.policy_id!r} has no version {version}")
        if version in head.archived:
            raise PolicyNotFound(f"policy {head.policy_id!r} version {version} is archived")

    async def delete_alias(
        self,
        policy_id: str,
        alias: str,
        *,
        actor: str,
        expected_version: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Remove an alias.

        Raises:
            PolicyNotFound: no such policy.
            AliasNotFound: no such alias.
            VersionConflict: stale `expected_version`.
        """
        head = await self._fresh_head(policy_id)
        if alias not in head.aliases:
            raise AliasNotFound(f"policy {policy_id!r} has no alias {alias!r}")
        current = head.aliases[alias]
        entry = self._entry(actor, AuditAction.DELETE_ALIAS, policy_id, version=current, alias=alias,
                            from_=current, to=None, reason=reason)
        expected = current if expected_version is None else expected_version
        if not await self._store.delete_alias(policy_id, alias, entry, expected_version=expected):
            raise AliasNotFound(f"policy {policy_id!r} has no alias {alias!r}")
        self.invalidate(policy_id)

    async def rollback(self, policy_id: str, *, actor: str, alias: str = STABLE, reason: str | None = None) -> int:
        """Move `alias` back to its previous target (from the audit history); return that version.

        Raises:
            PolicyNotFound: no such policy.
            AliasNotFound: no such alias.
            VersionConflict: no earlier target, the earlier target is archived, or the alias moved meanwhile.
        """
        head = await self._fresh_head(policy_id)
        if alias not in head.aliases:
            raise AliasNotFound(f"policy {policy_id!r} has no alias {alias!r}")
        current = head.aliases[alias]
        stack = _alias_history(await self._store.list_audit(policy_id), alias)
        if len(stack) < 2 or stack[-1] != current:
            raise VersionConflict(f"alias {policy_id}:{alias} has no earlier target to roll back to")
        target = stack[-2]
        if target in head.archived:
            raise VersionConflict(f"cannot roll back {policy_id}:{alias} to archived version {target}")
        entry = self._entry(actor, AuditAction.ROLLBACK, policy_id, version=target, alias=alias,
                            from_=current, to=target, reason=reason)
        await self._store.set_alias(policy_id, alias, target, entry, expected_version=current)
        self.invalidate(policy_id)
        return target

    async def set_canary_weight(
        self, policy_id: str, weight: float, *, actor: str, reason: str | None = None
    ) -> None:
        """Set the share (0..1) of unqualified references routed to `canary` while that alias exists.

        Raises:
            InvalidPolicy: weight outside [0, 1].
            PolicyNotFound: no such policy.
        """
        if not 0.0 <= weight <= 1.0:
            raise InvalidPolicy(f"canary weight must be within [0, 1], got {weight}")
        head = await self._fresh_head(policy_id)
        entry = self._entry(actor, AuditAction.SET_CANARY_WEIGHT, policy_id, alias=CANARY,
                            from_=head.canary_weight, to=weight, reason=reason)
        await self._store.set_canary_weight(policy_id, weight, entry)
        self.invalidate(policy_id)

    async def archive(self, policy_id: str, version: int, *, actor: str, reason: str | None = None) -> None:
        """Archive a version: it stays readable but can no longer be resolved or aliased.

        Raises:
            PolicyNotFound: no such policy or version.
            VersionInUse: an alias points at the version.
        """
        await self._set_archived(policy_id, version, True, actor, reason)

    async def unarchive(self, policy_id: str, version: int, *, actor: str, reason: str | None = None) -> None:
        """Undo `archive`.

        Raises:
            PolicyNotFound: no such policy or version.
        """
        await self._set_archived(policy_id, version, False, actor, reason)

    async def _set_archived(self, policy_id: str, version: int, archived: bool, actor: str,
                            reason: str | None) -> None:
        head = await self._fresh_head(policy_id)
        if not 1 <= version <= head.latest_version:
            raise PolicyNotFound(f"policy {policy_id!r} has no version {version}")
        action = AuditAction.ARCHIVE if archived else AuditAction.UNARCHIVE
        entry = self._entry(actor, action, policy_id, version=version, reason=reason)
        await self._store.set_archived(policy_id, version, archived, entry)
        self.invalidate(policy_id)

    async def diff(self, policy_id: str, a: int, b: int) -> dict[str, Any]:
        """Structured difference from version `a` to version `b` (see `diff_documents`).

        Raises:
            PolicyNotFound: no such policy or version.
        """
        return diff_documents(await self.get(policy_id, a), await self.get(policy_id, b))


def _alias_history(entries: list[AuditEntry], alias: str) -> list[int]:
    """Replay an alias's audit entries as a stack of targets."""
    stack: list[int] = []
    for e in entries:
        if e.alias != alias:
            continue
        if e.action in (AuditAction.CREATE, AuditAction.SET_ALIAS) and isinstance(e.to, int):
            if not stack or stack[-1] != e.to:
                stack.append(e.to)
        elif e.action == AuditAction.ROLLBACK and stack:
            stack.pop()
        elif e.action == AuditAction.DELETE_ALIAS:
            stack.clear()
    return stack


def diff_documents(old: PolicyDocument, new: PolicyDocument) -> dict[str, Any]:
    """JSON-ready structured diff of two versions of one policy.

    Returns:
        `{"policy_id", "from", "to", "same_content", "changed_fields": [...], "categories": {"added": [ids],
        "removed": [ids], "changed": {id: [fields]}}, "text_diff": unified diff of spec.text,
        "rendered_diff": unified diff of the rendered model text}`.
    """
    fields = {
        "threshold": (old.threshold, new.threshold),
        "spec.text": (old.spec.text, new.spec.text),
        "metadata.owner": (old.metadata.owner, new.metadata.owner),
        "metadata.labels": (old.metadata.labels, new.metadata.labels),
        "metadata.change_note": (old.metadata.change_note, new.metadata.change_note),
    }
    changed = [name for name, (x, y) in fields.items() if x != y]
    old_cats = {c.id: c for c in old.spec.categories}
    new_cats = {c.id: c for c in new.spec.categories}
    changed_cats: dict[str, list[str]] = {}
    for cid in old_cats.keys() & new_cats.keys():
        before, after = old_cats[cid].model_dump(), new_cats[cid].model_dump()
        diffs = sorted(k for k in before if before[k] != after[k])
        if diffs:
            changed_cats[cid] = diffs
    if [c.id for c in old.spec.categories] != [c.id for c in new.spec.categories] or changed_cats:
        changed.append("spec.categories")

    def udiff(x: str, y: str, label: str) -> str:
        return "".join(difflib.unified_diff(x.splitlines(keepends=True), y.splitlines(keepends=True),
                                            f"{label}@{old.version}", f"{label}@{new.version}"))

    return {
        "policy_id": old.id,
        "from": old.version,
        "to": new.version,
        "same_content": old.checksum == new.checksum,
        "changed_fields": changed,
        "categories": {
            "added": [c for c in new_cats if c not in old_cats],
            "removed": [c for c in old_cats if c not in new_cats],
            "changed": dict(sorted(changed_cats.items())),
        },
        "text_diff": udiff((old.spec.text or "") + "\n", (new.spec.text or "") + "\n", "text"),
        "rendered_diff": udiff(render_policy(old).text + "\n", render_policy(new).text + "\n", "rendered"),
    }


def library_dir() -> Path:
    """The bundled `policies/library/` directory."""
    return Path(__file__).parent / "library"


def load_library(directory: Path | None = None) -> list[PolicyDraft]:
    """Parse every `*.json` draft in `directory` (default: the bundled library), sorted by file name.

    Raises:
        InvalidPolicy: a document is invalid or its `id` differs from its file name.
    """
    drafts = []
    for path in sorted((directory or library_dir()).glob("*.json")):
        draft = parse_draft(json.loads(path.read_text(encoding="utf-8")))
        if draft.id != path.stem:
            raise InvalidPolicy(f"{path}: id {draft.id!r} must equal the file name {path.stem!r}")
        drafts.append(draft)
    return drafts


async def seed_library(registry: PolicyRegistry, directory: Path | None = None) -> list[str]:
    """Create each library policy that the store lacks, as version 1 with `stable` -> 1 (actor "system").

    Policies already in the store are left alone, whatever their content. Safe to run concurrently on several
    replicas: a lost creation race counts as present.

    Returns:
        The ids created by this call.
    """
    created = []
    for draft in load_library(directory):
        assert draft.id is not None  # load_library checked it
        if await registry.store.get_head(draft.id) is not None:
            continue
        try:
            await registry.create_policy(draft, actor="system", reason="seeded from the bundled library")
        except PolicyExists:
            continue
        created.append(draft.id)
    return created
