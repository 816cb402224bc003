"""/healthz, /readyz, /metrics and GET /v1/model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio

from policies.errors import StoreUnavailable
from policies.store.memory import InMemoryPolicyStore
from service.app import create_app
from tests.fakes import FakeEngine
from tests.service.helpers import metric_samples, serve, wait_ready

ITEM = {"prompt": "how do i bake a cake", "response": "mix flour and sugar"}

NAMED_SERIES = (
    "csrm_request_duration_seconds",
    "csrm_request_tokenization_duration_seconds",
    "csrm_request_queue_duration_seconds",
    "csrm_request_inference_duration_seconds",
    "csrm_batch_size",
    "csrm_batch_tokens",
    "csrm_batch_padding_ratio",
    "csrm_queue_size",
    "csrm_queue_tokens",
    "csrm_request_failures_total",
    "csrm_verdicts_total",
)


class UnreachableStore(InMemoryPolicyStore):
    """A store that was seeded but whose backend no longer answers."""

    reachable = True

    async def ping(self) -> None:
        if not self.reachable:
            raise StoreUnavailable("connection refused")


async def test_healthz_answers_while_the_engine_is_blocked(make_settings: Any) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    async with serve(create_app(make_settings(), engine=engine)) as client:
        scoring = asyncio.create_task(client.post("/v1/score", json={"items": [ITEM]}))
        assert await anyio.to_thread.run_sync(engine.entered.wait, 30)
        queued = asyncio.create_task(client.post("/v1/score", json={"items": [ITEM]}))
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        gate.set()
        assert (await scoring).status_code == 200
        assert (await queued).status_code == 200
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200


async def test_readyz_is_false_until_warm_up_is_done(make_settings: Any) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    async with serve(create_app(make_settings(warm_up=True), engine=engine)) as client:
        assert await anyio.to_thread.run_sync(engine.entered.wait, 30)  # the warm-up batch is in the engine
        before = await client.get("/readyz")
        health = await client.get("/healthz")
        gate.set()
        await wait_ready(client)
        after = await client.get("/readyz")
    assert before.status_code == 503
    assert before.json()["ready"] is False
    assert before.json()["checks"] == {"model_loaded": True, "warmed_up": False, "store": True}
    assert "warmed_up" in before.json()["detail"]
    assert health.status_code == 200
    assert after.json() == {"ready": True, "status": "ready",
                            "checks": {"model_loaded": True, "warmed_up": True, "store": True},
                            "detail": None}  # fmt: skip


async def test_readyz_reports_a_failed_warm_up(make_settings: Any) -> None:
    engine = FakeEngine(fail_on_calls={0})
    async with serve(create_app(make_settings(warm_up=True), engine=engine)) as client:
        for _ in range(2000):
            ready = await client.get("/readyz")
            if ready.json()["detail"] and "warm-up" in ready.json()["detail"]:
                break
            await asyncio.sleep(0.005)
    assert ready.status_code == 503
    assert "warm-up batch failed" in ready.json()["detail"]


async def test_readyz_is_false_with_an_unreachable_store_never_read(make_settings: Any) -> None:
    store = UnreachableStore()
    async with serve(create_app(make_settings(), engine=FakeEngine(), store=store)) as client:
        await wait_ready(client)
        store.reachable = False
        down = await client.get("/readyz")
        store.reachable = True
        up = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "not_ready"
    assert down.json()["checks"]["store"] is False
    assert "connection refused" in down.json()["detail"]
    assert up.status_code == 200


async def test_readyz_is_degraded_when_the_store_fails_after_policies_were_read(make_settings: Any) -> None:
    store = UnreachableStore()
    async with serve(create_app(make_settings(), engine=FakeEngine(), store=store)) as client:
        await wait_ready(client)
        assert (await client.post("/v1/score", json={"items": [ITEM]})).status_code == 200
        store.reachable = False
        degraded = await client.get("/readyz")
        store.reachable = True
        up = await client.get("/readyz")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["ready"] is True
    assert degraded.json()["checks"]["store"] is False
    assert "connection refused" in degraded.json()["detail"]
    assert up.json()["status"] == "ready"


async def test_metrics_expose_the_named_series(make_settings: Any) -> None:
    async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
        assert (await client.post("/v1/score", json={"items": [ITEM, ITEM]})).status_code == 200
        response = await client.get("/metrics")
        samples = await metric_samples(client)
    assert response.headers["content-type"].startswith("text/plain")
    for name in NAMED_SERIES:
        assert f"# TYPE {name.removesuffix('_total')}" in response.text, name
    assert samples[("csrm_request_duration_seconds_count", (("endpoint", "/v1/score"),))] == 1
    assert samples[("csrm_batch_size_sum", ())] == 2
    for reason in ("validation", "unauthorized", "overloaded", "inference", "dropped", "store", "deadline"):
        assert ("csrm_request_failures_total", (("reason", reason),)) in samples


async def test_every_app_starts_with_fresh_metrics(make_settings: Any) -> None:
    for _ in range(2):
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            await client.post("/v1/score", json={"items": [ITEM]})
            samples = await metric_samples(client)
        assert samples[("csrm_request_duration_seconds_count", (("endpoint", "/v1/score"),))] == 1


async def test_model_info_with_a_fake_engine(make_settings: Any) -> None:
    async with serve(create_app(make_settings(), engine=FakeEngine(model_id="m", checksum="c"))) as client:
        response = await client.get("/v1/model")
    assert response.status_code == 200
    assert response.json()["id"] == "m"
    assert response.json()["checksum"] == "c"


async def test_model_info_with_a_real_checkpoint(
    tiny_decoder_checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any
) -> None:
    app = create_app(real_app_settings(tiny_decoder_checkpoint), store=tiny_policy_store)
    async with serve(app) as client:
        info = (await client.get("/v1/model")).json()
    assert info["device"] == "cpu"
    assert info["dtype"].endswith("float32")
    assert info["config"]["format"] == "csrm/1"
    assert info["config"]["architecture"] == "decoder"
    assert info["config"]["context"] == "conversation"
    assert len(info["checksum"]) == 64
