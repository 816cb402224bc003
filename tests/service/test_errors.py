"""The one HTTP error table and the JSON error handlers."""

from __future__ import annotations

import inspect
import logging
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import models.errors
import policies.errors
import service.errors
from models.errors import InputTooLong
from policies.errors import InvalidPolicy, PolicyNotFound
from service.errors import (
    ERROR_STATUS,
    ErrorCode,
    Overloaded,
    ServiceError,
    ValidationFailed,
    install_error_handlers,
    lookup_status,
)
from tests.service.helpers import serve


def _error_classes(module: ModuleType) -> list[type[Exception]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == module.__name__
    ]


@pytest.mark.parametrize("module", [models.errors, policies.errors, service.errors], ids=lambda m: m.__name__)
def test_every_error_class_is_mapped(module: ModuleType) -> None:
    classes = _error_classes(module)
    assert classes
    missing = [cls.__name__ for cls in classes if cls not in ERROR_STATUS]
    assert not missing, f"add these to service.errors.ERROR_STATUS: {missing}"


def test_every_status_is_an_http_error() -> None:
    for cls, (status, code) in ERROR_STATUS.items():
        assert 400 <= status <= 599, cls
        assert isinstance(code, ErrorCode)


def test_lookup_follows_the_mro() -> None:
    class StalePolicy(PolicyNotFound):
        pass

    assert lookup_status(StalePolicy("x")) == (404, ErrorCode.POLICY_NOT_FOUND)
    assert lookup_status(KeyError("x")) == (500, ErrorCode.INTERNAL_ERROR)


class Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/overloaded")
    async def overloaded() -> None:
        raise Overloaded("queue full", retry_after_s=2.2)

    @app.get("/invalid-policy")
    async def invalid_policy() -> None:
        raise InvalidPolicy("bad", details=[{"field": "spec.text", "message": "too long"}])

    @app.get("/too-long")
    async def too_long() -> None:
        raise InputTooLong("policy too long", tokens=300, budget=256)

    @app.get("/validation")
    async def validation() -> None:
        raise ValidationFailed("nope", details={"why": "because"})

    @app.get("/bare")
    async def bare() -> None:
        raise ServiceError()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @app.post("/body")
    async def body(payload: Body) -> dict[str, int]:
        return {"n": payload.n}

    return app


async def _get(path: str) -> Any:
    async with serve(_app(), raise_app_exceptions=False) as client:
        return await client.get(path)


async def test_overloaded_carries_retry_after() -> None:
    response = await _get("/overloaded")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"error": {"code": "OVERLOADED", "message": "queue full"}}


async def test_details_are_passed_on() -> None:
    response = await _get("/invalid-policy")
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "INVALID_POLICY",
        "message": "bad",
        "details": [{"field": "spec.text", "message": "too long"}],
    }
    too_long = (await _get("/too-long")).json()["error"]
    assert too_long["details"] == {"tokens": 300, "budget": 256}
    assert (await _get("/validation")).json()["error"]["details"] == {"why": "because"}


async def test_an_error_without_message_still_has_one() -> None:
    response = await _get("/bare")
    assert response.status_code == 500
    assert response.json()["error"]["message"]


async def test_unexpected_errors_are_a_generic_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="service.errors"):
        response = await _get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "INTERNAL_ERROR", "message": "internal server error"}}
    assert "secret" not in response.text
    record = next(r for r in caplog.records if r.name == "service.errors")
    assert record.exc_info is not None and "secret internal detail" in str(record.exc_info[1])


async def test_request_validation_has_the_same_shape() -> None:
    async with serve(_app()) as client:
        wrong_type = await client.post("/body", json={"n": "x"})
        bad_json = await client.post("/body", content=b"{", headers={"content-type": "application/json"})
    assert wrong_type.status_code == 422
    error = wrong_type.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["field"] == "n"
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "INVALID_JSON"
