"""Errors raised by the policy package.

    PolicyError
    ├── PolicyNotFound      no policy with that id, or no such version
    ├── AliasNotFound       the policy exists but the alias does not
    ├── PolicyExists        create of an id that already exists
    ├── VersionConflict     optimistic concurrency: the expected current version is stale
    ├── VersionInUse        archive refused while an alias points at the version
    ├── InvalidPolicy       schema or reference errors; `details` lists them field by field
    └── StoreUnavailable    the backing store cannot be reached or failed
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AliasNotFound",
    "InvalidPolicy",
    "PolicyError",
    "PolicyExists",
    "PolicyNotFound",
    "StoreUnavailable",
    "VersionConflict",
    "VersionInUse",
]


class PolicyError(Exception):
    """Base class of every error the policy package raises."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class PolicyNotFound(PolicyError):
    """No policy with that id, or no such version of it."""


class AliasNotFound(PolicyError):
    """The policy exists but has no such alias."""


class PolicyExists(PolicyError):
    """A policy with that id already exists."""


class VersionConflict(PolicyError):
    """The caller's expected current version is stale."""


class VersionInUse(PolicyError):
    """The version cannot be archived while an alias points at it."""


class InvalidPolicy(PolicyError):
    """The document or reference is invalid; `details` lists the problems."""


class StoreUnavailable(PolicyError):
    """The policy store cannot be reached or failed."""
