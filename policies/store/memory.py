"""`InMemoryPolicyStore`: the reference `PolicyStore`, for tests and `memory:` URLs; nothing survives the process.

It also holds `PolicyRecord`, the per-policy state machine (latest version, aliases, canary weight, archived set,
idempotency keys, audit) whose check-then-apply methods every in-process backend shares: `FilePolicyStore`
loads a record from disk, applies the same method to a copy and writes the copy back in one atomic rename.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policies.errors import PolicyNotFound, VersionConflict, VersionInUse
from policies.store.base import AuditEntry, PolicyHead

if TYPE_CHECKING:
    from policies.schema import PolicyDocument

__all__ = ["InMemoryPolicyStore", "PolicyRecord"]


@dataclass
class PolicyRecord:
    """Mutable state of one policy apart from its version documents.

    Mutating methods check first and change nothing when they raise; callers apply them to a `copy()` and
    publish the copy only once it is durable.
    """

    policy_id: str
    latest: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    canary_weight: float = 0.0
    archived: set[int] = field(default_factory=set)
    idempotency: dict[str, int] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)

    def copy(self) -> PolicyRecord:
        """A copy whose containers can be changed without touching this one."""
        return dataclasses.replace(
            self,
            aliases=dict(self.aliases),
            archived=set(self.archived),
            idempotency=dict(self.idempotency),
            audit=list(self.audit),
        )

    def head(self) -> PolicyHead:
        """Snapshot for readers."""
        return PolicyHead(
            policy_id=self.policy_id,
            latest_version=self.latest,
            aliases=dict(self.aliases),
            canary_weight=self.canary_weight,
            archived=frozenset(self.archived),
        )

    def add_version(
        self,
        audit: AuditEntry,
        expected_latest: int | None,
        set_aliases: tuple[str, ...],
        idempotency_key: str | None,
    ) -> int:
        """Assign the next version number, move aliases, record the key and audit; return the number."""
        if expected_latest is not None and expected_latest != self.latest:
            raise VersionConflict(
                f"policy {self.policy_id!r}: expected latest version {expected_latest}, found {self.latest}",
                details={"expected": expected_latest, "actual": self.latest},
            )
        self.latest += 1
        for alias in set_aliases:
            self.aliases[alias] = self.latest
        if idempotency_key is not None:
            self.idempotency[idempotency_key] = self.latest
        to = self.latest if audit.to is None else audit.to
        self.audit.append(dataclasses.replace(audit, version=self.latest, to=to))
        return self.latest

    def set_alias(self, alias: str, version: int, audit: AuditEntry, expected_version: int | None) -> None:
        """Check-and-set one alias."""
        self._require_exists()
        self._check_expected(alias, expected_version)
        if not 1 <= version <= self.latest or version in self.archived:
            raise VersionConflict(
                f"policy {self.policy_id!r}: version {version} does not exist or is archived",
                details={"version": version},
            )
        self.aliases[alias] = version
        self.audit.append(audit)

    def delete_alias(self, alias: str, audit: AuditEntry, expected_version: int | None) -> bool:
        """Remove one alias; False (and no audit) if it did not exist."""
        self._require_exists()
        self._check_expected(alias, expected_version)
        if alias not in self.aliases:
            return False
        del self.aliases[alias]
        self.audit.append(audit)
        return True

    def set_canary_weight(self, weight: float, audit: AuditEntry) -> None:
        """Set the canary share."""
        self._require_exists()
        self.canary_weight = weight
        self.audit.append(audit)

    def set_archived(self, version: int, archived: bool, audit: AuditEntry) -> None:
        """Archive or unarchive a version; refused while an alias points at it."""
        self._require_exists()
        if not 1 <= version <= self.latest:
            raise PolicyNotFound(f"policy {self.policy_id!r} has no version {version}")
        users = sorted(a for a, v in self.aliases.items() if v == version)
        if archived and users:
            raise VersionInUse(
                f"policy {self.policy_id!r} version {version} is the target of alias(es) {', '.join(users)}",
                details={"version": version, "aliases": users},
            )
        if archived:
            self.archived.add(version)
        else:
            self.archived.discard(version)
        self.audit.append(audit)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (used by the file store)."""
        return {
            "policy_id": self.policy_id,
            "latest": self.latest,
            "aliases": dict(sorted(self.aliases.items())),
            "canary_weight": self.canary_weight,
            "archived": sorted(self.archived),
            "idempotency": self.idempotency,
            "audit": [e.to_dict() for e in self.audit],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyRecord:
        """Inverse of `to_json`."""
        return cls(
            policy_id=data["policy_id"],
            latest=int(data["latest"]),
            aliases={str(k): int(v) for k, v in data["aliases"].items()},
            canary_weight=float(data["canary_weight"]),
            archived={int(v) for v in data["archived"]},
            idempotency={str(k): int(v) for k, v in data["idempotency"].items()},
            audit=[AuditEntry.from_dict(e) for e in data["audit"]],
        )

    def _require_exists(self) -> None:
        if self.latest == 0:
            raise PolicyNotFound(f"no policy {self.policy_id!r}")

    def _check_expected(self, alias: str, expected_version: int | None) -> None:
        if expected_version is None:
            return
        actual = self.aliases.get(alias, 0)
        if actual != expected_version:
            raise VersionConflict(
                f"alias {self.policy_id}:{alias} points at {actual or 'nothing'}, expected {expected_version}",
                details={"expected": expected_version, "actual": actual},
            )


class InMemoryPolicyStore:
    """A `PolicyStore` in process memory. Every mutation runs under one `asyncio.Lock`."""

    def __init__(self) -> None:
        self._records: dict[str, PolicyRecord] = {}
        self._docs: dict[tuple[str, int], PolicyDocument] = {}
        self._lock = asyncio.Lock()
        self._generation = 0

    async def list_policies(self) -> list[str]:
        """See `PolicyStore.list_policies`."""
        return sorted(self._records)

    async def get_head(self, policy_id: str) -> PolicyHead | None:
        """See `PolicyStore.get_head`."""
        record = self._records.get(policy_id)
        return None if record is None else record.head()

    async def get_version(self, policy_id: str, version: int) -> PolicyDocument | None:
        """See `PolicyStore.get_version`."""
        return self._docs.get((policy_id, version))

    async def list_versions(self, policy_id: str) -> list[PolicyDocument]:
        """See `PolicyStore.list_versions`."""
        record = self._records.get(policy_id)
        if record is None:
            return []
        return [self._docs[(policy_id, n)] for n in range(1, record.latest + 1)]

    async def list_audit(self, policy_id: str) -> list[AuditEntry]:
        """See `PolicyStore.list_audit`."""
        record = self._records.get(policy_id)
        return [] if record is None else list(record.audit)

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
        async with self._lock:
            record = self._records.get(doc.id) or PolicyRecord(doc.id)
            if idempotency_key is not None and idempotency_key in record.idempotency:
                return self._docs[(doc.id, record.idempotency[idempotency_key])]
            new = record.copy()
            number = new.add_version(audit, expected_latest, set_aliases, idempotency_key)
            stored = doc.model_copy(update={"version": number, "parent_version": number - 1 or None})
            self._docs[(doc.id, number)] = stored
            self._commit(new)
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
        async with self._lock:
            new = self._record(policy_id).copy()
            new.set_alias(alias, version, audit, expected_version)
            self._commit(new)

    async def delete_alias(
        self, policy_id: str, alias: str, audit: AuditEntry, *, expected_version: int | None = None
    ) -> bool:
        """See `PolicyStore.delete_alias`."""
        async with self._lock:
            new = self._record(policy_id).copy()
            if not new.delete_alias(alias, audit, expected_version):
                return False
            self._commit(new)
            return True

    async def set_canary_weight(self, policy_id: str, weight: float, audit: AuditEntry) -> None:
        """See `PolicyStore.set_canary_weight`."""
        async with self._lock:
            new = self._record(policy_id).copy()
            new.set_canary_weight(weight, audit)
            self._commit(new)

    async def set_archived(self, policy_id: str, version: int, archived: bool, audit: AuditEntry) -> None:
        """See `PolicyStore.set_archived`."""
        async with self._lock:
            new = self._record(policy_id).copy()
            new.set_archived(version, archived, audit)
            self._commit(new)

    async def version_token(self) -> str:
        """See `PolicyStore.version_token`."""
        return str(self._generation)

    async def ping(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to release."""

    def _record(self, policy_id: str) -> PolicyRecord:
        return self._records.get(policy_id) or PolicyRecord(policy_id)

    def _commit(self, record: PolicyRecord) -> None:
        self._records[record.policy_id] = record
        self._generation += 1
