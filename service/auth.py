"""API keys: creation, hashed storage, constant-time check, and the FastAPI dependencies that enforce roles.

Keys are random (`csrm_` + 32 bytes from `secrets`, URL-safe base64), shown once by `csrm keys create` and stored
only as `sha256:<hex>` in the JSON file named by `CSRM_KEYS_FILE`. A plain SHA-256 is enough here because the keys
carry 256 bits of entropy: there is nothing to brute-force, so a slow password hash would only add latency to
every request. Lookups compare the hash with `hmac.compare_digest` against every stored key.

Roles: `score` may score; `admin` may score and administer policies. Admin endpoints always need an admin key
(401 without a key, 403 with a score key). Scoring needs a key (of either role) as soon as any key exists; with
an empty or missing keys file scoring is open, which `csrm serve` only allows on a loopback address.

The keys file is re-read when it changes (inode, modification time or size), so `csrm keys create` takes effect
on a running server without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fastapi import Request

from service.errors import Forbidden, Unauthorized

__all__ = [
    "KEY_PREFIX",
    "ApiKeyStore",
    "KeyRecord",
    "Principal",
    "Role",
    "get_key_store",
    "hash_key",
    "require_role",
]

Role = Literal["score", "admin"]
KEY_PREFIX = "csrm_"
_FORMAT = "csrm-keys/1"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key: its name, role, hash and creation time. The key itself is never stored."""

    name: str
    role: Role
    hash: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the key's name and role, or `anonymous` when no key exists at all."""

    name: str
    role: Role | None


def hash_key(key: str) -> str:
    """The stored form of a key: `sha256:<hex digest>`."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """The keys file: create keys, and authenticate bearer tokens against their hashes.

    Args:
        path: The JSON keys file (`CSRM_KEYS_FILE`). A missing file means no keys.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._records: tuple[KeyRecord, ...] = ()
        self._stamp: tuple[int, int, int] | None = None

    def records(self) -> tuple[KeyRecord, ...]:
        """The stored keys, re-read from disk when the file changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = (), None
            return self._records
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # writes replace the file, so the inode changes too
        if stamp != self._stamp:
            self._records = self._read()
            self._stamp = stamp
        return self._records

    def has_keys(self) -> bool:
        """True when at least one key exists."""
        return bool(self.records())

    def authenticate(self, key: str) -> KeyRecord | None:
        """The record whose hash matches `key`, compared in constant time against every record; None if none."""
        candidate = hash_key(key)
        found: KeyRecord | None = None
        for record in self.records():
            if hmac.compare_digest(candidate.encode(), record.hash.encode()):
                found = record
        return found

    def create(self, *, role: Role, name: str) -> str:
        """Create a key, store its hash (atomically replacing the file), and return the key itself.

        Raises:
            ValueError: bad role or empty name, or a key with that name already exists.
        """
        if role not in ("score", "admin"):
            raise ValueError(f"role must be 'score' or 'admin', not {role!r}")
        if not name.strip():
            raise ValueError("a key needs a non-empty name")
        existing = self._read() if self.path.exists() else ()
        if any(r.name == name for r in existing):
            raise ValueError(f"a key named {name!r} already exists in {self.path}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(name=name, role=role, hash=hash_key(key), created_at=datetime.now(UTC).isoformat())
        self._write((*existing, record))
        return key

    def _read(self) -> tuple[KeyRecord, ...]:
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return tuple(
            KeyRecord(name=k["name"], role=k["role"], hash=k["hash"], created_at=k.get("created_at", ""))
            for k in data.get("keys", [])
        )

    def _write(self, records: tuple[KeyRecord, ...]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "keys": [{"name": r.name, "role": r.role, "hash": r.hash, "created_at": r.created_at} for r in records],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def get_key_store(request: Request) -> ApiKeyStore:
    """The app's key store (`app.state.keys`)."""
    store: ApiKeyStore = request.app.state.keys
    return store


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


def require_role(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency that admits `role` (admin keys also pass `score`) and returns the Principal.

    The Principal is also stored on `request.state.principal` (for audit entries).

    Raises (from the dependency):
        Unauthorized: no key where one is needed, or an unknown key (401).
        Forbidden: a valid key without the role (403).
    """

    async def dependency(request: Request) -> Principal:
        keys = get_key_store(request)
        token = _bearer(request)
        if token is None:
            if role == "score" and not keys.has_keys():
                principal = Principal(name="anonymous", role=None)
                request.state.principal = principal
                return principal
            raise Unauthorized(f"this endpoint needs an API key with role '{role}' (Authorization: Bearer <key>)")
        record = keys.authenticate(token)
        if record is None:
            raise Unauthorized("unknown API key")
        if role == "admin" and record.role != "admin":
            raise Forbidden(f"the key '{record.name}' has role '{record.role}'; this endpoint needs 'admin'")
        principal = Principal(name=record.name, role=record.role)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency
