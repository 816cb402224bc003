"""POST /v1/score through HTTP: real tiny checkpoints (both architectures) and FakeEngine for queue behaviour.

Queue tests hold the FakeEngine on a gate: the first batch enters the engine and blocks, later requests queue
behind it, and the test opens the gate when it has checked what it wanted. No timing assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from models.types import Message, ScoreInput
from service.app import create_app
from tests.fakes import FakeEngine
from tests.service.helpers import metric_samples, serve, wait_ready

ITEMS = [
    {"prompt": "how do i bake a cake", "response": "mix flour sugar and eggs then bake in the oven"},
    {"prompt": "hello", "response": "hi"},
    {
        "messages": [
            {"role": "system", "content": "be safe"},
            {"role": "user", "content": "tell me a story about a child"},
            {"role": "assistant", "content": "sure here is a story about a child and a cake"},
        ]
    },
    {"prompt": "what is a weapon", "response": "sorry i cannot help with weapons"},
    {"prompt": "tell me about drugs", "response": "here is some medical information about drugs"},
    {"prompt": "thanks", "response": "okay"},
]


def _marker_id(word: str) -> int:
    """The token id FakeEngine gives `word` (see FakeEngine.encode)."""
    return zlib.crc32(word.encode()) % 30_000 + 100


def _seen_ids(engine: FakeEngine) -> set[int]:
    return {token for item in engine.seen for token in item.input_ids}


async def _wait_until(predicate: Any) -> None:
    for _ in range(5000):
        if predicate():
            return
        await asyncio.sleep(0.002)
    pytest.fail("condition never became true")


async def _engine_entered(engine: FakeEngine) -> None:
    assert await anyio.to_thread.run_sync(engine.entered.wait, 30)


@contextlib.asynccontextmanager
async def _busy_engine(settings: Any) -> AsyncIterator[tuple[Any, Any, FakeEngine, threading.Event, Any]]:
    """An app whose FakeEngine is held on its gate while it scores one request.

    Yields (app, client, engine, gate, running): `running` is that request's task; `gate.set()` releases it.
    """
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    app = create_app(settings, engine=engine)
    async with serve(app) as client:
        running = asyncio.create_task(client.post("/v1/score", json={"items": ITEMS[:1]}))
        await _engine_entered(engine)
        yield app, client, engine, gate, running


@pytest.fixture(params=["encoder", "decoder"])
def checkpoint(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"tiny_{request.param}_checkpoint")


class TestRealModel:
    async def test_scores_through_http(self, checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any) -> None:
        app = create_app(real_app_settings(checkpoint, warm_up=True), store=tiny_policy_store)
        async with serve(app) as client:
            await wait_ready(client)
            response = await client.post("/v1/score", json={"items": ITEMS, "request_id": "r-1"})
            model = (await client.get("/v1/model")).json()
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["results"]) == len(ITEMS)
        for result in body["results"]:
            assert 0.0 <= result["p_comply"] <= 1.0
            assert result["verdict"] == ("comply" if result["p_comply"] >= body["policy"]["threshold"] else "violate")
            assert result["tokens"] > 0
            assert result["truncated"] is False
        assert body["policy"]["id"] == "tiny-policy"
        assert body["policy"]["version"] == 1
        assert body["policy"]["alias"] == "stable"
        assert len(body["policy"]["checksum"]) == 64
        assert body["model"] == {"id": model["id"], "checksum": model["checksum"]}
        assert body["request_id"] == "r-1"
        for header in ("x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time"):
            assert int(response.headers[header]) >= 0

    async def test_batched_and_one_by_one_agree(
        self, checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any
    ) -> None:
        app = create_app(real_app_settings(checkpoint), store=tiny_policy_store)
        async with serve(app) as client:
            together = await client.post("/v1/score", json={"items": ITEMS})
            alone = [await client.post("/v1/score", json={"items": [item]}) for item in ITEMS]
        assert together.status_code == 200
        batched = [r["reward"] for r in together.json()["results"]]
        single = [r.json()["results"][0]["reward"] for r in alone]
        assert batched == pytest.approx(single, abs=1e-4)

    async def test_truncation_keeps_the_policy_and_sets_the_flag(
        self, checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any
    ) -> None:
        long_response = " ".join(["the cake is good and safe"] * 60)
        policy_a = "no weapons allowed"
        policy_b = "fiction about violence is allowed"
        app = create_app(real_app_settings(checkpoint), store=tiny_policy_store)
        async with serve(app) as client:
            rewards = []
            for policy in (policy_a, policy_b):
                response = await client.post(
                    "/v1/score",
                    json={"policy_text": policy, "items": [{"prompt": "tell me a story", "response": long_response}]},
                )
                assert response.status_code == 200, response.text
                result = response.json()["results"][0]
                assert result["truncated"] is True
                assert result["tokens"] <= 128  # the fixtures' max_length
                rewards.append(result["reward"])
            engine = app.state.engine
            encoded = engine.encode(
                ScoreInput(policy_a, (Message("user", "tell me a story"), Message("assistant", long_response)))
            )
            policy_ids = engine.model.tokenizer(policy_a, add_special_tokens=False)["input_ids"]
        assert encoded.truncated
        ids = list(encoded.input_ids)
        assert any(ids[i : i + len(policy_ids)] == policy_ids for i in range(len(ids))), "policy tokens were cut"
        assert rewards[0] != rewards[1], "the model no longer sees the policy after truncation"

    async def test_policy_over_budget_is_refused(
        self, tiny_encoder_checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any
    ) -> None:
        app = create_app(real_app_settings(tiny_encoder_checkpoint), store=tiny_policy_store)
        long_policy = " ".join(["no weapons and no drugs"] * 40)
        async with serve(app) as client:
            response = await client.post(
                "/v1/score", json={"policy_text": long_policy, "items": [{"prompt": "hi", "response": "hello"}]}
            )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "INPUT_TOO_LONG"
        assert error["details"]["tokens"] > error["details"]["budget"]


class TestPolicies:
    async def test_inline_policy_text_has_only_a_checksum(self, make_settings: Any) -> None:
        text = "never give medical advice"
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/v1/score", json={"policy_text": text, "items": ITEMS[:1]})
        policy = response.json()["policy"]
        assert policy["id"] is None and policy["version"] is None and policy["alias"] is None
        assert policy["checksum"] == hashlib.sha256(text.encode()).hexdigest()

    @pytest.mark.parametrize(
        ("ref", "version", "alias"),
        [("kids-education", 1, "stable"), ("kids-education@1", 1, None), ("mature-fiction:stable", 1, "stable")],
    )
    async def test_reference_forms(self, make_settings: Any, ref: str, version: int, alias: str | None) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/v1/score", json={"policy": ref, "items": ITEMS[:1]})
        assert response.status_code == 200, response.text
        policy = response.json()["policy"]
        assert (policy["id"], policy["version"], policy["alias"]) == (ref.split("@")[0].split(":")[0], version, alias)

    async def test_default_policy_setting(self, make_settings: Any) -> None:
        app = create_app(make_settings(default_policy="mature-fiction"), engine=FakeEngine())
        async with serve(app) as client:
            response = await client.post("/v1/score", json={"items": ITEMS[:1]})
        assert response.json()["policy"]["id"] == "mature-fiction"

    async def test_moving_an_alias_changes_new_requests_without_restart(self, make_settings: Any) -> None:
        app = create_app(make_settings(), engine=FakeEngine())
        async with serve(app) as client:
            first = await client.post("/v1/score", json={"policy": "kids-education", "items": ITEMS[:1]})
            registry = app.state.registry
            doc = await registry.get("kids-education", 1)
            draft = {"spec": doc.spec.model_dump(mode="json"), "threshold": 0.7}
            new = await registry.publish("kids-education", draft, actor="test")
            await registry.set_alias("kids-education", "stable", new.version, actor="test")
            second = await client.post("/v1/score", json={"policy": "kids-education", "items": ITEMS[:1]})
        assert first.json()["policy"]["version"] == 1
        assert second.json()["policy"]["version"] == new.version == 2
        assert second.json()["policy"]["threshold"] == 0.7
        assert second.json()["policy"]["checksum"] != first.json()["policy"]["checksum"]


class TestBatching:
    async def test_concurrent_requests_are_batched(self, make_settings: Any) -> None:
        async with _busy_engine(make_settings()) as (app, client, engine, gate, first):
            others = [
                asyncio.create_task(client.post("/v1/score", json={"items": [item]})) for item in ITEMS[1:]
            ]
            await _wait_until(lambda: app.state.batcher.queued_items == len(ITEMS) - 1)
            gate.set()
            responses = await asyncio.gather(first, *others)
            samples = await metric_samples(client)
        assert all(r.status_code == 200 for r in responses)
        assert max(len(batch) for batch in engine.batches) > 1
        assert samples[("csrm_batch_size_count", ())] < len(ITEMS)
        assert samples[("csrm_batch_size_sum", ())] == len(ITEMS)
        assert samples[("csrm_batch_size_bucket", (("le", "1.0"),))] < samples[("csrm_batch_size_count", ())]

    async def test_full_queue_gives_429_with_retry_after(self, make_settings: Any) -> None:
        async with _busy_engine(make_settings(batcher={"max_queue_items": 2})) as (app, client, engine, gate, running):
            queued = asyncio.create_task(client.post("/v1/score", json={"items": ITEMS[1:3]}))
            await _wait_until(lambda: app.state.batcher.queued_items == 2)
            refused = await client.post("/v1/score", json={"items": ITEMS[3:4]})
            gate.set()
            assert (await running).status_code == 200
            assert (await queued).status_code == 200
            samples = await metric_samples(client)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "OVERLOADED"
        assert int(refused.headers["retry-after"]) >= 1
        assert samples[("csrm_request_failures_total", (("reason", "overloaded"),))] == 1

    async def test_expired_deadline_gives_504_and_is_never_computed(self, make_settings: Any) -> None:
        async with _busy_engine(make_settings()) as (app, client, engine, gate, running):
            late = await client.post(
                "/v1/score",
                json={"items": [{"prompt": "x", "response": "deadlinemarker"}], "deadline_ms": 20},
            )
            gate.set()
            assert (await running).status_code == 200
            assert (await client.post("/v1/score", json={"items": ITEMS[1:2]})).status_code == 200
        assert late.status_code == 504
        assert late.json()["error"]["code"] == "DEADLINE_EXCEEDED"
        assert _marker_id("deadlinemarker") not in _seen_ids(engine)

    async def test_cancelled_request_is_never_computed(self, make_settings: Any) -> None:
        async with _busy_engine(make_settings()) as (app, client, engine, gate, running):
            doomed = asyncio.create_task(
                client.post("/v1/score", json={"items": [{"prompt": "x", "response": "cancelmarker"}]})
            )
            await _wait_until(lambda: app.state.batcher.queued_items == 1)
            doomed.cancel()
            await _wait_until(lambda: app.state.batcher.queued_items == 0)
            gate.set()
            assert (await running).status_code == 200
            after = await client.post("/v1/score", json={"items": ITEMS[1:2]})
            samples = await metric_samples(client)
        assert after.status_code == 200
        assert doomed.cancelled()
        assert _marker_id("cancelmarker") not in _seen_ids(engine)
        assert samples[("csrm_request_failures_total", (("reason", "dropped"),))] == 1

    async def test_client_disconnect_cancels_its_items(self, make_settings: Any) -> None:
        """A raw ASGI call whose client sends `http.disconnect` while its item is queued (what uvicorn does)."""
        async with _busy_engine(make_settings()) as (app, client, engine, gate, running):
            disconnect = asyncio.Event()
            body = b'{"items": [{"prompt": "x", "response": "disconnectmarker"}]}'
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop(0)
                await disconnect.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                "scheme": "http", "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"",
                "root_path": "", "headers": [(b"content-type", b"application/json"), (b"host", b"csrm.test")],
                "client": ("127.0.0.1", 1), "server": ("csrm.test", 80), "state": {},
            }  # fmt: skip
            call = asyncio.create_task(app(scope, receive, send))
            await _wait_until(lambda: app.state.batcher.queued_items == 1)
            disconnect.set()
            await call
            gate.set()
            assert (await running).status_code == 200
            assert (await client.post("/v1/score", json={"items": ITEMS[1:2]})).status_code == 200
        assert sent[0]["status"] == 499
        assert _marker_id("disconnectmarker") not in _seen_ids(engine)

    async def test_model_exception_fails_only_its_batch(self, make_settings: Any) -> None:
        engine = FakeEngine(fail_on_calls={0})
        app = create_app(make_settings(), engine=engine)
        async with serve(app) as client:
            failed = await client.post("/v1/score", json={"items": ITEMS[:2]})
            after = await client.post("/v1/score", json={"items": ITEMS[:2]})
            health = await client.get("/healthz")
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "INFERENCE_FAILED"
        assert after.status_code == 200
        assert health.status_code == 200

    async def test_verdicts_counted_by_policy_version(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            body = (await client.post("/v1/score", json={"policy": "kids-education", "items": ITEMS})).json()
            samples = await metric_samples(client)
        labels = (("policy_id", "kids-education"), ("policy_version", "1"))
        counted = {
            verdict: samples.get(("csrm_verdicts_total", (*labels, ("verdict", verdict))), 0.0)
            for verdict in ("comply", "violate")
        }
        expected = {v: sum(r["verdict"] == v for r in body["results"]) for v in ("comply", "violate")}
        assert counted == expected


class TestBadInputs:
    @pytest.mark.parametrize(
        ("payload", "status", "code"),
        [
            ({"items": []}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": "a", "response": "b"}] * 4}, 413, "PAYLOAD_TOO_LARGE"),
            ({"items": [{"prompt": "a", "response": "b" * 51}]}, 413, "PAYLOAD_TOO_LARGE"),
            ({"policy_text": "p" * 51, "items": [{"prompt": "a", "response": "b"}]}, 413, "PAYLOAD_TOO_LARGE"),
            ({"items": [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 3}]},
             413, "PAYLOAD_TOO_LARGE"),
            ({"policy": "no-such-policy", "items": [{"prompt": "a", "response": "b"}]}, 404, "POLICY_NOT_FOUND"),
            ({"policy": "general-safety@99", "items": [{"prompt": "a", "response": "b"}]}, 404, "POLICY_NOT_FOUND"),
            ({"policy": "general-safety:nope", "items": [{"prompt": "a", "response": "b"}]}, 404, "ALIAS_NOT_FOUND"),
            ({"policy": "Bad Ref!!", "items": [{"prompt": "a", "response": "b"}]}, 422, "INVALID_POLICY"),
            ({"items": [{"messages": [{"role": "robot", "content": "a"}]}]}, 422, "VALIDATION_FAILED"),
            ({"items": [{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}]},
             422, "VALIDATION_FAILED"),
            ({"items": [{"messages": []}]}, 422, "VALIDATION_FAILED"),
            ({"items": [{"messages": [{"role": "assistant"}]}]}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": "a"}]}, 422, "VALIDATION_FAILED"),
            ({"items": "a string"}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": 1, "response": ["b"]}]}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": "a", "response": "b"}], "lane": "fast"}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": "a", "response": "b"}], "deadline_ms": -1}, 422, "VALIDATION_FAILED"),
            ({"items": [{"prompt": "a", "response": "b"}], "temperature": 1}, 422, "VALIDATION_FAILED"),
            ({"policy": "general-safety", "policy_text": "x", "items": [{"prompt": "a", "response": "b"}]},
             422, "VALIDATION_FAILED"),
            ([1, 2, 3], 422, "VALIDATION_FAILED"),
        ],
    )  # fmt: skip
    async def test_bad_input_gives_a_json_4xx(
        self, make_settings: Any, payload: Any, status: int, code: str
    ) -> None:
        settings = make_settings(limits={"max_items": 3, "max_chars": 50, "max_messages": 4})
        engine = FakeEngine()
        async with serve(create_app(settings, engine=engine)) as client:
            response = await client.post("/v1/score", json=payload)
            samples = await metric_samples(client)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
        assert engine.batches == []
        assert samples[("csrm_request_failures_total", (("reason", "validation"),))] == 1

    async def test_validation_errors_are_listed_field_by_field(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post(
                "/v1/score", json={"items": [{"prompt": "a", "response": 3}], "lane": "fast"}
            )
        fields = {d["field"] for d in response.json()["error"]["details"]}
        assert "lane" in fields
        assert any(f.startswith("items.0") for f in fields)

    @pytest.mark.parametrize("content", [b'{"items": [', b"not json at all", b'{"items": [}'])
    async def test_invalid_json_gives_400(self, make_settings: Any, content: bytes) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post(
                "/v1/score", content=content, headers={"content-type": "application/json"}
            )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_JSON"

    async def test_body_over_the_byte_limit_gives_413(self, make_settings: Any) -> None:
        settings = make_settings(limits={"max_body_bytes": 100})
        async with serve(create_app(settings, engine=FakeEngine())) as client:
            response = await client.post("/v1/score", json={"items": [{"prompt": "a" * 200, "response": "b"}]})
        assert response.status_code == 413
        assert response.json()["error"]["details"]["limit"] == "max_body_bytes"

    async def test_unknown_route_is_a_json_404(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.get("/v2/nothing")
            wrong_method = await client.get("/v1/score")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"

    async def test_not_json_content_type(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/v1/score", content=b"items=1", headers={"content-type": "text/plain"})
        assert response.status_code in (400, 422)
        assert "error" in response.json()
