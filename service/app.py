"""`create_app(settings)`: the FastAPI application and its lifespan.

The lifespan builds, in order, and puts on `app.state`:

1. `metrics`: `Metrics` on a fresh `CollectorRegistry` (every app starts at zero);
2. `registry`: a `PolicyRegistry` over the store (`open_store(settings.store.url)` unless one is injected), with
   the bundled library seeded as version 1 when the store lacks it;
3. `engine`: `TorchEngine(load_checkpoint(settings.model or the bundled default))` unless one is injected; the
   checkpoint loads on a worker thread;
4. `batcher`: a started `DynamicBatcher` over the engine;
5. a background warm-up batch on the engine thread; `warmed_up` turns True when it is done, and `/readyz` with it.

At shutdown the batcher drains and stops, the registry stops listening to the store, and the store is closed
(only if the app opened it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from policies.errors import StoreUnavailable
from policies.registry import PolicyRegistry, seed_library
from policies.store.base import open_store
from service.auth import ApiKeyStore
from service.batcher import BatcherConfig, DynamicBatcher
from service.engine import Engine, TorchEngine
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.routes.health import build_health_router
from service.routes.policies import build_policies_router
from service.routes.score import build_score_router

if TYPE_CHECKING:
    from policies.store.base import PolicyStore
    from service.settings import Settings

__all__ = ["create_app", "load_engine"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """Scores LLM responses with a Configurable Safety Reward Model under a safety policy.

* `POST /v1/score`: reward (raw logit), calibrated `p_comply` and `verdict` per item, for product backends.
* `POST /get_reward`: OpenRLHF's remote reward model contract, for RLHF training.
* `/v1/policies...`: policy lifecycle (publish, promote, canary, roll back, archive, audit; admin key).
* `/healthz`, `/readyz`, `/metrics`, `GET /v1/model`: operations.

Errors are always `{"error": {"code": ..., "message": ..., "details": ...}}`.
"""


def _package_version() -> str:
    try:
        return version("csrm-serve")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def load_engine(settings: Settings) -> Engine:
    """Load the checkpoint `settings.model` names (the bundled default when unset) into a `TorchEngine`.

    Blocking (reads weights); call it on a worker thread from async code.

    Raises:
        models.errors.CheckpointError: The checkpoint is missing or invalid.
    """
    from models.checkpoint import default_checkpoint_path, load_checkpoint
    from models.quantize import quantize_model

    path = settings.model if settings.model is not None else default_checkpoint_path()
    model = quantize_model(load_checkpoint(path, device=settings.device, dtype=settings.dtype), settings.quantize)
    logger.info("loaded model %s (%s) from %s on %s", model.model_id, model.checksum[:12], path, model.device)
    return TorchEngine(model)


async def _open_registry(app: FastAPI, settings: Settings, store: PolicyStore) -> PolicyRegistry:
    registry = PolicyRegistry(store)
    if settings.store.seed_library:
        try:
            created = await seed_library(registry)
        except StoreUnavailable as exc:  # start anyway: /readyz reports the store, and it may come back
            logger.error("policy store unavailable at start-up, library not seeded: %s", exc)
            app.state.startup_error = f"policy store unavailable at start-up: {exc}"
        else:
            if created:
                logger.info("seeded policies from the bundled library: %s", ", ".join(created))
    return registry


async def _warm_up(app: FastAPI, batcher: DynamicBatcher) -> None:
    try:
        await batcher.warm_up()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the service keeps running, not ready, and says why
        logger.exception("warm-up batch failed")
        app.state.startup_error = f"warm-up batch failed: {exc!r}"
        return
    app.state.warmed_up = True
    logger.info("warm-up done; ready")


@contextlib.asynccontextmanager
async def _lifespan(
    app: FastAPI, settings: Settings, engine: Engine | None, store: PolicyStore | None
) -> AsyncIterator[None]:
    app.state.metrics = Metrics(CollectorRegistry())
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = open_store(settings.store.url)
            stack.push_async_callback(store.close)
        registry = await _open_registry(app, settings, store)
        stack.callback(registry.close)
        app.state.registry = registry

        if engine is None:
            engine = await anyio.to_thread.run_sync(load_engine, settings)
        app.state.engine = engine

        batcher = DynamicBatcher(engine, BatcherConfig(**settings.batcher.model_dump()), app.state.metrics)
        await batcher.start()
        stack.push_async_callback(batcher.stop)
        app.state.batcher = batcher

        if settings.warm_up:
            warm = asyncio.create_task(_warm_up(app, batcher), name="csrm-warm-up")
            stack.callback(warm.cancel)
        else:
            app.state.warmed_up = True
        yield


def create_app(settings: Settings, *, engine: Engine | None = None, store: PolicyStore | None = None) -> FastAPI:
    """Build the application. Nothing is loaded until the lifespan starts (uvicorn, or `LifespanManager` in tests).

    Args:
        settings: Every knob; see `service.settings.Settings`.
        engine: An engine to use instead of loading `settings.model` (tests pass a `FakeEngine`).
        store: A policy store to use instead of opening `settings.store.url`; the caller keeps ownership and
            closes it.

    Returns:
        The FastAPI app with the scoring and operations routes and the JSON error handlers installed.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _lifespan(app, settings, engine, store):
            yield

    app = FastAPI(
        title="csrm-serve",
        version=_package_version(),
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = ApiKeyStore(settings.auth.keys_file)
    app.state.warmed_up = False
    app.state.startup_error = None
    install_error_handlers(app)
    app.include_router(build_score_router())
    app.include_router(build_health_router())
    app.include_router(build_policies_router())
    return app
