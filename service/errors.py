"""Errors raised by the service package, and the one mapping of every error to HTTP.

    ServiceError
    ├── Overloaded         the batcher queue is full; retry after `retry_after_s` (429 + Retry-After)
    ├── DeadlineExceeded   the item's deadline passed before it was computed (504)
    ├── RequestCancelled   the caller went away; the item was dropped before compute (499)
    ├── InferenceFailed    the engine raised, or returned the wrong number of scores, for the item's batch (500)
    ├── ShuttingDown       the batcher stopped before the item was computed (503)
    ├── NotReady           the service has not finished starting (503)
    ├── Unauthorized       no API key, or an unknown one (401)
    ├── Forbidden          a valid key without the role the endpoint needs (403)
    ├── PayloadTooLarge    too many items, a text field or a body over the configured limits (413)
    └── ValidationFailed   a request that parsed but makes no sense (422); `details` lists the problems

`ERROR_STATUS` maps every error class of `models.errors`, `policies.errors` and this module to an HTTP status and
an `ErrorCode`, looked up along the MRO. `install_error_handlers(app)` turns them, request validation errors and
invalid JSON into one JSON shape, `{"error": {"code": ..., "message": ..., "details": ...}}`, and anything else
into a generic 500 that is logged with its traceback.
"""

from __future__ import annotations

import enum
import logging
import math
from typing import TYPE_CHECKING, Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.errors import CheckpointError, InputTooLong, InvalidInput, ModelError
from policies.errors import (
    AliasNotFound,
    InvalidPolicy,
    PolicyError,
    PolicyExists,
    PolicyNotFound,
    StoreUnavailable,
    VersionConflict,
    VersionInUse,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

__all__ = [
    "ERROR_STATUS",
    "DeadlineExceeded",
    "ErrorCode",
    "Forbidden",
    "InferenceFailed",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "RequestCancelled",
    "ServiceError",
    "ShuttingDown",
    "Unauthorized",
    "ValidationFailed",
    "error_body",
    "field_errors",
    "install_error_handlers",
    "lookup_status",
]

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base class of every error the service package raises.

    Args:
        message: Human-readable text, sent to the client.
        details: Optional JSON-ready extra information, sent to the client as `error.details`.
    """

    def __init__(self, message: str = "", *, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class Overloaded(ServiceError):
    """The batcher queue is full (in tokens or items); the caller should retry after `retry_after_s` seconds."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServiceError):
    """The item's deadline passed before the item was computed; it was never sent to the engine."""


class RequestCancelled(ServiceError):
    """The caller went away (client disconnect); its items were dropped before compute."""


class InferenceFailed(ServiceError):
    """The engine failed on the item's batch: it raised (see `__cause__`) or returned the wrong number of scores."""


class ShuttingDown(ServiceError):
    """The batcher was stopped before the item was computed."""


class NotReady(ServiceError):
    """The service is still starting (model not loaded or not warmed up)."""


class Unauthorized(ServiceError):
    """No API key was sent, or the key is unknown."""


class Forbidden(ServiceError):
    """The API key is valid but lacks the role the endpoint needs."""


class PayloadTooLarge(ServiceError):
    """The request exceeds a configured limit (items, characters per field, messages, body bytes)."""


class ValidationFailed(ServiceError):
    """The request is well-formed JSON of the right shape but its content is invalid; `details` lists why."""


class ErrorCode(str, enum.Enum):
    """The `error.code` values clients can branch on."""

    VALIDATION_FAILED = "VALIDATION_FAILED"
    INVALID_JSON = "INVALID_JSON"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    OVERLOADED = "OVERLOADED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    REQUEST_CANCELLED = "REQUEST_CANCELLED"
    INFERENCE_FAILED = "INFERENCE_FAILED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    NOT_READY = "NOT_READY"
    SERVICE_ERROR = "SERVICE_ERROR"
    MODEL_ERROR = "MODEL_ERROR"
    CHECKPOINT_ERROR = "CHECKPOINT_ERROR"
    INPUT_TOO_LONG = "INPUT_TOO_LONG"
    INVALID_INPUT = "INVALID_INPUT"
    POLICY_ERROR = "POLICY_ERROR"
    POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
    ALIAS_NOT_FOUND = "ALIAS_NOT_FOUND"
    POLICY_EXISTS = "POLICY_EXISTS"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    VERSION_IN_USE = "VERSION_IN_USE"
    INVALID_POLICY = "INVALID_POLICY"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: Every error class the service may surface -> (HTTP status, code). Looked up along the MRO, so a subclass
#: without an entry of its own inherits its parent's.
ERROR_STATUS: dict[type[Exception], tuple[int, ErrorCode]] = {
    # service
    ServiceError: (500, ErrorCode.SERVICE_ERROR),
    Overloaded: (429, ErrorCode.OVERLOADED),
    DeadlineExceeded: (504, ErrorCode.DEADLINE_EXCEEDED),
    RequestCancelled: (499, ErrorCode.REQUEST_CANCELLED),
    InferenceFailed: (500, ErrorCode.INFERENCE_FAILED),
    ShuttingDown: (503, ErrorCode.SHUTTING_DOWN),
    NotReady: (503, ErrorCode.NOT_READY),
    Unauthorized: (401, ErrorCode.UNAUTHORIZED),
    Forbidden: (403, ErrorCode.FORBIDDEN),
    PayloadTooLarge: (413, ErrorCode.PAYLOAD_TOO_LARGE),
    ValidationFailed: (422, ErrorCode.VALIDATION_FAILED),
    # models
    ModelError: (500, ErrorCode.MODEL_ERROR),
    CheckpointError: (500, ErrorCode.CHECKPOINT_ERROR),
    InputTooLong: (422, ErrorCode.INPUT_TOO_LONG),
    InvalidInput: (422, ErrorCode.INVALID_INPUT),
    # policies
    PolicyError: (500, ErrorCode.POLICY_ERROR),
    PolicyNotFound: (404, ErrorCode.POLICY_NOT_FOUND),
    AliasNotFound: (404, ErrorCode.ALIAS_NOT_FOUND),
    PolicyExists: (409, ErrorCode.POLICY_EXISTS),
    VersionConflict: (409, ErrorCode.VERSION_CONFLICT),
    VersionInUse: (409, ErrorCode.VERSION_IN_USE),
    InvalidPolicy: (422, ErrorCode.INVALID_POLICY),
    StoreUnavailable: (503, ErrorCode.STORE_UNAVAILABLE),
}

#: Failure reasons for `csrm_request_failures_total`, by code. The batcher itself counts `overloaded`, `deadline`,
#: `dropped` and `inference` for the items it fails, so those codes are absent here (None = not counted again);
#: codes absent from this table count as `validation` when 4xx and `inference` when 5xx.
_FAILURE_REASON: dict[ErrorCode, str | None] = {
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.FORBIDDEN: "unauthorized",
    ErrorCode.STORE_UNAVAILABLE: "store",
    ErrorCode.OVERLOADED: None,
    ErrorCode.DEADLINE_EXCEEDED: None,
    ErrorCode.REQUEST_CANCELLED: None,
    ErrorCode.INFERENCE_FAILED: None,
    ErrorCode.SHUTTING_DOWN: None,
    ErrorCode.NOT_FOUND: None,
    ErrorCode.METHOD_NOT_ALLOWED: None,
}


def lookup_status(exc: BaseException) -> tuple[int, ErrorCode]:
    """The (status, code) of the nearest class in `type(exc).__mro__` that has an `ERROR_STATUS` entry.

    Returns (500, INTERNAL_ERROR) when no class has one.
    """
    for cls in type(exc).__mro__:
        entry = ERROR_STATUS.get(cls)  # type: ignore[call-overload]
        if entry is not None:
            return entry
    return 500, ErrorCode.INTERNAL_ERROR


def error_body(code: ErrorCode, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    error: dict[str, Any] = {"code": code.value, "message": message}
    if details is not None:
        error["details"] = jsonable_encoder(details)
    return {"error": error}


def _respond(
    request: Request,
    status: int,
    code: ErrorCode,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    reason = _FAILURE_REASON.get(code, "validation" if status < 500 else "inference")
    metrics = getattr(request.app.state, "metrics", None)
    if reason is not None and metrics is not None:
        metrics.record_failure(reason)
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


async def _handle_known(request: Request, exc: Exception) -> JSONResponse:
    status, code = lookup_status(exc)
    headers: dict[str, str] | None = None
    if isinstance(exc, Overloaded):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if status >= 500 and code not in (ErrorCode.SHUTTING_DOWN, ErrorCode.NOT_READY, ErrorCode.STORE_UNAVAILABLE):
        logger.error("%s on %s %s: %s", code.value, request.method, request.url.path, exc, exc_info=exc)
    details = getattr(exc, "details", None)
    if _is_pydantic_error_list(details):
        details = field_errors(details)
    if isinstance(exc, InputTooLong):
        details = {"tokens": exc.tokens, "budget": exc.budget}
    message = str(exc) or code.value.replace("_", " ").lower()
    return _respond(request, status, code, message, details, headers)


_PYDANTIC_ONLY_KEYS = frozenset({"loc", "msg", "type", "input", "ctx", "url"})


def _is_pydantic_error_list(details: Any) -> bool:
    return isinstance(details, list) and bool(details) and all(isinstance(d, dict) and "loc" in d for d in details)


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic-shaped errors (`loc`, `msg`, `type`, ...) as the one `details` shape of every 422.

    Each entry is `{"field": "a.b.0.c", "message": ..., "type": ...}` plus any extra keys the raiser added
    (e.g. `tokens`/`budget`, or `expected`/`verdict` for a failed example); the leading `body` of a request
    location is dropped, and the echoed `input` is not returned.
    """
    details = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if len(loc) > 1 and loc[0] == "body":
            loc = loc[1:]
        entry = {"field": ".".join(str(part) for part in loc), "message": err.get("msg", ""),
                 "type": err.get("type", "")}  # fmt: skip
        entry.update({k: v for k, v in err.items() if k not in _PYDANTIC_ONLY_KEYS})
        details.append(entry)
    return details


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        ctx = next(err for err in errors if err.get("type") == "json_invalid").get("ctx") or {}
        message = f"request body is not valid JSON: {ctx.get('error', 'parse error')}"
        return _respond(request, 400, ErrorCode.INVALID_JSON, message)
    details = field_errors(errors)
    summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
    return _respond(request, 422, ErrorCode.VALIDATION_FAILED, f"invalid request: {summary}", details)


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    code = {
        401: ErrorCode.UNAUTHORIZED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
        405: ErrorCode.METHOD_NOT_ALLOWED,
        413: ErrorCode.PAYLOAD_TOO_LARGE,
    }.get(exc.status_code, ErrorCode.VALIDATION_FAILED if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR)
    return _respond(request, exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, 500, ErrorCode.INTERNAL_ERROR, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on `app`.

    Handles the three package bases (`ServiceError`, `ModelError`, `PolicyError`) through `ERROR_STATUS`,
    `RequestValidationError` (422 `VALIDATION_FAILED` with field-by-field `details`; 400 `INVALID_JSON` when the
    body does not parse), starlette's `HTTPException` (404/405 from routing), and any other exception (500
    `INTERNAL_ERROR`, generic message, logged with `logger.exception`).
    """
    from starlette.exceptions import HTTPException

    for base in (ServiceError, ModelError, PolicyError):
        app.add_exception_handler(base, _handle_known)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(HTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)
