"""Scoring routes: `POST /v1/score` (product backends) and `POST /get_reward` (OpenRLHF's remote reward model).

Both go the same way: check limits, resolve the policy, tokenize on the batcher's tokenizer pool, submit the
items to the batcher, and answer with per-stage timing headers (`x-tokenization-time`, `x-queue-time`,
`x-inference-time`, `x-total-time`, in ms). While the items wait, the route watches the connection: a client that
goes away cancels its items, and the batcher drops them before compute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response

from models.types import Message, ScoreInput
from policies.registry import PolicyRegistry
from service.auth import require_role
from service.batcher import DynamicBatcher
from service.deps import check_body_size, get_batcher, get_engine, get_metrics, get_registry, get_settings
from service.engine import Engine
from service.errors import RequestCancelled
from service.limits import check_get_reward_limits, check_score_limits
from service.metrics import Metrics, RequestTimings
from service.openrlhf import split_query
from service.protocol import (
    ErrorResponse,
    GetRewardRequest,
    GetRewardResponse,
    Lane,
    MessageItem,
    ModelInfo,
    PolicyInfo,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
    Verdict,
)
from service.settings import Settings

if TYPE_CHECKING:
    from service.batcher import ScoredItem

__all__ = ["SCORE_ERRORS", "build_score_router", "verdict"]

T = TypeVar("T")

#: Error responses the scoring routes document in OpenAPI.
SCORE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "INVALID_JSON: the body is not valid JSON."},
    401: {"model": ErrorResponse, "description": "UNAUTHORIZED: an API key is needed (some key exists) or unknown."},
    404: {"model": ErrorResponse, "description": "POLICY_NOT_FOUND / ALIAS_NOT_FOUND: unknown policy, version, alias."},
    413: {"model": ErrorResponse, "description": "PAYLOAD_TOO_LARGE: too many items, or a text field too long."},
    422: {
        "model": ErrorResponse,
        "description": "VALIDATION_FAILED (field-by-field details), INPUT_TOO_LONG (policy over the model's budget), "
        "INVALID_INPUT, INVALID_POLICY (malformed reference).",
    },
    429: {"model": ErrorResponse, "description": "OVERLOADED: the queue is full; retry after Retry-After seconds."},
    500: {"model": ErrorResponse, "description": "INFERENCE_FAILED: the model failed on this request's batch."},
    503: {"model": ErrorResponse, "description": "NOT_READY, SHUTTING_DOWN or STORE_UNAVAILABLE."},
    504: {"model": ErrorResponse, "description": "DEADLINE_EXCEEDED: deadline_ms passed before the items were scored."},
}


def verdict(p_comply: float, threshold: float) -> Verdict:
    """The verdict rule everywhere: comply iff p_comply >= threshold."""
    return "comply" if p_comply >= threshold else "violate"


@dataclass(frozen=True, slots=True)
class _Policy:
    info: PolicyInfo
    text: str


async def _resolve_policy(
    registry: PolicyRegistry, engine: Engine, settings: Settings, ref: str | None, text: str | None,
    request_id: str | None,
) -> _Policy:  # fmt: skip
    if text is not None:
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return _Policy(PolicyInfo(checksum=checksum, threshold=engine.default_threshold), text)
    resolved = await registry.resolve(ref or settings.default_policy, request_id)
    info = PolicyInfo(
        id=resolved.id,
        version=resolved.version,
        alias=resolved.alias,
        checksum=resolved.checksum,
        threshold=resolved.threshold,
    )
    return _Policy(info, resolved.text)


def _to_input(policy_text: str, item: Any) -> ScoreInput:
    if isinstance(item, MessageItem):
        messages = tuple(Message(role=m.role, content=m.content) for m in item.messages)
    else:
        messages = (Message(role="user", content=item.prompt), Message(role="assistant", content=item.response))
    return ScoreInput(policy_text=policy_text, messages=messages)


async def _until_disconnected(request: Request) -> None:
    """Return when the client has gone away (the ASGI server sends `http.disconnect`)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (so the batcher drops its items) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise RequestCancelled("the client disconnected before its items were scored")
    return task.result()


async def _run(
    request: Request, batcher: DynamicBatcher, inputs: Sequence[ScoreInput], lane: Lane, deadline_ms: float | None,
    started: float,
) -> tuple[list[ScoredItem], RequestTimings]:  # fmt: skip
    deadline = None if deadline_ms is None else time.monotonic() + deadline_ms / 1000

    async def work() -> tuple[list[ScoredItem], float]:
        t0 = time.perf_counter()
        encoded = await batcher.encode(inputs)
        tokenization_s = time.perf_counter() - t0
        return await batcher.submit_many(encoded, lane=lane, deadline=deadline), tokenization_s

    scored, tokenization_s = await _unless_disconnected(request, work())
    timings = RequestTimings(
        total_s=time.perf_counter() - started,
        tokenization_s=tokenization_s,
        queue_s=max((s.queue_s for s in scored), default=0.0),
        inference_s=max((s.inference_s for s in scored), default=0.0),
    )
    return scored, timings


def _finish(response: Response, metrics: Metrics, endpoint: str, timings: RequestTimings, policy: PolicyInfo,
            verdicts: Sequence[str]) -> None:  # fmt: skip
    response.headers.update(timings.headers())
    metrics.record_request(endpoint, timings)
    for v in verdicts:
        metrics.record_verdict(policy.id or "inline", "" if policy.version is None else policy.version, v)


def build_score_router() -> APIRouter:
    """The router of `POST /v1/score` and `POST /get_reward`; both need a `score` key whenever any key exists."""
    router = APIRouter(tags=["scoring"], dependencies=[Depends(check_body_size), Depends(require_role("score"))])

    @router.post("/v1/score", response_model=ScoreResponse, responses=SCORE_ERRORS, summary="Score items")
    async def score(
        body: ScoreRequest,
        request: Request,
        response: Response,
        batcher: Annotated[DynamicBatcher, Depends(get_batcher)],
        engine: Annotated[Engine, Depends(get_engine)],
        registry: Annotated[PolicyRegistry, Depends(get_registry)],
        metrics: Annotated[Metrics, Depends(get_metrics)],
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> ScoreResponse:
        """Score each item under one policy: reward (raw logit), calibrated p_comply, verdict, tokens, truncated.

        The policy is `policy` (`id`, `id@N`, `id:alias`), or inline `policy_text`, or the default policy.
        """
        started = time.perf_counter()
        check_score_limits(body, settings.limits)
        policy = await _resolve_policy(registry, engine, settings, body.policy, body.policy_text, body.request_id)
        inputs = [_to_input(policy.text, item) for item in body.items]
        scored, timings = await _run(request, batcher, inputs, body.lane, body.deadline_ms, started)
        results = [
            ScoreResult(
                reward=s.score.reward,
                p_comply=s.score.p_comply,
                verdict=verdict(s.score.p_comply, policy.info.threshold),
                tokens=s.score.tokens,
                truncated=s.score.truncated,
            )
            for s in scored
        ]
        _finish(response, metrics, "/v1/score", timings, policy.info, [r.verdict for r in results])
        return ScoreResponse(
            results=results,
            policy=policy.info,
            model=ModelInfo(id=engine.model_id, checksum=engine.checksum),
            request_id=body.request_id,
        )

    @router.post(
        "/get_reward", response_model=GetRewardResponse, responses=SCORE_ERRORS, summary="OpenRLHF remote reward"
    )
    async def get_reward(
        body: GetRewardRequest,
        request: Request,
        response: Response,
        batcher: Annotated[DynamicBatcher, Depends(get_batcher)],
        engine: Annotated[Engine, Depends(get_engine)],
        registry: Annotated[PolicyRegistry, Depends(get_registry)],
        metrics: Annotated[Metrics, Depends(get_metrics)],
        settings: Annotated[Settings, Depends(get_settings)],
        policy: Annotated[str | None, Query(description="Policy reference; the default policy when absent.")] = None,
        lane: Annotated[Lane, Query(description="Batcher lane; bulk by default.")] = "bulk",
    ) -> GetRewardResponse:
        """OpenRLHF's remote reward model contract: `{query, prompts?, labels?}` -> `{rewards, scores, extra_logs}`.

        `rewards` are the raw rewards, `scores` the calibrated p_comply in [0, 1] (what OpenRLHF's dynamic
        filtering expects), `extra_logs` per-query p_comply, truncated (0/1), tokens and policy_version. Each query
        is split into a conversation as `service.openrlhf.split_query` documents.
        """
        started = time.perf_counter()
        check_get_reward_limits(body, settings.limits)
        resolved = await _resolve_policy(registry, engine, settings, policy, None, None)
        prompts: Sequence[str | None] = body.prompts or [None] * len(body.query)
        inputs = [
            ScoreInput(policy_text=resolved.text, messages=split_query(q, p))
            for q, p in zip(body.query, prompts, strict=True)
        ]
        scored, timings = await _run(request, batcher, inputs, lane, None, started)
        threshold = resolved.info.threshold
        _finish(response, metrics, "/get_reward", timings, resolved.info,
                [verdict(s.score.p_comply, threshold) for s in scored])  # fmt: skip
        version = float(resolved.info.version or 0)
        return GetRewardResponse(
            rewards=[s.score.reward for s in scored],
            scores=[s.score.p_comply for s in scored],
            extra_logs={
                "p_comply": [s.score.p_comply for s in scored],
                "truncated": [float(s.score.truncated) for s in scored],
                "tokens": [float(s.score.tokens) for s in scored],
                "policy_version": [version] * len(scored),
            },
        )

    return router
