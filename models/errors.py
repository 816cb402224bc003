"""Errors raised by the model package.

    ModelError
    ├── CheckpointError   a checkpoint directory is missing, unreadable or inconsistent
    ├── InputTooLong      the policy alone does not fit the model's policy token budget
    └── InvalidInput      a conversation the template cannot encode (empty, wrong last role)
"""

from __future__ import annotations

__all__ = ["CheckpointError", "InputTooLong", "InvalidInput", "ModelError"]


class ModelError(Exception):
    """Base class of every error the model package raises."""


class CheckpointError(ModelError):
    """A checkpoint directory is missing, unreadable or inconsistent."""


class InputTooLong(ModelError):
    """The rendered policy does not fit the model's policy token budget."""

    def __init__(self, message: str, *, tokens: int, budget: int) -> None:
        super().__init__(message)
        self.tokens = tokens
        self.budget = budget


class InvalidInput(ModelError):
    """A conversation the input template cannot encode."""
