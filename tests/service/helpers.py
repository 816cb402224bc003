"""Helpers for the HTTP tests: serve an app in process, wait for readiness, read metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric_samples", "serve", "wait_ready"]

_READY_POLL_S = 0.02
_READY_GIVE_UP_S = 60.0


@contextlib.asynccontextmanager
async def serve(app: Any, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client that talks to it in process."""
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://csrm.test") as client:
            yield client


async def wait_ready(client: httpx.AsyncClient) -> None:
    """Poll /readyz until it answers 200; fail the test if it never does."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _READY_GIVE_UP_S
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200:
            return
        if loop.time() > give_up:
            pytest.fail(f"/readyz never became ready: {response.text}")
        await asyncio.sleep(_READY_POLL_S)


async def metric_samples(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
