"""Errors raised by the service package.

    ServiceError
    ├── Overloaded         the batcher queue is full; retry after `retry_after_s` (429)
    ├── DeadlineExceeded   the item's deadline passed before it was computed (504)
    ├── RequestCancelled   the caller went away; the item was dropped before compute
    ├── InferenceFailed    the engine raised, or returned the wrong number of scores, for the item's batch
    └── ShuttingDown       the batcher stopped before the item was computed (503)

This module starts with the batcher's errors only. The HTTP mapping (`ERROR_STATUS`, `install_error_handlers`)
belongs here too and is added by the HTTP layer.
"""

from __future__ import annotations

__all__ = [
    "DeadlineExceeded",
    "InferenceFailed",
    "Overloaded",
    "RequestCancelled",
    "ServiceError",
    "ShuttingDown",
]


class ServiceError(Exception):
    """Base class of every error the service package raises."""


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
