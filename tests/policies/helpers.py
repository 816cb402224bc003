"""Shared helpers for the policy tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from policies.schema import PolicyDocument, PolicyDraft
from policies.store.base import AuditEntry

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def draft(text: str = "Be helpful and harmless.", policy_id: str | None = "demo", **extra: Any) -> PolicyDraft:
    """A minimal valid draft."""
    return PolicyDraft.model_validate({"id": policy_id, "spec": {"text": text}, **extra})


def doc(policy_id: str = "demo", text: str = "Be helpful and harmless.", version: int = 1) -> PolicyDocument:
    """A minimal valid document (the store reassigns `version`)."""
    return PolicyDocument.from_draft(
        draft(text, policy_id), policy_id=policy_id, version=version, parent_version=None,
        created_by="tester", created_at=AT,
    )


def entry(action: str = "publish", policy_id: str = "demo", **fields: Any) -> AuditEntry:
    """An audit entry."""
    return AuditEntry(actor="tester", action=action, policy_id=policy_id, at=AT, **fields)
