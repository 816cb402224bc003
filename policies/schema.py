"""The policy document: an immutable, versioned safety configuration.

A `PolicyDraft` is what a publisher sends; the registry turns it into a `PolicyDocument` (one immutable version)
by adding the version number (assigned by the store), `parent_version`, `metadata.created_by/created_at` and the
checksum. Nothing is edited in place: new content is a new version.

Decisions:
- **Severity** is a word scale, `low < medium < high < critical` (`Severity.rank` gives 1..4). Words read better
  to the model than digits. A `disallowed` category must carry a severity; an `allowed` one must not.
- **Checksum** = sha256 (lowercase hex) of the canonical JSON of the *content fields* `id`, `spec` and `threshold`
  (`json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, UTF-8, `None` fields omitted).
  Version, parent, metadata and archive state are not content: two versions with identical content share a checksum.
- **Verdict rule**: `comply` iff `p_comply >= threshold` (threshold default 0.5).
- Validation errors are pydantic `ValidationError`s; their `.errors()` lists the problems field by field.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import models_json_schema

__all__ = [
    "CHECKSUM_FIELDS",
    "POLICY_ID_PATTERN",
    "Expected",
    "PolicyCategory",
    "PolicyDocument",
    "PolicyDraft",
    "PolicyExample",
    "PolicyMetadata",
    "PolicySpec",
    "Severity",
    "Stance",
    "canonical_json",
    "compute_checksum",
    "export_json_schema",
    "schema_json_text",
]

POLICY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
CATEGORY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CHECKSUM_FIELDS: tuple[str, ...] = ("id", "spec", "threshold")

PolicyId = Annotated[str, StringConstraints(pattern=POLICY_ID_PATTERN)]
CategoryId = Annotated[str, StringConstraints(pattern=CATEGORY_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
PolicyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=8000)]
ExampleText = Annotated[str, StringConstraints(max_length=8000)]
Threshold = Annotated[float, Field(ge=0.0, le=1.0)]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Stance(StrEnum):
    """Whether the policy allows or disallows content of a category."""

    ALLOWED = "allowed"
    DISALLOWED = "disallowed"


class Severity(StrEnum):
    """How bad a violation of a disallowed category is, in increasing order."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """1 (low) .. 4 (critical)."""
        return list(Severity).index(self) + 1


class Expected(StrEnum):
    """The verdict an example must get under its policy."""

    COMPLY = "comply"
    VIOLATE = "violate"


class PolicyExample(BaseModel):
    """A golden example: a conversation turn and the verdict the policy expects for it."""

    model_config = _FROZEN

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=8000)]
    response: ExampleText
    expected: Expected


class PolicyCategory(BaseModel):
    """One structured category of content, allowed or disallowed."""

    model_config = _FROZEN

    id: CategoryId
    name: ShortText
    description: Description
    stance: Stance
    severity: Severity | None = Field(
        default=None, description="Required for disallowed categories, absent for allowed ones."
    )
    examples: Annotated[list[PolicyExample], Field(max_length=20)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _severity_matches_stance(self) -> PolicyCategory:
        if self.stance is Stance.DISALLOWED and self.severity is None:
            raise ValueError("a disallowed category needs a severity (low, medium, high, critical)")
        if self.stance is Stance.ALLOWED and self.severity is not None:
            raise ValueError("an allowed category takes no severity")
        return self


class PolicySpec(BaseModel):
    """What the policy says: free text, structured categories, or both (at least one)."""

    model_config = _FROZEN

    text: PolicyText | None = None
    categories: Annotated[list[PolicyCategory], Field(max_length=50)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _non_empty_and_unique(self) -> PolicySpec:
        if self.text is None and not self.categories:
            raise ValueError("a policy needs text, categories, or both")
        ids = [c.id for c in self.categories]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate category ids: {', '.join(duplicates)}")
        return self


class DraftMetadata(BaseModel):
    """Metadata a publisher may send."""

    model_config = _FROZEN

    owner: ShortText | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    change_note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class PolicyMetadata(DraftMetadata):
    """Metadata of a stored version; `created_by`/`created_at` are set by the registry."""

    created_by: str | None = None
    created_at: datetime | None = None


class PolicyDraft(BaseModel):
    """What a publisher sends. `id` may be omitted when the URL or the call names the policy."""

    model_config = _FROZEN

    id: PolicyId | None = None
    spec: PolicySpec
    threshold: Threshold = 0.5
    metadata: DraftMetadata = Field(default_factory=DraftMetadata)


class PolicyDocument(BaseModel):
    """One immutable policy version.

    Build new versions with `from_draft`; a document read back from storage is re-validated, including its
    checksum, so a corrupted or hand-edited document fails to load.
    """

    model_config = _FROZEN

    id: PolicyId
    version: Annotated[int, Field(ge=1)]
    spec: PolicySpec
    threshold: Threshold = 0.5
    metadata: PolicyMetadata = Field(default_factory=PolicyMetadata)
    parent_version: Annotated[int, Field(ge=1)] | None = None
    checksum: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

    @model_validator(mode="before")
    @classmethod
    def _fill_checksum(cls, data: Any) -> Any:
        if isinstance(data, dict) and "checksum" not in data:
            try:
                probe = _ContentProbe.model_validate({k: data[k] for k in CHECKSUM_FIELDS if k in data})
            except Exception:  # noqa: BLE001 - the main validation reports the real errors
                return data
            data = {**data, "checksum": compute_checksum(probe.id, probe.spec, probe.threshold)}
        return data

    @model_validator(mode="after")
    def _checksum_matches(self) -> PolicyDocument:
        expected = compute_checksum(self.id, self.spec, self.threshold)
        if self.checksum != expected:
            raise ValueError(f"checksum mismatch: document says {self.checksum}, content hashes to {expected}")
        return self

    @classmethod
    def from_draft(
        cls,
        draft: PolicyDraft,
        *,
        policy_id: str,
        version: int,
        parent_version: int | None,
        created_by: str,
        created_at: datetime,
    ) -> PolicyDocument:
        """Build a version from a draft; the checksum is computed here."""
        meta = PolicyMetadata(**draft.metadata.model_dump(), created_by=created_by, created_at=created_at)
        return cls(
            id=policy_id,
            version=version,
            spec=draft.spec,
            threshold=draft.threshold,
            metadata=meta,
            parent_version=parent_version,
            checksum=compute_checksum(policy_id, draft.spec, draft.threshold),
        )


class _ContentProbe(BaseModel):
    id: PolicyId
    spec: PolicySpec
    threshold: Threshold = 0.5


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the form the checksum hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compute_checksum(policy_id: str, spec: PolicySpec, threshold: float) -> str:
    """sha256 hex of the canonical JSON of the content fields (`CHECKSUM_FIELDS`)."""
    content = {"id": policy_id, "spec": spec.model_dump(mode="json", exclude_none=True), "threshold": threshold}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def export_json_schema() -> dict[str, Any]:
    """JSON Schema of `PolicyDocument` and `PolicyDraft` (committed as `policies/schema.json`)."""
    _, top = models_json_schema([(PolicyDocument, "validation"), (PolicyDraft, "validation")])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CSRM policy (a stored PolicyDocument or a PolicyDraft to publish)",
        "anyOf": [{"$ref": "#/$defs/PolicyDocument"}, {"$ref": "#/$defs/PolicyDraft"}],
        **top,
    }


def schema_json_text() -> str:
    """The exact text of the committed `policies/schema.json` (regenerate: `python -m policies.schema`)."""
    return json.dumps(export_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    from pathlib import Path

    Path(__file__).with_name("schema.json").write_text(schema_json_text(), encoding="utf-8")
