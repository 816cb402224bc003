"""create_app and its lifespan: what is built when, what is on app.state, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.errors import CheckpointError
from policies.store.memory import InMemoryPolicyStore
from service.app import create_app
from service.batcher import DynamicBatcher
from service.engine import TorchEngine
from service.metrics import Metrics
from tests.fakes import FakeEngine
from tests.service.helpers import serve, wait_ready

ITEM = {"prompt": "hello", "response": "hi there"}


def test_create_app_loads_nothing(make_settings: Any) -> None:
    app = create_app(make_settings(model=Path("/does/not/exist")))
    assert not hasattr(app.state, "engine")
    assert not hasattr(app.state, "batcher")
    assert app.state.warmed_up is False


async def test_requests_before_start_up_are_not_ready(make_settings: Any) -> None:
    import httpx

    app = create_app(make_settings(), engine=FakeEngine())
    transport = httpx.ASGITransport(app=app)  # no lifespan: nothing has started
    async with httpx.AsyncClient(transport=transport, base_url="http://csrm.test") as client:
        score = await client.post("/v1/score", json={"items": [ITEM]})
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert score.status_code == 503
    assert score.json()["error"]["code"] == "NOT_READY"
    assert ready.status_code == 503
    assert ready.json()["checks"]["model_loaded"] is False
    assert health.status_code == 200


async def test_lifespan_builds_the_state_and_stops_the_batcher(make_settings: Any) -> None:
    app = create_app(make_settings(warm_up=True), engine=FakeEngine())
    async with serve(app) as client:
        await wait_ready(client)
        assert isinstance(app.state.batcher, DynamicBatcher)
        assert isinstance(app.state.metrics, Metrics)
        assert app.state.batcher.running
        assert app.state.warmed_up is True
        assert (await client.post("/v1/score", json={"items": [ITEM]})).status_code == 200
    assert not app.state.batcher.running


async def test_loads_the_model_and_seeds_a_file_store(
    tiny_encoder_checkpoint: Path, make_settings: Any, tmp_path: Path
) -> None:
    store_dir = tmp_path / "policies"
    settings = make_settings(model=tiny_encoder_checkpoint, store={"url": f"file:{store_dir}"})
    app = create_app(settings)
    async with serve(app) as client:
        assert isinstance(app.state.engine, TorchEngine)
        policies = await app.state.registry.list_policies()
        model = (await client.get("/v1/model")).json()
    assert {p.id for p in policies} >= {"general-safety", "kids-education", "mature-fiction"}
    assert any(store_dir.rglob("*.json")), "the library was not written to the file store"
    assert model["config"]["architecture"] == "encoder"


async def test_an_injected_store_is_seeded_and_left_open(make_settings: Any) -> None:
    store = InMemoryPolicyStore()
    async with serve(create_app(make_settings(), engine=FakeEngine(), store=store)):
        pass
    assert "general-safety" in await store.list_policies()
    await store.close()


async def test_seeding_can_be_turned_off(make_settings: Any) -> None:
    store = InMemoryPolicyStore()
    app = create_app(make_settings(store={"seed_library": False}), engine=FakeEngine(), store=store)
    async with serve(app) as client:
        response = await client.post("/v1/score", json={"items": [ITEM]})
    assert response.status_code == 404
    assert await store.list_policies() == []


async def test_a_missing_checkpoint_fails_start_up(make_settings: Any, tmp_path: Path) -> None:
    app = create_app(make_settings(model=tmp_path / "missing"))
    with pytest.raises(CheckpointError):
        async with serve(app):
            pass


async def test_openapi_documents_requests_and_responses_with_examples(make_settings: Any) -> None:
    async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for name in ("ScoreRequest", "ScoreResponse", "GetRewardRequest", "GetRewardResponse", "ErrorResponse",
                 "ModelInfoResponse", "HealthResponse", "ReadyResponse"):  # fmt: skip
        assert schemas[name].get("examples"), f"{name} has no examples"
    score = spec["paths"]["/v1/score"]["post"]
    assert score["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ScoreRequest")
    for status in ("200", "401", "404", "413", "422", "429", "504"):
        assert status in score["responses"], status
    assert "policy" in {p["name"] for p in spec["paths"]["/get_reward"]["post"]["parameters"]}
    for path in ("/healthz", "/readyz", "/metrics", "/v1/model"):
        assert path in spec["paths"]
