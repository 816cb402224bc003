"""Policy lifecycle routes (`/v1/policies...`): read, create, publish, promote, canary, roll back, archive, audit.

Auth rule:

- `GET /v1/policies/schema` is public (it is the published JSON schema, also in the OpenAPI document).
- Every other `GET` needs an API key of either role, **always** (even when scoring is open because no key
  exists): policy contents, aliases and the audit log are not public.
- Every mutation (`POST`, `PUT`, `DELETE`) needs an `admin` key: 401 without a key or with an unknown one,
  403 with a `score` key. The audit actor is the key's name.

Optimistic concurrency: publish takes `expected_latest` (body) or `If-Match: "N"` (N = the latest version, the
`ETag` of `GET /v1/policies/{id}`); alias moves take `expected_version` or `If-Match` (N = the alias's current
target, 0 = the alias must not exist). A stale one is a 409 `VERSION_CONFLICT`; giving both with different values
is a 422. `Idempotency-Key` on create/publish makes a retry return the version the first call stored.

Publication runs `service.policy_validation`: the rendered policy must fit the model's policy token budget, and
with `?validate=examples` the policy's golden examples must get their expected verdicts from the live model.
Errors are raised, never caught here: `service.errors` turns them into the one JSON error shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response

from policies.registry import STABLE, PolicyRegistry
from policies.render import render_policy
from policies.schema import export_json_schema
from service.auth import Principal, require_role
from service.batcher import DynamicBatcher
from service.deps import check_body_size, get_batcher, get_engine, get_registry
from service.engine import Engine
from service.errors import Unauthorized, ValidationFailed
from service.policy_validation import ValidationReport, build_validator
from service.protocol import (
    AliasResponse,
    ArchiveRequest,
    AuditEntryInfo,
    AuditLogResponse,
    CanaryWeightRequest,
    CanaryWeightResponse,
    CreatePolicyRequest,
    ErrorResponse,
    PolicyDiffResponse,
    PolicyHeadResponse,
    PolicyListResponse,
    PolicyPublishResponse,
    PolicySummaryInfo,
    PolicyValidationInfo,
    PolicyVersionResponse,
    PolicyVersionsResponse,
    PublishVersionRequest,
    RollbackRequest,
    SetAliasRequest,
    VersionInfo,
    VersionStateResponse,
)

if TYPE_CHECKING:
    from policies.schema import PolicyDocument

__all__ = ["POLICY_ERRORS", "build_policies_router", "parse_if_match", "require_reader"]

_E = ErrorResponse
#: Error responses the policy routes document in OpenAPI.
POLICY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": _E, "description": "INVALID_JSON: the body is not valid JSON."},
    401: {"model": _E, "description": "UNAUTHORIZED: no API key, or an unknown one."},
    403: {"model": _E, "description": "FORBIDDEN: a mutation with a key whose role is not `admin`."},
    404: {"model": _E, "description": "POLICY_NOT_FOUND / ALIAS_NOT_FOUND: unknown policy, version or alias."},
    409: {"model": _E, "description": "VERSION_CONFLICT (stale expected version / If-Match, idempotency key reused "
          "with other content, nothing to roll back to), POLICY_EXISTS, VERSION_IN_USE (archive of an aliased "
          "version)."},
    413: {"model": _E, "description": "PAYLOAD_TOO_LARGE: the body is over the configured limit."},
    422: {"model": _E, "description": "INVALID_POLICY: schema errors field by field, over the model's policy token "
          "budget (tokens and budget in details), golden examples disagreeing (listed in details); "
          "VALIDATION_FAILED: malformed request or If-Match."},
    429: {"model": _E, "description": "OVERLOADED: the example gate could not be queued; retry later."},
    503: {"model": _E, "description": "NOT_READY (model still loading) or STORE_UNAVAILABLE."},
}

PolicyId = Annotated[str, Path(description="Policy id (slug).")]
VersionNo = Annotated[int, Path(ge=1, description="Version number.")]
IfMatch = Annotated[
    str | None, Header(description='A version number, optionally quoted (`"3"`); see the expected_* fields.')
]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="A retry with the same key returns the version the first call stored."),
]
ValidateParam = Annotated[
    Literal["examples"] | None,
    Query(description="`examples`: score the policy's golden examples and refuse if any verdict disagrees."),
]


_require_admin = require_role("admin")
_require_any_key = require_role("score")


async def require_reader(principal: Annotated[Principal, Depends(_require_any_key)]) -> Principal:
    """A key of either role, always: unlike scoring, reading policies is never open."""
    if principal.role is None:  # no key exists at all: scoring is open, policy reads are not
        raise Unauthorized("reading policies needs an API key (Authorization: Bearer <key>)")
    return principal


Reader = Annotated[Principal, Depends(require_reader)]
Admin = Annotated[Principal, Depends(_require_admin)]
Registry = Annotated[PolicyRegistry, Depends(get_registry)]


def parse_if_match(value: str | None) -> int | None:
    """The version an `If-Match` header names (`3`, `"3"`, `W/"3"`); None when absent or `*`.

    Raises:
        ValidationFailed: not a version number.
    """
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ValidationFailed(
            f"If-Match must be a version number such as \"3\", not {value!r}",
            details=[{"field": "If-Match", "message": "expected a version number", "type": "if_match"}],
        )
    return int(tag)


def _expected(body_value: int | None, if_match: str | None, field: str) -> int | None:
    header_value = parse_if_match(if_match)
    if body_value is not None and header_value is not None and body_value != header_value:
        raise ValidationFailed(
            f"{field}={body_value} and If-Match {header_value} disagree; send one of them",
            details=[{"field": field, "message": "disagrees with If-Match", "type": "if_match"}],
        )
    return body_value if body_value is not None else header_value


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


async def _version_response(registry: PolicyRegistry, doc: PolicyDocument) -> PolicyVersionResponse:
    head = await registry.head(doc.id)
    rendered = render_policy(doc)
    return PolicyVersionResponse(
        document=doc.model_dump(mode="json"),
        archived=doc.version in head.archived,
        aliases=sorted(a for a, v in head.aliases.items() if v == doc.version),
        rendered_text=rendered.text,
        template_id=rendered.template_id,
    )


def _published(doc: PolicyDocument, report: ValidationReport, response: Response) -> PolicyPublishResponse:
    rendered = render_policy(doc)
    _etag(response, doc.version)
    response.headers["Location"] = f"/v1/policies/{doc.id}/versions/{doc.version}"
    return PolicyPublishResponse(
        document=doc.model_dump(mode="json"),
        rendered_text=rendered.text,
        template_id=rendered.template_id,
        validation=PolicyValidationInfo(
            policy_tokens=report.policy_tokens,
            policy_token_budget=report.policy_token_budget,
            examples_checked=report.examples_checked,
        ),
        replayed=report.is_replay(doc),
    )


def build_policies_router() -> APIRouter:
    """The router of every `/v1/policies` endpoint (see the module docstring for the auth rule)."""
    router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=POLICY_ERRORS)
    schema = export_json_schema()
    write = [Depends(check_body_size)]

    @router.get("/schema", summary="Policy JSON schema", response_model=None)
    async def get_schema() -> dict[str, Any]:
        """The JSON schema of a stored `PolicyDocument` and of a `PolicyDraft` to publish (no key needed)."""
        return schema

    @router.get("", response_model=PolicyListResponse, summary="List policies")
    async def list_policies(_: Reader, registry: Registry) -> PolicyListResponse:
        """Every policy with its latest version, aliases and canary weight."""
        rows = await registry.list_policies()
        return PolicyListResponse(policies=[
            PolicySummaryInfo(id=r.id, latest_version=r.latest_version, aliases=dict(r.aliases),
                              canary_weight=r.canary_weight)
            for r in rows
        ])  # fmt: skip

    @router.post("", response_model=PolicyPublishResponse, status_code=201, summary="Create a policy",
                 dependencies=write)  # fmt: skip
    async def create_policy(
        body: CreatePolicyRequest,
        response: Response,
        principal: Admin,
        registry: Registry,
        engine: Annotated[Engine, Depends(get_engine)],
        batcher: Annotated[DynamicBatcher, Depends(get_batcher)],
        idempotency_key: IdempotencyKey = None,
        validate: ValidateParam = None,
    ) -> PolicyPublishResponse:
        """Create a policy from a draft that names its `id`: version 1, with `stable` pointing at it."""
        report = ValidationReport()
        doc = await registry.create_policy(
            body.policy, actor=principal.name, idempotency_key=idempotency_key, reason=body.reason,
            validate=build_validator(engine, batcher, examples=validate == "examples", report=report),
        )  # fmt: skip
        return _published(doc, report, response)

    @router.get("/{policy_id}", response_model=PolicyHeadResponse, summary="Show a policy")
    async def get_policy(policy_id: PolicyId, response: Response, _: Reader, registry: Registry) -> PolicyHeadResponse:
        """Aliases, canary weight, latest version (also the `ETag`), archived versions and the `stable` version."""
        head = await registry.head(policy_id)
        stable = None
        if STABLE in head.aliases:
            stable = await _version_response(registry, await registry.get(policy_id, head.aliases[STABLE]))
        _etag(response, head.latest_version)
        return PolicyHeadResponse(
            id=policy_id,
            latest_version=head.latest_version,
            aliases=dict(head.aliases),
            canary_weight=head.canary_weight,
            archived=sorted(head.archived),
            stable=stable,
        )

    @router.get("/{policy_id}/versions", response_model=PolicyVersionsResponse, summary="List versions")
    async def list_versions(policy_id: PolicyId, _: Reader, registry: Registry) -> PolicyVersionsResponse:
        """Every version, ascending, with its archive state and the aliases pointing at it."""
        rows = await registry.versions(policy_id)
        return PolicyVersionsResponse(id=policy_id, versions=[
            VersionInfo(version=r.version, checksum=r.checksum, parent_version=r.parent_version,
                        created_by=r.created_by, created_at=None if r.created_at is None else r.created_at.isoformat(),
                        change_note=r.change_note, archived=r.archived, aliases=list(r.aliases))
            for r in rows
        ])  # fmt: skip

    @router.get("/{policy_id}/versions/{version}", response_model=PolicyVersionResponse, summary="Show a version")
    async def get_version(
        policy_id: PolicyId, version: VersionNo, _: Reader, registry: Registry
    ) -> PolicyVersionResponse:
        """One immutable version (archived ones included), with the text the model reads."""
        return await _version_response(registry, await registry.get(policy_id, version))

    @router.post("/{policy_id}/versions", response_model=PolicyPublishResponse, status_code=201,
                 summary="Publish a version", dependencies=write)  # fmt: skip
    async def publish(
        policy_id: PolicyId,
        body: PublishVersionRequest,
        response: Response,
        principal: Admin,
        registry: Registry,
        engine: Annotated[Engine, Depends(get_engine)],
        batcher: Annotated[DynamicBatcher, Depends(get_batcher)],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
        validate: ValidateParam = None,
    ) -> PolicyPublishResponse:
        """Publish a new immutable version (latest + 1); no alias moves (promote with `PUT .../aliases/{alias}`)."""
        expected = _expected(body.expected_latest, if_match, "expected_latest")
        report = ValidationReport()
        doc = await registry.publish(
            policy_id, body.policy, actor=principal.name, expected_latest=expected, idempotency_key=idempotency_key,
            reason=body.reason, validate=build_validator(engine, batcher, examples=validate == "examples",
                                                         report=report),
        )  # fmt: skip
        return _published(doc, report, response)

    @router.put("/{policy_id}/aliases/{alias}", response_model=AliasResponse, summary="Point an alias at a version",
                dependencies=write)  # fmt: skip
    async def set_alias(
        policy_id: PolicyId, alias: str, body: SetAliasRequest, principal: Admin, registry: Registry,
        if_match: IfMatch = None,
    ) -> AliasResponse:  # fmt: skip
        """Promote: point `alias` (`stable`, `canary` or any name) at a version; new requests see it at once."""
        expected = _expected(body.expected_version, if_match, "expected_version")
        await registry.set_alias(policy_id, alias, body.version, actor=principal.name, expected_version=expected,
                                 reason=body.reason)  # fmt: skip
        return AliasResponse(policy_id=policy_id, alias=alias, version=body.version)

    @router.delete("/{policy_id}/aliases/{alias}", status_code=204, summary="Remove an alias")
    async def delete_alias(
        policy_id: PolicyId, alias: str, principal: Admin, registry: Registry, if_match: IfMatch = None,
        reason: Annotated[str | None, Query(max_length=2000, description="Recorded in the audit log.")] = None,
    ) -> Response:  # fmt: skip
        """Remove an alias (with `If-Match`, only if it still points at that version)."""
        await registry.delete_alias(policy_id, alias, actor=principal.name, expected_version=parse_if_match(if_match),
                                    reason=reason)  # fmt: skip
        return Response(status_code=204)

    @router.post("/{policy_id}/rollback", response_model=AliasResponse, summary="Roll an alias back",
                 dependencies=write)  # fmt: skip
    async def rollback(
        policy_id: PolicyId, principal: Admin, registry: Registry,
        body: Annotated[RollbackRequest | None, Body()] = None,
    ) -> AliasResponse:  # fmt: skip
        """Move an alias (default `stable`) back to the target it had before; repeated calls walk further back."""
        body = body or RollbackRequest()
        version = await registry.rollback(policy_id, actor=principal.name, alias=body.alias, reason=body.reason)
        return AliasResponse(policy_id=policy_id, alias=body.alias, version=version)

    @router.put("/{policy_id}/canary", response_model=CanaryWeightResponse, summary="Set the canary weight",
                dependencies=write)  # fmt: skip
    async def set_canary(
        policy_id: PolicyId, body: CanaryWeightRequest, principal: Admin, registry: Registry
    ) -> CanaryWeightResponse:
        """Share of unqualified references (`id`) scored with `canary` instead of `stable`, while `canary` exists.

        Deterministic per `request_id` when the score request gives one.
        """
        await registry.set_canary_weight(policy_id, body.weight, actor=principal.name, reason=body.reason)
        return CanaryWeightResponse(policy_id=policy_id, canary_weight=body.weight)

    async def _archive(policy_id: str, version: int, archived: bool, principal: Principal,
                       registry: PolicyRegistry, body: ArchiveRequest | None) -> VersionStateResponse:  # fmt: skip
        reason = body.reason if body is not None else None
        verb = registry.archive if archived else registry.unarchive
        await verb(policy_id, version, actor=principal.name, reason=reason)
        return VersionStateResponse(policy_id=policy_id, version=version, archived=archived)

    @router.post("/{policy_id}/versions/{version}/archive", response_model=VersionStateResponse,
                 summary="Archive a version", dependencies=write)  # fmt: skip
    async def archive(
        policy_id: PolicyId, version: VersionNo, principal: Admin, registry: Registry,
        body: Annotated[ArchiveRequest | None, Body()] = None,
    ) -> VersionStateResponse:  # fmt: skip
        """Archive a version: still readable, no longer scorable; refused (409) while an alias points at it."""
        return await _archive(policy_id, version, True, principal, registry, body)

    @router.post("/{policy_id}/versions/{version}/unarchive", response_model=VersionStateResponse,
                 summary="Unarchive a version", dependencies=write)  # fmt: skip
    async def unarchive(
        policy_id: PolicyId, version: VersionNo, principal: Admin, registry: Registry,
        body: Annotated[ArchiveRequest | None, Body()] = None,
    ) -> VersionStateResponse:  # fmt: skip
        """Undo an archive."""
        return await _archive(policy_id, version, False, principal, registry, body)

    @router.get("/{policy_id}/diff", response_model=PolicyDiffResponse, summary="Diff two versions")
    async def diff(
        policy_id: PolicyId, _: Reader, registry: Registry,
        from_: Annotated[int, Query(alias="from", ge=1, description="The older version.")],
        to: Annotated[int, Query(ge=1, description="The newer version.")],
    ) -> PolicyDiffResponse:  # fmt: skip
        """Changed fields, categories added/removed/changed, and unified diffs of the text and the rendering."""
        return PolicyDiffResponse.model_validate(await registry.diff(policy_id, from_, to))

    @router.get("/{policy_id}/audit", response_model=AuditLogResponse, summary="Audit log")
    async def audit(policy_id: PolicyId, _: Reader, registry: Registry) -> AuditLogResponse:
        """Who did what to the policy, when, from what to what, and why; oldest first."""
        entries = await registry.audit(policy_id)
        return AuditLogResponse(
            policy_id=policy_id, entries=[AuditEntryInfo.model_validate(e.to_dict()) for e in entries]
        )

    return router

