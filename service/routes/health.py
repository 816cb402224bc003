"""Operational routes: `/healthz`, `/readyz`, `/metrics` and `GET /v1/model`.

None of them touches the batcher queue: `/healthz` answers from the event loop alone, so it stays fast while the
engine is busy or blocked; `/readyz` reads flags the lifespan sets and pings the policy store with a timeout.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import get_engine, get_metrics
from service.protocol import ErrorResponse, HealthResponse, ModelInfoResponse, ReadyResponse

__all__ = ["STORE_PING_TIMEOUT_S", "build_health_router"]

STORE_PING_TIMEOUT_S = 2.0


async def _store_ok(request: Request) -> tuple[bool, str | None]:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        return False, "policy store not opened"
    try:
        await asyncio.wait_for(registry.store.ping(), STORE_PING_TIMEOUT_S)
    except TimeoutError:
        return False, f"policy store did not answer within {STORE_PING_TIMEOUT_S} s"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        return False, f"policy store unreachable: {exc}"
    return True, None


def build_health_router() -> APIRouter:
    """The router of `/healthz`, `/readyz`, `/metrics` and `GET /v1/model` (no API key needed)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=HealthResponse, summary="Liveness")
    async def healthz() -> HealthResponse:
        """The process is alive and its event loop answers. Never waits on the model or the queue."""
        return HealthResponse()

    @router.get(
        "/readyz",
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "Not ready; `checks` says which check failed."}},
        summary="Readiness",
    )
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the model is loaded, the warm-up batch has run and the policy store answers a ping.

        Degraded (still 200) when only the store fails but policies were already read: scoring goes on from the
        registry's cache, so a load balancer should keep sending traffic. 503 otherwise.
        """
        state = request.app.state
        store_ok, store_detail = await _store_ok(request)
        checks = {
            "model_loaded": getattr(state, "engine", None) is not None,
            "warmed_up": bool(getattr(state, "warmed_up", False)),
            "store": store_ok,
        }
        registry = getattr(state, "registry", None)
        serves_from_cache = registry is not None and registry.has_known_state
        if all(checks.values()):
            status = "ready"
        elif checks["model_loaded"] and checks["warmed_up"] and serves_from_cache:
            status = "degraded"
        else:
            status = "not_ready"
        detail = None
        if status != "ready":
            reasons = [name for name, ok in checks.items() if not ok]
            detail = store_detail or getattr(state, "startup_error", None) or f"waiting for: {', '.join(reasons)}"
        body = ReadyResponse(ready=status != "not_ready", status=status, checks=checks, detail=detail)
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if status == "not_ready" else 200)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        """Every service metric in the Prometheus text format."""
        registry = get_metrics(request).registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/v1/model",
        response_model=ModelInfoResponse,
        responses={503: {"model": ErrorResponse, "description": "NOT_READY: the model is still loading."}},
        summary="The loaded model",
    )
    async def model_info(request: Request) -> ModelInfoResponse:
        """Id, checksum, device, dtype and checkpoint configuration (csrm.json) of the loaded model."""
        engine = get_engine(request)
        return ModelInfoResponse(
            id=engine.model_id,
            checksum=engine.checksum,
            device=engine.device,
            dtype=engine.dtype,
            config=engine.describe(),
        )

    return router
