"""API keys: hashed storage, constant-time lookup, roles, and who may score."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends

from service.app import create_app
from service.auth import KEY_PREFIX, ApiKeyStore, Principal, hash_key, require_role
from tests.fakes import FakeEngine
from tests.service.helpers import metric_samples, serve

ITEMS = [{"prompt": "hi", "response": "hello"}]


class TestApiKeyStore:
    def test_create_stores_only_the_hash(self, tmp_path: Path) -> None:
        path = tmp_path / "sub" / "keys.json"
        key = ApiKeyStore(path).create(role="admin", name="ops")
        assert key.startswith(KEY_PREFIX) and len(key) > 40
        text = path.read_text()
        assert key not in text
        data = json.loads(text)
        assert data["keys"][0]["hash"] == hash_key(key)
        assert data["keys"][0]["role"] == "admin" and data["keys"][0]["name"] == "ops"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_authenticate(self, tmp_path: Path) -> None:
        store = ApiKeyStore(tmp_path / "keys.json")
        assert not store.has_keys()
        admin = store.create(role="admin", name="ops")
        scorer = store.create(role="score", name="backend")
        assert store.authenticate(admin).role == "admin"  # type: ignore[union-attr]
        assert store.authenticate(scorer).name == "backend"  # type: ignore[union-attr]
        assert store.authenticate(scorer + "x") is None
        assert store.authenticate("") is None

    def test_keys_are_unique_and_names_too(self, tmp_path: Path) -> None:
        store = ApiKeyStore(tmp_path / "keys.json")
        assert store.create(role="score", name="a") != store.create(role="score", name="b")
        with pytest.raises(ValueError, match="already exists"):
            store.create(role="score", name="a")
        with pytest.raises(ValueError, match="role"):
            store.create(role="root", name="c")  # type: ignore[arg-type]

    def test_hash_is_sha256(self) -> None:
        assert hash_key("abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _app_with_admin_route(settings: Any) -> Any:
    app = create_app(settings, engine=FakeEngine())

    @app.get("/admin-probe")
    async def probe(principal: Annotated[Principal, Depends(require_role("admin"))]) -> dict[str, str]:
        return {"name": principal.name}

    return app


class TestScoringAccess:
    async def test_scoring_is_open_while_no_key_exists(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/v1/score", json={"items": ITEMS})
        assert response.status_code == 200

    async def test_scoring_needs_a_key_once_one_exists(self, make_settings: Any, tmp_path: Path) -> None:
        settings = make_settings()
        async with serve(create_app(settings, engine=FakeEngine())) as client:
            assert (await client.post("/v1/score", json={"items": ITEMS})).status_code == 200
            # created while the server runs (as `csrm keys create` would): takes effect without restart
            keys = ApiKeyStore(settings.auth.keys_file)
            score_key = keys.create(role="score", name="backend")
            admin_key = keys.create(role="admin", name="ops")
            missing = await client.post("/v1/score", json={"items": ITEMS})
            wrong = await client.post("/v1/score", json={"items": ITEMS}, headers={"Authorization": "Bearer nope"})
            basic = await client.post("/v1/score", json={"items": ITEMS}, headers={"Authorization": "Basic eDp5"})
            scored = await client.post(
                "/v1/score", json={"items": ITEMS}, headers={"Authorization": f"Bearer {score_key}"}
            )
            by_admin = await client.post(
                "/get_reward", json={"query": ["hi"]}, headers={"authorization": f"bearer {admin_key}"}
            )
            samples = await metric_samples(client)
        for response in (missing, wrong, basic):
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert scored.status_code == 200
        assert by_admin.status_code == 200
        assert samples[("csrm_request_failures_total", (("reason", "unauthorized"),))] == 3

    async def test_health_routes_need_no_key(self, make_settings: Any) -> None:
        settings = make_settings()
        ApiKeyStore(settings.auth.keys_file).create(role="admin", name="ops")
        async with serve(create_app(settings, engine=FakeEngine())) as client:
            for path in ("/healthz", "/readyz", "/metrics", "/v1/model"):
                assert (await client.get(path)).status_code == 200, path


class TestAdminRole:
    async def test_admin_needs_a_key_even_when_none_exists(self, make_settings: Any) -> None:
        async with serve(_app_with_admin_route(make_settings())) as client:
            response = await client.get("/admin-probe")
        assert response.status_code == 401

    async def test_score_key_is_forbidden_admin_key_passes(self, make_settings: Any) -> None:
        settings = make_settings()
        keys = ApiKeyStore(settings.auth.keys_file)
        score_key = keys.create(role="score", name="backend")
        admin_key = keys.create(role="admin", name="ops")
        async with serve(_app_with_admin_route(settings)) as client:
            forbidden = await client.get("/admin-probe", headers={"Authorization": f"Bearer {score_key}"})
            allowed = await client.get("/admin-probe", headers={"Authorization": f"Bearer {admin_key}"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "FORBIDDEN"
        assert allowed.status_code == 200
        assert allowed.json() == {"name": "ops"}
