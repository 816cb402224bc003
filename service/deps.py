"""Small FastAPI dependencies that reach what the lifespan put on `app.state`.

FastAPI reads their signatures at run time, so `Request` is imported for real, not under TYPE_CHECKING.

Routes declare these instead of touching `app.state` themselves, so a test can mount one router on a fresh app
and override any of them (`app.dependency_overrides`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from service.errors import NotReady, PayloadTooLarge

if TYPE_CHECKING:
    from policies.registry import PolicyRegistry
    from service.batcher import DynamicBatcher
    from service.engine import Engine
    from service.metrics import Metrics
    from service.settings import Settings

__all__ = [
    "check_body_size",
    "get_batcher",
    "get_engine",
    "get_metrics",
    "get_registry",
    "get_settings",
]


def _state(request: Request, name: str) -> object:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise NotReady(f"the service is still starting ({name} not ready)")
    return value


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_engine(request: Request) -> Engine:
    """The loaded engine; `NotReady` (503) while it is loading."""
    return _state(request, "engine")  # type: ignore[return-value]


def get_batcher(request: Request) -> DynamicBatcher:
    """The running batcher; `NotReady` (503) before it starts."""
    return _state(request, "batcher")  # type: ignore[return-value]


def get_registry(request: Request) -> PolicyRegistry:
    """The policy registry over the store; `NotReady` (503) before the store is open."""
    return _state(request, "registry")  # type: ignore[return-value]


def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return _state(request, "metrics")  # type: ignore[return-value]


def check_body_size(request: Request) -> None:
    """Refuse (413) a body whose Content-Length exceeds `limits.max_body_bytes`, before reading it."""
    length = request.headers.get("content-length")
    limit = get_settings(request).limits.max_body_bytes
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(
            f"request body of {length} bytes exceeds the limit of {limit} bytes",
            details={"limit": "max_body_bytes", "max": limit, "actual": int(length)},
        )
