"""The `PolicyStore` interface every backend implements, the records it exchanges, and `open_store(url)`.

Contract shared by every store (memory, file, postgres):

- **Stores only store.** Reads return `None` (or an empty list) on a miss and never raise `PolicyNotFound`.
  The rules (an alias must point at an existing version, rollback targets, who may do what) live in
  `policies.registry.PolicyRegistry`, the only intended caller.
- **One mutation = one atomic step, audit included.** Each mutating method applies its change *and* appends the
  given `AuditEntry` in one atomic step: after a crash or error either both are durable or neither is. A mutation
  refused by one of the checks below raises and writes nothing, audit included.
- **Concurrent writers** (tasks in one process, several processes, several replicas on one database) are
  serialised per store: every check-and-write below happens under the store's lock or transaction, so two writers
  can never both assign the same version number, and exactly one of two racing check-and-sets with the same
  expectation wins; the other raises `VersionConflict`.
- The only rule a store enforces itself is what needs its atomicity: version numbering, idempotency keys, the
  `expected_*` checks, and the alias/archive invariant (no alias ever points at an archived or missing version).
- Driver and I/O failures surface as `StoreUnavailable` (raised `from` the original exception).
- Mutations of a policy that has no versions raise `PolicyNotFound` (except `add_version`, which creates it).
- Audit entries come back from `list_audit` in append order, exactly as written, except for the fields the store
  fills (documented on `add_version`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from policies.schema import PolicyDocument

__all__ = [
    "AuditAction",
    "AuditEntry",
    "PolicyHead",
    "PolicyStore",
    "open_store",
]


class AuditAction:
    """The `action` values the registry writes (plain strings, so stores need no enum mapping)."""

    CREATE = "create"
    PUBLISH = "publish"
    SET_ALIAS = "set_alias"
    DELETE_ALIAS = "delete_alias"
    ROLLBACK = "rollback"
    SET_CANARY_WEIGHT = "set_canary_weight"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One append-only audit record: who did what to which policy, when, and why.

    Attributes:
        actor: Who did it (the API key's name, or "system").
        action: One of `AuditAction`'s values.
        policy_id: The policy changed.
        at: When (timezone-aware UTC), set by the registry.
        version: The version concerned (new version for create/publish, target for alias moves,
            the archived version for archive). Filled by the store for `add_version`.
        alias: The alias concerned, if any.
        from_: Value before the change: an alias's previous version, a previous canary weight; None if none.
            Serialised as "from".
        to: Value after the change: the alias's new version, the new canary weight; None if removed.
        reason: Free text given by the actor.
        idempotency_key: The key a publish was made with, if any.
    """

    actor: str
    action: str
    policy_id: str
    at: datetime
    version: int | None = None
    alias: str | None = None
    from_: int | float | None = None
    to: int | float | None = None
    reason: str | None = None
    idempotency_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `from_` becomes "from" and `at` an ISO-8601 string."""
        return {
            "actor": self.actor,
            "action": self.action,
            "policy_id": self.policy_id,
            "at": self.at.isoformat(),
            "version": self.version,
            "alias": self.alias,
            "from": self.from_,
            "to": self.to,
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """Inverse of `to_dict`."""
        return cls(
            actor=data["actor"],
            action=data["action"],
            policy_id=data["policy_id"],
            at=datetime.fromisoformat(data["at"]),
            version=data.get("version"),
            alias=data.get("alias"),
            from_=data.get("from"),
            to=data.get("to"),
            reason=data.get("reason"),
            idempotency_key=data.get("idempotency_key"),
        )


@dataclass(frozen=True, slots=True)
class PolicyHead:
    """The mutable state of one policy, read in one consistent snapshot.

    Attributes:
        policy_id: The policy.
        latest_version: Highest version number stored (versions are 1..latest, consecutive).
        aliases: Alias name -> version.
        canary_weight: Share (0..1) of unqualified references routed to the `canary` alias.
        archived: Archived version numbers.
    """

    policy_id: str
    latest_version: int
    aliases: Mapping[str, int] = field(default_factory=dict)
    canary_weight: float = 0.0
    archived: frozenset[int] = frozenset()


@runtime_checkable
class PolicyStore(Protocol):
    """Durable storage of policy versions, aliases, canary weights, archive flags and the audit log.

    All methods are coroutines and safe to call concurrently from many tasks. See the module docstring for the
    atomicity and concurrency contract every implementation honours.
    """

    async def list_policies(self) -> list[str]:
        """Ids of every policy with at least one version, sorted."""
        ...

    async def get_head(self, policy_id: str) -> PolicyHead | None:
        """Latest version, aliases, canary weight and archived set in one snapshot; None if no such policy."""
        ...

    async def get_version(self, policy_id: str, version: int) -> PolicyDocument | None:
        """One stored version (archived ones included); None if absent."""
        ...

    async def list_versions(self, policy_id: str) -> list[PolicyDocument]:
        """Every stored version, ascending; empty if no such policy."""
        ...

    async def list_audit(self, policy_id: str) -> list[AuditEntry]:
        """The policy's audit entries in append order; empty if none."""
        ...

    async def add_version(
        self,
        doc: PolicyDocument,
        audit: AuditEntry,
        *,
        expected_latest: int | None = None,
        set_aliases: tuple[str, ...] = (),
        idempotency_key: str | None = None,
    ) -> PolicyDocument:
        """Store `doc` as the next version of `doc.id`, atomically with `audit` and the alias moves.

        In one atomic step: if `idempotency_key` was already used by a successful `add_version` of this policy,
        return that earlier stored document and write nothing (checked first, so a retry after success
        returns the original even if later versions exist). Otherwise, with `latest` the current highest
        version (0 if the policy has none): if `expected_latest` is not None and differs from `latest`, raise
        `VersionConflict` (use `expected_latest=0` for "the policy must not exist yet"). Then store
        `doc.model_copy(update={"version": latest + 1, "parent_version": latest or None})` — the `version` and
        `parent_version` the caller put in `doc` are ignored —, point every alias in `set_aliases` at it,
        remember the idempotency key, and append `audit` with `version` set to the new number and
        `to` set to it when `audit.to` is None.

        Returns:
            The stored document (with its assigned version).

        Raises:
            VersionConflict: `expected_latest` is stale.
            StoreUnavailable: the backend failed; nothing was written.
        """
        ...

    async def set_alias(
        self,
        policy_id: str,
        alias: str,
        version: int,
        audit: AuditEntry,
        *,
        expected_version: int | None = None,
    ) -> None:
        """Point `alias` at `version` (creating the alias if needed), atomically with `audit`.

        Check-and-set: if `expected_version` is not None, the alias must currently point at it (0 = the alias
        must not exist), else `VersionConflict`.

        Raises:
            PolicyNotFound: the policy has no versions.
            VersionConflict: stale `expected_version`, or `version` does not exist or is archived.
            StoreUnavailable: the backend failed; nothing was written.
        """
        ...

    async def delete_alias(
        self, policy_id: str, alias: str, audit: AuditEntry, *, expected_version: int | None = None
    ) -> bool:
        """Remove `alias`, atomically with `audit`.

        Returns:
            True if removed; False if the alias did not exist (nothing written, no audit).

        Raises:
            PolicyNotFound: the policy has no versions.
            VersionConflict: `expected_version` is not None and the alias does not point at it.
            StoreUnavailable: the backend failed; nothing was written.
        """
        ...

    async def set_canary_weight(self, policy_id: str, weight: float, audit: AuditEntry) -> None:
        """Set the share (0..1) of unqualified references routed to `canary`, atomically with `audit`.

        Raises:
            PolicyNotFound: the policy has no versions.
            StoreUnavailable: the backend failed; nothing was written.
        """
        ...

    async def set_archived(self, policy_id: str, version: int, archived: bool, audit: AuditEntry) -> None:
        """Mark a version archived (or not), atomically with `audit`.

        Raises:
            PolicyNotFound: the policy or the version does not exist.
            VersionInUse: archiving while an alias points at the version (checked in the same atomic step).
            StoreUnavailable: the backend failed; nothing was written.
        """
        ...

    async def version_token(self) -> str:
        """An opaque token that changes whenever any mutation commits, for cache invalidation.

        Must be cheap. Backends shared between processes (file, postgres) reflect other processes' commits;
        the registry polls it at most every `cache_ttl` seconds and also accepts pushed `invalidate()` calls.
        """
        ...

    async def ping(self) -> None:
        """Return if the store is readable now (for /readyz); raise `StoreUnavailable` otherwise."""
        ...

    async def close(self) -> None:
        """Release connections, locks and files. Idempotent."""
        ...


def open_store(url: str) -> PolicyStore:
    """Build the store a URL names.

    Args:
        url: `memory:`; `file:PATH` or `file://PATH` (absolute path after `file://`, e.g. `file:///var/csrm`);
            `postgresql://...` or `postgres://...` -> `PostgresPolicyStore(url)` (the postgres module and psycopg
            are imported only then).

    Raises:
        ValueError: unknown scheme or empty path.
    """
    if url == "memory:" or url.startswith("memory://"):
        from policies.store.memory import InMemoryPolicyStore

        return InMemoryPolicyStore()
    if url.startswith("file:"):
        from policies.store.file import FilePolicyStore

        path = url.removeprefix("file://") if url.startswith("file://") else url.removeprefix("file:")
        if not path:
            raise ValueError(f"file store URL without a path: {url!r}")
        return FilePolicyStore(path)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from policies.store import postgres

        return postgres.PostgresPolicyStore(url)
    raise ValueError(f"unknown policy store URL scheme: {url!r} (use memory:, file:PATH or postgresql://...)")
