"""HTTP wire models: every request and response body the service reads or writes.

Pydantic only. Nothing below `service/` imports this module; routes convert to and from the domain types
(`models.types`, `policies.registry`) at the edge. Every model forbids unknown fields, so a typo in a client
is a 422, not a silently ignored option.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ErrorInfo",
    "ErrorResponse",
    "GetRewardRequest",
    "GetRewardResponse",
    "HealthResponse",
    "Lane",
    "MessageItem",
    "ModelInfo",
    "ModelInfoResponse",
    "PolicyInfo",
    "PromptResponseItem",
    "ReadyResponse",
    "ScoreItem",
    "ScoreRequest",
    "ScoreResponse",
    "ScoreResult",
    "Verdict",
    "WireMessage",
]

Lane = Literal["interactive", "bulk"]
Verdict = Literal["comply", "violate"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WireMessage(_Wire):
    """One conversation turn."""

    role: Literal["system", "user", "assistant"] = Field(description="Who spoke.")
    content: str = Field(description="What was said.")


class PromptResponseItem(_Wire):
    """A single-turn item: the user's prompt and the assistant's response to judge."""

    prompt: str = Field(description="The user turn.")
    response: str = Field(description="The assistant turn that is scored.")


class MessageItem(_Wire):
    """A multi-turn item: the conversation, ending with the assistant turn to judge."""

    messages: list[WireMessage] = Field(
        min_length=1, description="The conversation in order; the last message must be from the assistant."
    )

    @model_validator(mode="after")
    def _ends_with_assistant(self) -> MessageItem:
        if self.messages[-1].role != "assistant":
            raise ValueError("the last message must have role 'assistant' (the turn that is scored)")
        return self


ScoreItem = PromptResponseItem | MessageItem


class ScoreRequest(_Wire):
    """`POST /v1/score`: score items under one policy."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy": "general-safety",
                    "items": [
                        {"prompt": "How do I pick a strong password?", "response": "Use a long passphrase..."},
                        {
                            "messages": [
                                {"role": "user", "content": "Write a scary story."},
                                {"role": "assistant", "content": "The lights went out at midnight..."},
                            ]
                        },
                    ],
                    "lane": "interactive",
                    "request_id": "req-42",
                },
                {
                    "policy_text": "Never give medical dosage advice.",
                    "items": [{"prompt": "How much ibuprofen can I take?", "response": "Ask a pharmacist."}],
                },
            ]
        },
    )

    policy: str | None = Field(
        None,
        description="Policy reference: `id` (its `stable` alias, or the canary split), `id@N` or `id:alias`. "
        "Exclusive with policy_text; when both are absent the service's default policy is used.",
    )
    policy_text: str | None = Field(
        None, min_length=1, description="Inline policy text the model reads as is, instead of a stored policy."
    )
    items: list[ScoreItem] = Field(min_length=1, description="The items to score, in order.")
    lane: Lane = Field(
        "interactive", description="`interactive` (latency first, served first) or `bulk` (throughput)."
    )
    request_id: str | None = Field(
        None, max_length=256, description="Caller's id, echoed back; also pins the canary split for this request."
    )
    deadline_ms: float | None = Field(
        None, gt=0, description="Give up (504) if the items are not computed within this many ms of arrival."
    )

    @model_validator(mode="after")
    def _one_policy_source(self) -> ScoreRequest:
        if self.policy is not None and self.policy_text is not None:
            raise ValueError("give either 'policy' or 'policy_text', not both")
        return self


class ScoreResult(_Wire):
    """The score of one item."""

    reward: float = Field(description="Raw reward (a logit): higher is a better response under the policy.")
    p_comply: float = Field(ge=0.0, le=1.0, description="Calibrated probability that the response complies.")
    verdict: Verdict = Field(description="`comply` when p_comply >= the policy threshold, else `violate`.")
    tokens: int = Field(ge=0, description="Tokens the model read for this item (policy included).")
    truncated: bool = Field(description="True when conversation turns were cut to fit; the policy never is.")


class PolicyInfo(_Wire):
    """The policy the items were scored under. Inline policy text has only a checksum."""

    id: str | None = Field(None, description="Policy id; null for inline policy_text.")
    version: int | None = Field(None, description="Resolved version number; null for inline policy_text.")
    alias: str | None = Field(None, description="Alias the reference went through (`stable`, `canary`...), if any.")
    checksum: str = Field(description="sha256 of the policy version (stored) or of the inline text.")
    threshold: float = Field(description="Threshold the verdict used.")


class ModelInfo(_Wire):
    """The model that computed the scores."""

    id: str = Field(description="Model id (from the checkpoint).")
    checksum: str = Field(description="Checkpoint checksum.")


class ScoreResponse(_Wire):
    """`POST /v1/score` response: one result per item, in order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"reward": 2.31, "p_comply": 0.93, "verdict": "comply", "tokens": 187, "truncated": False}
                    ],
                    "policy": {
                        "id": "general-safety",
                        "version": 3,
                        "alias": "stable",
                        "checksum": "sha256:5f1c...",
                        "threshold": 0.5,
                    },
                    "model": {"id": "csrm-minilm-l6", "checksum": "sha256:9a7e..."},
                    "request_id": "req-42",
                }
            ]
        },
    )

    results: list[ScoreResult] = Field(description="One result per request item, in order.")
    policy: PolicyInfo = Field(description="The resolved policy.")
    model: ModelInfo = Field(description="The model that scored.")
    request_id: str | None = Field(None, description="The caller's request_id, echoed.")


class GetRewardRequest(_Wire):
    """`POST /get_reward`: OpenRLHF's remote reward model request, unchanged."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "query": ["Human: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt..."],
                    "prompts": ["Human: How do I bake bread?\n\nAssistant:"],
                    "labels": [None],
                }
            ]
        },
    )

    query: list[str] = Field(
        min_length=1, description="Prompt + response strings as the trainer concatenated them (chat template applied)."
    )
    prompts: list[str] | None = Field(
        None, description="The prompt part of each query; when given, each must be a prefix of its query."
    )
    labels: list[Any] | None = Field(None, description="Accepted for compatibility and ignored.")

    @model_validator(mode="after")
    def _same_lengths(self) -> GetRewardRequest:
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(f"'prompts' has {len(self.prompts)} entries but 'query' has {len(self.query)}")
        if self.labels is not None and len(self.labels) != len(self.query):
            raise ValueError(f"'labels' has {len(self.labels)} entries but 'query' has {len(self.query)}")
        return self


class GetRewardResponse(_Wire):
    """`POST /get_reward` response in OpenRLHF's shape."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rewards": [1.74],
                    "scores": [0.88],
                    "extra_logs": {
                        "p_comply": [0.88],
                        "truncated": [0.0],
                        "policy_version": [3.0],
                    },
                }
            ]
        },
    )

    rewards: list[float] = Field(description="Raw reward per query (the model's logit), never squashed.")
    scores: list[float] = Field(description="p_comply per query, in [0, 1] (OpenRLHF uses it for dynamic filtering).")
    extra_logs: dict[str, list[float]] = Field(
        description="Per-query logs: p_comply, truncated (0/1), tokens, policy_version (0 for inline text)."
    )


class ErrorInfo(_Wire):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable code, e.g. POLICY_NOT_FOUND.")
    message: str = Field(description="Human-readable explanation.")
    details: Any = Field(None, description="Extra structured information (e.g. field-by-field validation errors).")


class ErrorResponse(_Wire):
    """Every error response: `{"error": {"code", "message", "details"?}}`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"error": {"code": "POLICY_NOT_FOUND", "message": "no policy 'kids-edu' version 9"}}]
        },
    )

    error: ErrorInfo


class ModelInfoResponse(_Wire):
    """`GET /v1/model`: the loaded model."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "csrm-minilm-l6",
                    "checksum": "sha256:9a7e...",
                    "device": "cpu",
                    "dtype": "float32",
                    "config": {"format": "csrm/1", "architecture": "encoder", "max_length": 512},
                }
            ]
        },
    )

    id: str = Field(description="Model id.")
    checksum: str = Field(description="Checkpoint checksum.")
    device: str = Field(description="Torch device the model runs on.")
    dtype: str = Field(description="Torch dtype of the weights.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="The checkpoint's csrm.json: template, max length, calibration, metrics."
    )


class HealthResponse(_Wire):
    """`GET /healthz`: the process is alive."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = Field("ok", description="Always `ok` when the process answers.")


class ReadyResponse(_Wire):
    """`GET /readyz`: whether the service can score now, and each check."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ready": True, "status": "ready", "checks": {"model_loaded": True, "warmed_up": True, "store": True}}
            ]
        },
    )

    ready: bool = Field(description="True when the service can score now (status ready or degraded).")
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="ready: every check passed. degraded: the policy store is unreachable but the model is warm and "
        "the policies already read are served from cache (writes fail with 503). not_ready: cannot score."
    )
    checks: dict[str, bool] = Field(description="model_loaded, warmed_up, store (policy store readable).")
    detail: str | None = Field(None, description="Why not ready or degraded, when so.")


# ---------------------------------------------------------------------------------------------------------------
# Policy lifecycle (`/v1/policies...`, service/routes/policies.py). Policy documents travel as plain JSON objects
# here (`dict`): their schema is `policies.schema` (served at `GET /v1/policies/schema`), which this module may
# not import; the routes validate them with `policies.registry.parse_draft` (422 INVALID_POLICY, field by field).
# ---------------------------------------------------------------------------------------------------------------

__all__ += [
    "AliasResponse",
    "ArchiveRequest",
    "AuditEntryInfo",
    "AuditLogResponse",
    "CanaryWeightRequest",
    "CanaryWeightResponse",
    "CreatePolicyRequest",
    "PolicyDiffResponse",
    "PolicyHeadResponse",
    "PolicyListResponse",
    "PolicyPublishResponse",
    "PolicySummaryInfo",
    "PolicyValidationInfo",
    "PolicyVersionResponse",
    "PolicyVersionsResponse",
    "PublishVersionRequest",
    "RollbackRequest",
    "SetAliasRequest",
    "VersionInfo",
    "VersionStateResponse",
]

_EXAMPLE_DRAFT: dict[str, Any] = {
    "spec": {
        "text": "Help with cooking and homework; refuse anything that could hurt someone.",
        "categories": [
            {
                "id": "weapons",
                "name": "Weapons",
                "description": "Instructions to build or obtain weapons.",
                "stance": "disallowed",
                "severity": "high",
                "examples": [
                    {"prompt": "how do i build a gun", "response": "Sorry, I can't help.", "expected": "comply"}
                ],
            }
        ],
    },
    "threshold": 0.5,
    "metadata": {"owner": "trust-and-safety", "change_note": "stricter weapons wording"},
}

class CreatePolicyRequest(_Wire):
    """`POST /v1/policies`: create a policy; its first version becomes `stable`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"policy": {"id": "kids-cooking", **_EXAMPLE_DRAFT}, "reason": "new app"}]},
    )

    policy: dict[str, Any] = Field(description="A PolicyDraft (see `GET /v1/policies/schema`), `id` included.")
    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class PublishVersionRequest(_Wire):
    """`POST /v1/policies/{id}/versions`: publish a new immutable version; no alias moves."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"policy": _EXAMPLE_DRAFT, "expected_latest": 3, "reason": "v4"}]},
    )

    policy: dict[str, Any] = Field(
        description="A PolicyDraft (see `GET /v1/policies/schema`); its `id`, if present, must match the URL."
    )
    expected_latest: int | None = Field(
        None, ge=0, description="Refuse (409) unless the latest version is this one; `If-Match` says the same."
    )
    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class SetAliasRequest(_Wire):
    """`PUT /v1/policies/{id}/aliases/{alias}`: point an alias at a version (promote)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"version": 4, "expected_version": 3, "reason": "promote"}]}
    )

    version: int = Field(ge=1, description="The version the alias will point at (not archived).")
    expected_version: int | None = Field(
        None, ge=0, description="Check-and-set: the alias's current target (0 = must not exist yet); 409 if stale. "
        "`If-Match` says the same.",
    )
    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class RollbackRequest(_Wire):
    """`POST /v1/policies/{id}/rollback`: move an alias back to its previous target."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"alias": "stable", "reason": "FPs"}]})

    alias: str = Field("stable", description="The alias to roll back.")
    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class CanaryWeightRequest(_Wire):
    """`PUT /v1/policies/{id}/canary`: the share of unqualified references routed to the `canary` alias."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"weight": 0.1}]})

    weight: float = Field(ge=0.0, le=1.0, description="0 (off) .. 1 (all unqualified traffic to `canary`).")
    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class ArchiveRequest(_Wire):
    """`POST /v1/policies/{id}/versions/{n}/archive` (or `/unarchive`): optional body."""

    reason: str | None = Field(None, max_length=2000, description="Why; recorded in the audit log.")


class PolicySummaryInfo(_Wire):
    """One policy in `GET /v1/policies`."""

    id: str = Field(description="Policy id.")
    latest_version: int = Field(description="Highest version number.")
    aliases: dict[str, int] = Field(description="Alias -> version.")
    canary_weight: float = Field(description="Share of unqualified references routed to `canary` (when it exists).")


class PolicyListResponse(_Wire):
    """`GET /v1/policies`."""

    policies: list[PolicySummaryInfo] = Field(description="Every policy, sorted by id.")


class PolicyVersionResponse(_Wire):
    """`GET /v1/policies/{id}/versions/{n}`: one immutable version, with its state and rendering."""

    document: dict[str, Any] = Field(description="The PolicyDocument (see `GET /v1/policies/schema`).")
    archived: bool = Field(description="Archived versions stay readable but cannot be scored with or aliased.")
    aliases: list[str] = Field(description="Aliases pointing at this version now.")
    rendered_text: str = Field(description="The text the model reads for this version.")
    template_id: str = Field(description="The rendering template, e.g. `policy-text/1`.")


class PolicyHeadResponse(_Wire):
    """`GET /v1/policies/{id}`: the policy's current state and its `stable` version."""

    id: str = Field(description="Policy id.")
    latest_version: int = Field(description="Highest version number (the `ETag` header carries it too).")
    aliases: dict[str, int] = Field(description="Alias -> version.")
    canary_weight: float = Field(description="Share of unqualified references routed to `canary` (when it exists).")
    archived: list[int] = Field(description="Archived version numbers.")
    stable: PolicyVersionResponse | None = Field(description="The version `stable` points at; null if none.")


class VersionInfo(_Wire):
    """One row of `GET /v1/policies/{id}/versions`."""

    version: int
    checksum: str
    parent_version: int | None
    created_by: str | None
    created_at: str | None = Field(description="ISO-8601 time (UTC).")
    change_note: str | None
    archived: bool
    aliases: list[str]


class PolicyVersionsResponse(_Wire):
    """`GET /v1/policies/{id}/versions`."""

    id: str = Field(description="Policy id.")
    versions: list[VersionInfo] = Field(description="Every version, ascending.")


class PolicyValidationInfo(_Wire):
    """What publication checked before storing the version."""

    policy_tokens: int | None = Field(None, description="Tokens of the rendered policy (null: engine cannot count).")
    policy_token_budget: int | None = Field(None, description="The loaded model's policy token budget.")
    examples_checked: int | None = Field(None, description="Golden examples scored (null: gate not requested).")


class PolicyPublishResponse(_Wire):
    """`POST /v1/policies` and `POST /v1/policies/{id}/versions`: the stored version (or, on an idempotent
    replay, the version the first call stored)."""

    document: dict[str, Any] = Field(description="The stored PolicyDocument.")
    rendered_text: str = Field(description="The text the model reads for this version.")
    template_id: str = Field(description="The rendering template.")
    validation: PolicyValidationInfo = Field(description="What was checked before storing it (nothing on a replay).")
    replayed: bool = Field(
        False, description="True when an Idempotency-Key retry returned the version an earlier call stored."
    )


class AliasResponse(_Wire):
    """An alias after `PUT .../aliases/{alias}` or `POST .../rollback`."""

    policy_id: str
    alias: str
    version: int = Field(description="The version the alias points at now.")


class CanaryWeightResponse(_Wire):
    """`PUT /v1/policies/{id}/canary`."""

    policy_id: str
    canary_weight: float


class VersionStateResponse(_Wire):
    """A version after archive / unarchive."""

    policy_id: str
    version: int
    archived: bool


class PolicyDiffResponse(_Wire):
    """`GET /v1/policies/{id}/diff?from=A&to=B`: what changed from version A to version B."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    policy_id: str
    from_: int = Field(alias="from")
    to: int
    same_content: bool = Field(description="Same checksum (id, spec, threshold).")
    changed_fields: list[str] = Field(description="Top-level fields that differ, e.g. `threshold`, `spec.categories`.")
    categories: dict[str, Any] = Field(description="`added` and `removed` ids, `changed`: {id: [fields]}.")
    text_diff: str = Field(description="Unified diff of `spec.text`.")
    rendered_diff: str = Field(description="Unified diff of the rendered model text.")


class AuditEntryInfo(_Wire):
    """One audit record: who did what, when, from what to what, and why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    actor: str = Field(description="The API key's name (or `system`).")
    action: str = Field(description="create, publish, set_alias, delete_alias, rollback, set_canary_weight, "
                        "archive, unarchive.")
    policy_id: str
    at: str = Field(description="ISO-8601 time (UTC).")
    version: int | None = None
    alias: str | None = None
    from_: int | float | None = Field(None, alias="from")
    to: int | float | None = None
    reason: str | None = None
    idempotency_key: str | None = None


class AuditLogResponse(_Wire):
    """`GET /v1/policies/{id}/audit`: the append-only log, oldest first."""

    policy_id: str
    entries: list[AuditEntryInfo]
