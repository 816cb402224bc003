"""The policy domain: immutable versioned policy documents, their rendering to model text, stores and the registry.

Imports pydantic (and psycopg only inside `policies.store.postgres`); never `service`, `models` or torch.
"""

from __future__ import annotations

from policies.errors import (
    AliasNotFound,
    InvalidPolicy,
    PolicyError,
    PolicyExists,
    PolicyNotFound,
    StoreUnavailable,
    VersionConflict,
    VersionInUse,
)
from policies.registry import (
    PolicyRegistry,
    PolicySummary,
    ResolvedPolicy,
    Validator,
    VersionSummary,
    load_library,
    parse_draft,
    parse_ref,
    seed_library,
)
from policies.render import RenderedPolicy, render_policy
from policies.schema import PolicyDocument, PolicyDraft, export_json_schema
from policies.store.base import AuditEntry, PolicyHead, PolicyStore, open_store

__all__ = [
    "AliasNotFound",
    "AuditEntry",
    "InvalidPolicy",
    "PolicyDocument",
    "PolicyDraft",
    "PolicyError",
    "PolicyExists",
    "PolicyHead",
    "PolicyNotFound",
    "PolicyRegistry",
    "PolicyStore",
    "PolicySummary",
    "RenderedPolicy",
    "ResolvedPolicy",
    "StoreUnavailable",
    "Validator",
    "VersionConflict",
    "VersionInUse",
    "VersionSummary",
    "export_json_schema",
    "load_library",
    "open_store",
    "parse_draft",
    "parse_ref",
    "render_policy",
    "seed_library",
]
