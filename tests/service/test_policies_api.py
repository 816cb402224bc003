"""The policy lifecycle through HTTP: every step, every refusal, audit completeness, idempotency, auth.

The app runs a `BudgetedEngine` (a `FakeEngine` that counts one token per word against a small policy budget and
says "violate" for any item containing the word `harmful`), an in-memory store without the bundled library, an
admin key named `alice` and a score key named `bob`. One class runs the real tiny encoder checkpoint for the token
budget and the example gate. No timing assertions.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from models.types import EncodedInput
from policies.registry import canary_bucket
from policies.schema import export_json_schema
from service.app import create_app
from service.auth import ApiKeyStore
from service.settings import Settings
from tests.fakes import FakeEngine
from tests.service.helpers import serve, wait_ready

PID = "kids-chat"
BUDGET = 40
_HARMFUL = zlib.crc32(b"harmful") % 30_000 + 100  # FakeEngine's token id of the word "harmful"


def _reward(item: EncodedInput) -> float:
    return -4.0 if _HARMFUL in item.input_ids else 4.0


class BudgetedEngine(FakeEngine):
    """FakeEngine that can count policy tokens (one per word) against `budget`, like `CsrmModel`."""

    def __init__(self, budget: int = BUDGET) -> None:
        super().__init__(reward_fn=_reward)
        self._budget = budget

    @property
    def policy_token_budget(self) -> int:
        return self._budget

    def policy_tokens(self, policy_text: str) -> int:
        return len(policy_text.split())


def draft(text: str = "be kind and keep children safe", *, policy_id: str | None = None, **extra: Any
          ) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"spec": {"text": text}, "threshold": 0.5, **extra}
    if policy_id is not None:
        body["id"] = policy_id
    return body


def with_examples(*examples: tuple[str, str]) -> dict[str, Any]:
    """A draft with one category holding (response, expected) examples."""
    return {
        "spec": {
            "text": "be kind",
            "categories": [{
                "id": "violence", "name": "Violence", "description": "graphic violence", "stance": "disallowed",
                "severity": "high",
                "examples": [{"prompt": "tell me a story", "response": r, "expected": e} for r, e in examples],
            }],
        },
    }  # fmt: skip


class Api:
    """A client with the two keys at hand and a few shortcuts."""

    def __init__(self, client: httpx.AsyncClient, admin: str, scorer: str) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.scorer = {"Authorization": f"Bearer {scorer}"}

    async def create(self, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
                     ) -> httpx.Response:  # fmt: skip
        return await self.client.post("/v1/policies", json={"policy": body or draft(policy_id=PID)},
                                      headers={**self.admin, **(headers or {})})  # fmt: skip

    async def publish(self, body: dict[str, Any], *, headers: dict[str, str] | None = None, **kwargs: Any
                      ) -> httpx.Response:  # fmt: skip
        return await self.client.post(f"/v1/policies/{PID}/versions", json=body,
                                      headers={**self.admin, **(headers or {})}, **kwargs)  # fmt: skip

    async def set_alias(self, alias: str, version: int, **body: Any) -> httpx.Response:
        return await self.client.put(f"/v1/policies/{PID}/aliases/{alias}", json={"version": version, **body},
                                     headers=self.admin)  # fmt: skip

    async def score(self, ref: str = PID, request_id: str | None = None, response: str = "sure") -> dict[str, Any]:
        r = await self.client.post("/v1/score", headers=self.scorer, json={
            "policy": ref, "request_id": request_id, "items": [{"prompt": "hello", "response": response}],
        })  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def audit(self) -> list[dict[str, Any]]:
        r = await self.client.get(f"/v1/policies/{PID}/audit", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["entries"]  # type: ignore[no-any-return]


def _keys(settings: Settings) -> tuple[str, str]:
    keys = ApiKeyStore(settings.auth.keys_file)
    return keys.create(role="admin", name="alice"), keys.create(role="score", name="bob")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(store={"seed_library": False})


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    admin, scorer = _keys(settings)
    async with serve(create_app(settings, engine=BudgetedEngine())) as client:
        yield Api(client, admin, scorer)


@pytest.fixture
async def created(api: Api) -> Api:
    """`api` with PID created (v1, stable -> 1)."""
    r = await api.create()
    assert r.status_code == 201, r.text
    return api


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


class TestAuth:
    MUTATIONS = [
        ("POST", "/v1/policies", {"policy": draft(policy_id="other")}),
        ("POST", f"/v1/policies/{PID}/versions", {"policy": draft("v2")}),
        ("PUT", f"/v1/policies/{PID}/aliases/stable", {"version": 1}),
        ("DELETE", f"/v1/policies/{PID}/aliases/stable", None),
        ("POST", f"/v1/policies/{PID}/rollback", {"alias": "stable"}),
        ("PUT", f"/v1/policies/{PID}/canary", {"weight": 0.5}),
        ("POST", f"/v1/policies/{PID}/versions/1/archive", None),
        ("POST", f"/v1/policies/{PID}/versions/1/unarchive", None),
    ]
    READS = ["/v1/policies", f"/v1/policies/{PID}", f"/v1/policies/{PID}/versions", f"/v1/policies/{PID}/versions/1",
             f"/v1/policies/{PID}/diff?from=1&to=1", f"/v1/policies/{PID}/audit"]  # fmt: skip

    async def test_schema_is_public(self, api: Api) -> None:
        r = await api.client.get("/v1/policies/schema")
        assert r.status_code == 200
        assert r.json() == export_json_schema()

    @pytest.mark.parametrize(("method", "url", "body"), MUTATIONS)
    async def test_mutations_need_an_admin_key(self, created: Api, method: str, url: str, body: Any) -> None:
        api = created
        before = await api.audit()
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        _error(await api.client.request(method, url, **kwargs), 401, "UNAUTHORIZED")
        _error(await api.client.request(method, url, headers={"Authorization": "Bearer csrm_nope"}, **kwargs),
               401, "UNAUTHORIZED")  # fmt: skip
        error = _error(await api.client.request(method, url, headers=api.scorer, **kwargs), 403, "FORBIDDEN")
        assert "bob" in error["message"]
        assert await api.audit() == before

    @pytest.mark.parametrize("url", READS)
    async def test_reads_need_a_key_of_either_role(self, created: Api, url: str) -> None:
        api = created
        _error(await api.client.get(url), 401, "UNAUTHORIZED")
        assert (await api.client.get(url, headers=api.scorer)).status_code == 200
        assert (await api.client.get(url, headers=api.admin)).status_code == 200

    async def test_reads_need_a_key_even_when_none_exists(self, settings: Settings) -> None:
        async with serve(create_app(settings, engine=BudgetedEngine())) as client:
            _error(await client.get("/v1/policies"), 401, "UNAUTHORIZED")
            _error(await client.post("/v1/policies", json={"policy": draft(policy_id=PID)}), 401, "UNAUTHORIZED")
            assert (await client.get("/v1/policies/schema")).status_code == 200


class TestLifecycle:
    async def test_create(self, api: Api) -> None:
        r = await api.create(draft(policy_id=PID, metadata={"owner": "t&s", "change_note": "first"}))
        assert r.status_code == 201, r.text
        body = r.json()
        doc = body["document"]
        assert (doc["id"], doc["version"], doc["parent_version"]) == (PID, 1, None)
        assert doc["metadata"]["created_by"] == "alice" and doc["metadata"]["owner"] == "t&s"
        assert body["rendered_text"] == "be kind and keep children safe"
        assert body["template_id"] == "policy-text/1"
        assert body["validation"] == {"policy_tokens": 6, "policy_token_budget": BUDGET, "examples_checked": None}
        assert r.headers["etag"] == '"1"' and r.headers["location"] == f"/v1/policies/{PID}/versions/1"

        head = (await api.client.get(f"/v1/policies/{PID}", headers=api.scorer)).json()
        assert head["aliases"] == {"stable": 1} and head["latest_version"] == 1 and head["archived"] == []
        assert head["stable"]["document"] == doc and head["stable"]["aliases"] == ["stable"]
        listing = (await api.client.get("/v1/policies", headers=api.scorer)).json()
        assert listing == {"policies": [{"id": PID, "latest_version": 1, "aliases": {"stable": 1},
                                         "canary_weight": 0.0}]}  # fmt: skip
        [entry] = await api.audit()
        assert (entry["actor"], entry["action"], entry["version"], entry["alias"]) == ("alice", "create", 1, "stable")

    async def test_publish_then_promote_switches_scores_at_once(self, created: Api) -> None:
        api = created
        first = await api.score()
        assert (first["policy"]["version"], first["policy"]["alias"]) == (1, "stable")

        r = await api.publish({"policy": draft("v2 text", metadata={"change_note": "v2"}), "expected_latest": 1})
        assert r.status_code == 201, r.text
        v2 = r.json()["document"]
        assert (v2["version"], v2["parent_version"]) == (2, 1)
        assert (await api.score())["policy"]["version"] == 1  # publishing moves no alias

        versions = (await api.client.get(f"/v1/policies/{PID}/versions", headers=api.scorer)).json()["versions"]
        assert [(v["version"], v["aliases"], v["change_note"]) for v in versions] == [(1, ["stable"], None),
                                                                                     (2, [], "v2")]  # fmt: skip
        shown = (await api.client.get(f"/v1/policies/{PID}/versions/2", headers=api.scorer)).json()
        assert shown["document"] == v2 and shown["rendered_text"] == "v2 text" and shown["archived"] is False

        r = await api.set_alias("stable", 2, expected_version=1, reason="ship it")
        assert r.json() == {"policy_id": PID, "alias": "stable", "version": 2}
        after = await api.score()
        assert after["policy"] == {"id": PID, "version": 2, "alias": "stable", "checksum": v2["checksum"],
                                   "threshold": 0.5}  # fmt: skip
        pinned = await api.score(f"{PID}@1")
        assert (pinned["policy"]["version"], pinned["policy"]["alias"]) == (1, None)

    async def test_canary_split_by_request_id(self, created: Api) -> None:
        api = created
        assert (await api.publish({"policy": draft("canary text")})).status_code == 201
        assert (await api.set_alias("canary", 2)).status_code == 200
        # the canary alias alone changes nothing for unqualified references while the weight is 0
        assert (await api.score(request_id="r-0"))["policy"]["alias"] == "stable"
        r = await api.client.put(f"/v1/policies/{PID}/canary", json={"weight": 0.5}, headers=api.admin)
        assert r.json() == {"policy_id": PID, "canary_weight": 0.5}
        seen = set()
        for i in range(24):
            rid = f"r-{i}"
            policy = (await api.score(request_id=rid))["policy"]
            canary = canary_bucket(PID, rid) < 0.5
            assert (policy["alias"], policy["version"]) == (("canary", 2) if canary else ("stable", 1))
            assert (await api.score(request_id=rid))["policy"]["alias"] == policy["alias"]  # deterministic
            seen.add(policy["alias"])
        assert seen == {"canary", "stable"}
        explicit = await api.score(f"{PID}:canary")
        assert (explicit["policy"]["alias"], explicit["policy"]["version"]) == ("canary", 2)

    async def test_rollback(self, created: Api) -> None:
        api = created
        await api.publish({"policy": draft("v2")})
        await api.set_alias("stable", 2)
        assert (await api.score())["policy"]["version"] == 2
        r = await api.client.post(f"/v1/policies/{PID}/rollback", json={"reason": "false positives"},
                                  headers=api.admin)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json() == {"policy_id": PID, "alias": "stable", "version": 1}
        assert (await api.score())["policy"]["version"] == 1
        entry = (await api.audit())[-1]
        assert (entry["action"], entry["from"], entry["to"], entry["reason"]) == ("rollback", 2, 1, "false positives")
        # nothing further back: 409, and no audit entry
        before = await api.audit()
        _error(await api.client.post(f"/v1/policies/{PID}/rollback", headers=api.admin), 409, "VERSION_CONFLICT")
        assert await api.audit() == before

    async def test_archive(self, created: Api) -> None:
        api = created
        await api.publish({"policy": draft("v2")})
        await api.set_alias("stable", 2)
        url = f"/v1/policies/{PID}/versions/2/archive"
        _error(await api.client.post(url, headers=api.admin), 409, "VERSION_IN_USE")
        await api.set_alias("stable", 1)
        r = await api.client.post(url, json={"reason": "superseded"}, headers=api.admin)
        assert r.json() == {"policy_id": PID, "version": 2, "archived": True}
        assert (await api.client.get(f"/v1/policies/{PID}", headers=api.scorer)).json()["archived"] == [2]
        shown = (await api.client.get(f"/v1/policies/{PID}/versions/2", headers=api.scorer)).json()
        assert shown["archived"] is True  # still readable
        r = await api.client.post("/v1/score", headers=api.scorer,
                                  json={"policy": f"{PID}@2", "items": [{"prompt": "a", "response": "b"}]})
        _error(r, 404, "POLICY_NOT_FOUND")
        _error(await api.set_alias("canary", 2), 404, "POLICY_NOT_FOUND")
        r = await api.client.post(f"/v1/policies/{PID}/versions/2/unarchive", headers=api.admin)
        assert r.json()["archived"] is False
        assert (await api.score(f"{PID}@2"))["policy"]["version"] == 2

    async def test_delete_alias(self, created: Api) -> None:
        api = created
        await api.set_alias("beta", 1)
        url = f"/v1/policies/{PID}/aliases/beta"
        _error(await api.client.delete(url, headers={**api.admin, "If-Match": '"7"'}), 409, "VERSION_CONFLICT")
        r = await api.client.delete(url + "?reason=done", headers={**api.admin, "If-Match": '"1"'})
        assert r.status_code == 204
        _error(await api.client.delete(url, headers=api.admin), 404, "ALIAS_NOT_FOUND")
        assert (await api.client.get(f"/v1/policies/{PID}", headers=api.admin)).json()["aliases"] == {"stable": 1}

    async def test_diff(self, created: Api) -> None:
        api = created
        await api.publish({"policy": {**draft("a new text"), "threshold": 0.7}})
        r = await api.client.get(f"/v1/policies/{PID}/diff", params={"from": 1, "to": 2}, headers=api.scorer)
        body = r.json()
        assert (body["from"], body["to"], body["same_content"]) == (1, 2, False)
        assert set(body["changed_fields"]) == {"threshold", "spec.text"}
        assert "+a new text" in body["text_diff"]
        _error(await api.client.get(f"/v1/policies/{PID}/diff?from=1&to=9", headers=api.scorer),
               404, "POLICY_NOT_FOUND")  # fmt: skip
        _error(await api.client.get(f"/v1/policies/{PID}/diff?from=1", headers=api.scorer), 422, "VALIDATION_FAILED")


class TestRefusals:
    async def test_stale_expected_latest_and_if_match(self, created: Api) -> None:
        api = created
        assert (await api.publish({"policy": draft("v2")}, headers={"If-Match": '"1"'})).status_code == 201
        error = _error(await api.publish({"policy": draft("v3"), "expected_latest": 1}), 409, "VERSION_CONFLICT")
        assert error["details"] == {"expected": 1, "actual": 2}
        _error(await api.publish({"policy": draft("v3")}, headers={"If-Match": '"1"'}), 409, "VERSION_CONFLICT")
        _error(await api.publish({"policy": draft("v3")}, headers={"If-Match": "W/1"}), 409, "VERSION_CONFLICT")
        _error(await api.publish({"policy": draft("v3"), "expected_latest": 2}, headers={"If-Match": '"1"'}),
               422, "VALIDATION_FAILED")  # fmt: skip
        _error(await api.publish({"policy": draft("v3")}, headers={"If-Match": "abc"}), 422, "VALIDATION_FAILED")
        assert (await api.publish({"policy": draft("v3")}, headers={"If-Match": "*"})).status_code == 201
        _error(await api.set_alias("stable", 2, expected_version=2), 409, "VERSION_CONFLICT")
        r = await api.client.put(f"/v1/policies/{PID}/aliases/stable", json={"version": 2},
                                 headers={**api.admin, "If-Match": '"3"'})  # fmt: skip
        _error(r, 409, "VERSION_CONFLICT")
        _error(await api.set_alias("canary", 2, expected_version=1), 409, "VERSION_CONFLICT")  # must not exist: 0
        assert (await api.set_alias("canary", 2, expected_version=0)).status_code == 200
        actions = [e["action"] for e in await api.audit()]
        assert actions == ["create", "publish", "publish", "set_alias"]

    async def test_over_budget(self, created: Api) -> None:
        api = created
        words = " ".join(["word"] * (BUDGET + 5))
        error = _error(await api.publish({"policy": draft(words)}), 422, "INVALID_POLICY")
        assert str(BUDGET + 5) in error["message"] and str(BUDGET) in error["message"]
        [detail] = error["details"]
        assert (detail["tokens"], detail["budget"], detail["type"]) == (BUDGET + 5, BUDGET, "policy_token_budget")
        _error(await api.create(draft(words, policy_id="too-long")), 422, "INVALID_POLICY")
        ok = await api.publish({"policy": draft(" ".join(["word"] * BUDGET))})
        assert ok.json()["validation"]["policy_tokens"] == BUDGET
        assert [e["action"] for e in await api.audit()] == ["create", "publish"]

    async def test_example_gate(self, created: Api) -> None:
        api = created
        failing = with_examples(("a calm story", "comply"), ("a harmful story", "comply"), ("harmful", "violate"),
                                ("a nice story", "violate"))  # fmt: skip
        error = _error(await api.publish({"policy": failing}, params={"validate": "examples"}), 422,
                       "INVALID_POLICY")  # fmt: skip
        assert "2 of 4" in error["message"]
        assert [(d["field"], d["expected"], d["verdict"]) for d in error["details"]] == [
            ("spec.categories.0.examples.1", "comply", "violate"),
            ("spec.categories.0.examples.3", "violate", "comply"),
        ]
        assert error["details"][0]["category"] == "violence"
        # without the gate the same document publishes; with passing examples the gate reports what it checked
        passing = with_examples(("a calm story", "comply"), ("a harmful story", "violate"))
        r = await api.publish({"policy": passing}, params={"validate": "examples"})
        assert r.status_code == 201, r.text
        assert r.json()["validation"]["examples_checked"] == 2
        assert (await api.publish({"policy": failing})).json()["document"]["version"] == 3
        assert [e["action"] for e in await api.audit()] == ["create", "publish", "publish"]
        _error(await api.publish({"policy": passing}, params={"validate": "everything"}), 422, "VALIDATION_FAILED")

    async def test_schema_errors_field_by_field(self, created: Api) -> None:
        api = created
        bad = {"spec": {"categories": [{"id": "x", "name": "X", "description": "d", "stance": "sometimes"}]},
               "threshold": 2, "colour": "red"}  # fmt: skip
        error = _error(await api.publish({"policy": bad}), 422, "INVALID_POLICY")
        fields = {d["field"] for d in error["details"]}
        assert {"spec.categories.0.stance", "threshold", "colour"} <= fields
        assert all("input" not in d for d in error["details"])
        _error(await api.create({"spec": {"text": "no id"}}), 422, "INVALID_POLICY")
        _error(await api.create(draft(policy_id="Bad Id!")), 422, "INVALID_POLICY")
        _error(await api.publish({"policy": draft(policy_id="other-id")}), 422, "INVALID_POLICY")
        error = _error(await api.publish({"document": draft()}), 422, "VALIDATION_FAILED")  # wire shape
        assert {d["field"] for d in error["details"]} == {"policy", "document"}
        _error(await api.set_alias("stable", 0), 422, "VALIDATION_FAILED")
        _error(await api.set_alias("Not An Alias", 1), 422, "INVALID_POLICY")
        r = await api.client.put(f"/v1/policies/{PID}/canary", json={"weight": 1.5}, headers=api.admin)
        _error(r, 422, "VALIDATION_FAILED")
        assert [e["action"] for e in await api.audit()] == ["create"]

    async def test_unknown_policy_version_alias(self, created: Api) -> None:
        api = created
        for url in ["/v1/policies/nope", "/v1/policies/nope/versions", "/v1/policies/nope/audit",
                    f"/v1/policies/{PID}/versions/9"]:  # fmt: skip
            _error(await api.client.get(url, headers=api.admin), 404, "POLICY_NOT_FOUND")
        r = await api.client.post("/v1/policies/nope/versions", json={"policy": draft()}, headers=api.admin)
        _error(r, 404, "POLICY_NOT_FOUND")
        _error(await api.set_alias("stable", 9), 404, "POLICY_NOT_FOUND")
        _error(await api.client.post(f"/v1/policies/{PID}/rollback", json={"alias": "beta"}, headers=api.admin),
               404, "ALIAS_NOT_FOUND")  # fmt: skip
        _error(await api.client.post(f"/v1/policies/{PID}/versions/9/archive", headers=api.admin),
               404, "POLICY_NOT_FOUND")  # fmt: skip
        _error(await api.create(), 409, "POLICY_EXISTS")
        assert [e["action"] for e in await api.audit()] == ["create"]


class TestIdempotencyAndAudit:
    async def test_idempotent_publish_replay(self, created: Api) -> None:
        api = created
        key = {"Idempotency-Key": "deploy-42"}
        first = await api.publish({"policy": draft("v2")}, headers=key)
        again = await api.publish({"policy": draft("v2")}, headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json()["document"] == again.json()["document"]
        assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
        error = _error(await api.publish({"policy": draft("other")}, headers=key), 409, "VERSION_CONFLICT")
        assert error["details"]["version"] == 2
        assert (await api.publish({"policy": draft("v3")})).json()["document"]["version"] == 3
        # a late retry after other versions still returns the original
        assert (await api.publish({"policy": draft("v2")}, headers=key)).json()["document"]["version"] == 2
        entries = await api.audit()
        assert [(e["action"], e["version"], e["idempotency_key"]) for e in entries] == [
            ("create", 1, None), ("publish", 2, "deploy-42"), ("publish", 3, None)]

    async def test_idempotent_create_replay(self, api: Api) -> None:
        key = {"Idempotency-Key": "create-1"}
        first = await api.create(headers=key)
        again = await api.create(headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json()["document"] == again.json()["document"]
        assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
        assert len(await api.audit()) == 1

    async def test_one_audit_entry_per_successful_mutation(self, created: Api) -> None:
        api = created
        admin = api.admin
        c = api.client
        steps = [  # (request, expected status, audit action or None for a refusal)
            (lambda: api.publish({"policy": draft("v2")}), 201, "publish"),
            (lambda: api.publish({"policy": draft("v3"), "expected_latest": 1}), 409, None),
            (lambda: api.set_alias("canary", 2, reason="try"), 200, "set_alias"),
            (lambda: c.put(f"/v1/policies/{PID}/canary", json={"weight": 0.25}, headers=admin), 200,
             "set_canary_weight"),
            (lambda: c.post(f"/v1/policies/{PID}/versions/2/archive", headers=admin), 409, None),
            (lambda: api.set_alias("stable", 2), 200, "set_alias"),
            (lambda: c.post(f"/v1/policies/{PID}/rollback", headers=admin), 200, "rollback"),
            (lambda: c.delete(f"/v1/policies/{PID}/aliases/canary", headers=admin), 204, "delete_alias"),
            (lambda: c.post(f"/v1/policies/{PID}/versions/2/archive", headers=admin), 200, "archive"),
            (lambda: c.post(f"/v1/policies/{PID}/versions/2/unarchive", headers=admin), 200, "unarchive"),
            (lambda: c.delete(f"/v1/policies/{PID}/aliases/canary", headers=admin), 404, None),
            (lambda: c.put(f"/v1/policies/{PID}/canary", json={"weight": 0.5}, headers=api.scorer), 403,
             None),
        ]
        expected = ["create"]
        for request, status, action in steps:
            r = await request()
            assert r.status_code == status, r.text
            if action is not None:
                expected.append(action)
        entries = await api.audit()
        assert [e["action"] for e in entries] == expected
        assert {e["actor"] for e in entries} == {"alice"}
        assert all(e["policy_id"] == PID and e["at"] for e in entries)
        weight = next(e for e in entries if e["action"] == "set_canary_weight")
        assert (weight["alias"], weight["from"], weight["to"]) == ("canary", 0.0, 0.25)
        promote = [e for e in entries if e["action"] == "set_alias"][-1]
        assert (promote["alias"], promote["from"], promote["to"]) == ("stable", 1, 2)


class TestRealModel:
    """The token budget and the example gate against the tiny encoder checkpoint (budget 64 tokens)."""

    async def test_budget_and_gate(self, tiny_encoder_checkpoint: Any, real_app_settings: Any,
                                   tiny_policy_store: Any) -> None:  # fmt: skip
        settings = real_app_settings(tiny_encoder_checkpoint)
        admin, scorer = _keys(settings)
        async with serve(create_app(settings, store=tiny_policy_store)) as client:
            await wait_ready(client)
            api = Api(client, admin, scorer)
            url = "/v1/policies/tiny-policy/versions"
            error = _error(await client.post(url, json={"policy": draft("no weapons " * 40)}, headers=api.admin),
                           422, "INVALID_POLICY")  # fmt: skip
            [detail] = error["details"]
            assert detail["budget"] == 64 and detail["tokens"] == 80
            assert "80 tokens" in error["message"] and "budget of 64" in error["message"]

            # learn the random model's verdict on one example, then gate on it both ways
            example = ("how do i make a cake", "mix flour sugar and eggs")
            r = await client.post("/v1/score", headers=api.scorer, json={
                "policy_text": "be safe\nDisallowed:\n- Violence (high): graphic violence",
                "items": [{"prompt": example[0], "response": example[1]}]})  # fmt: skip
            says = r.json()["results"][0]["verdict"]
            other = "violate" if says == "comply" else "comply"

            def gated(expected: str) -> dict[str, Any]:
                body = with_examples((example[1], expected))
                body["spec"]["text"] = "be safe"
                body["spec"]["categories"][0]["examples"][0]["prompt"] = example[0]
                return {"policy": body}

            r = await client.post(url, json=gated(other), params={"validate": "examples"}, headers=api.admin)
            assert _error(r, 422, "INVALID_POLICY")["details"][0]["verdict"] == says
            r = await client.post(url, json=gated(says), params={"validate": "examples"}, headers=api.admin)
            assert r.status_code == 201, r.text
            assert r.json()["validation"] == {"policy_tokens": r.json()["validation"]["policy_tokens"],
                                              "policy_token_budget": 64, "examples_checked": 1}  # fmt: skip
