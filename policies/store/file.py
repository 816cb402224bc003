"""`FilePolicyStore`: the embedded default store, JSON documents in a directory.

Layout under the root:

    .lock                               flock'ed by every writer (all processes)
    policies/<id>/state.json            PolicyRecord: latest version, aliases, canary weight, archived,
                                        idempotency keys and the full audit log
    policies/<id>/versions/000007.json  one immutable PolicyDocument per version

Durability and atomicity: every file is written as a temporary file in the same directory, fsync'ed, renamed over
its final name, and the directory fsync'ed. A mutation is committed by the rename of `state.json`, which carries the
audit entry with the change, so change and audit land together or not at all. `add_version` writes the version
file first and `state.json` second: a crash in between leaves an orphan version file above `latest`, which readers
ignore and the next publish overwrites. Leftover temporary files (`.tmp-*`) are ignored.

Concurrency: writers hold an `asyncio.Lock` (tasks of this store object) and then an exclusive `fcntl.flock` on
`.lock` (other store objects and other processes), and re-read `state.json` under the lock, so version numbers are
never assigned twice. Readers take no lock: they only ever see whole files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from policies.errors import PolicyError, StoreUnavailable
from policies.schema import POLICY_ID_PATTERN, PolicyDocument
from policies.store.memory import PolicyRecord

if TYPE_CHECKING:
    from policies.store.base import AuditEntry, PolicyHead

__all__ = ["FilePolicyStore"]

_T = TypeVar("_T")
_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically and durably (temp file, fsync, rename, fsync of the directory)."""
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


class FilePolicyStore:
    """A `PolicyStore` in a directory; safe for several processes on one machine (local filesystem)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Args: root: the store directory; created on first write if missing."""
        self._root = Path(root)
        self._lock = asyncio.Lock()

    @property
    def root(self) -> Path:
        """The store directory."""
        return self._root

    # -- reads -------------------------------------------------------------------------------------------------

    async def list_policies(self) -> list[str]:
        """See `PolicyStore.list_policies`."""
        return await self._run(self._list_policies)

    async def get_head(self, policy_id: str) -> PolicyHead | None:
        """See `PolicyStore.get_head`."""
        record = await self._run(self._load_record, policy_id)
        return None if record.latest == 0 else record.head()

    async def get_version(self, policy_id: str, version: int) -> PolicyDocument | None:
        """See `PolicyStore.get_version`."""
        return await self._run(self._get_version, policy_id, version)

    async def list_versions(self, policy_id: str) -> list[PolicyDocument]:
        """See `PolicyStore.list_versions`."""
        return await self._run(self._list_versions, policy_id)

    async def list_audit(self, policy_id: str) -> list[AuditEntry]:
        """See `PolicyStore.list_audit`."""
        record = await self._run(self._load_record, policy_id)
        return list(record.audit)

    async def version_token(self) -> str:
        """Digest of (inode, mtime, size) of every `state.json`; each commit renames a new inode into place."""
        return await self._run(self._version_token)

    async def ping(self) -> None:
        """See `PolicyStore.ping`."""
        await self._run(self._list_policies)

    async def close(self) -> None:
        """Nothing is held between calls."""

    # -- mutations ---------------------------------------------------------------------------------------------

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

        def work() -> PolicyDocument:
            record = self._load_record(doc.id)
            if idempotency_key is not None and idempotency_key in record.idempotency:
                earlier = self._read_version_file(doc.id, record.idempotency[idempotency_key])
                if earlier is None:
                    raise StoreUnavailable(f"policy {doc.id!r}: version named by an idempotency key is missing")
                return earlier
            new = record.copy()
            number = new.add_version(audit, expected_latest, set_aliases, idempotency_key)
            stored = doc.model_copy(update={"version": number, "parent_version": number - 1 or None})
            versions = self._policy_dir(doc.id) / "versions"
            self._ensure_dir(versions)
            atomic_write(versions / f"{number:06d}.json", stored.model_dump_json(indent=1).encode("utf-8"))
            self._write_record(new)
            return stored

        return await self._mutate(work)

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
        await self._update(policy_id, lambda r: r.set_alias(alias, version, audit, expected_version))

    async def delete_alias(
        self, policy_id: str, alias: str, audit: AuditEntry, *, expected_version: int | None = None
    ) -> bool:
        """See `PolicyStore.delete_alias`."""
        return await self._update(policy_id, lambda r: r.delete_alias(alias, audit, expected_version))

    async def set_canary_weight(self, policy_id: str, weight: float, audit: AuditEntry) -> None:
        """See `PolicyStore.set_canary_weight`."""
        await self._update(policy_id, lambda r: r.set_canary_weight(weight, audit))

    async def set_archived(self, policy_id: str, version: int, archived: bool, audit: AuditEntry) -> None:
        """See `PolicyStore.set_archived`."""
        await self._update(policy_id, lambda r: r.set_archived(version, archived, audit))

    # -- helpers -----------------------------------------------------------------------------------------------

    async def _update(self, policy_id: str, change: Callable[[PolicyRecord], _T]) -> _T:
        """Apply `change` to a copy of the record under the locks; write it back unless it returned False."""

        def work() -> _T:
            new = self._load_record(policy_id).copy()
            result = change(new)
            if result is not False:
                self._write_record(new)
            return result

        return await self._mutate(work)

    async def _mutate(self, work: Callable[[], _T]) -> _T:
        async with self._lock:
            return await self._run(self._locked, work)

    def _locked(self, work: Callable[[], _T]) -> _T:
        self._root.mkdir(parents=True, exist_ok=True)
        with open(self._root / ".lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                return work()
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.to_thread(fn, *args)
        except PolicyError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise StoreUnavailable(f"file policy store at {self._root}: {exc}") from exc

    def _policy_dir(self, policy_id: str) -> Path:
        return self._root / "policies" / policy_id

    def _ensure_dir(self, path: Path) -> None:
        created: list[Path] = []
        for p in [path, *path.parents]:
            if p.exists():
                break
            created.append(p)
        for p in reversed(created):
            p.mkdir(exist_ok=True)
            _fsync_dir(p.parent)

    def _load_record(self, policy_id: str) -> PolicyRecord:
        path = self._policy_dir(policy_id) / "state.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return PolicyRecord(policy_id)
        return PolicyRecord.from_json(json.loads(raw))

    def _write_record(self, record: PolicyRecord) -> None:
        directory = self._policy_dir(record.policy_id)
        self._ensure_dir(directory)
        atomic_write(directory / "state.json", json.dumps(record.to_json(), indent=1).encode("utf-8"))

    def _read_version_file(self, policy_id: str, version: int) -> PolicyDocument | None:
        path = self._policy_dir(policy_id) / "versions" / f"{version:06d}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return PolicyDocument.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreUnavailable(f"corrupt policy document {path}: {exc}") from exc

    def _get_version(self, policy_id: str, version: int) -> PolicyDocument | None:
        if not 1 <= version <= self._load_record(policy_id).latest:
            return None  # absent, or an orphan left by a crash before its commit
        return self._read_version_file(policy_id, version)

    def _list_versions(self, policy_id: str) -> list[PolicyDocument]:
        latest = self._load_record(policy_id).latest
        docs = [self._read_version_file(policy_id, n) for n in range(1, latest + 1)]
        return [d for d in docs if d is not None]

    def _state_files(self) -> Iterator[tuple[str, Path]]:
        base = self._root / "policies"
        if not base.is_dir():
            return
        pattern = re.compile(POLICY_ID_PATTERN)
        for entry in sorted(os.listdir(base)):
            state = base / entry / "state.json"
            if pattern.match(entry) and state.is_file():
                yield entry, state

    def _list_policies(self) -> list[str]:
        return [policy_id for policy_id, _ in self._state_files()]

    def _version_token(self) -> str:
        digest = hashlib.sha256()
        for policy_id, state in self._state_files():
            st = state.stat()
            digest.update(f"{policy_id}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size};".encode())
        return digest.hexdigest()
