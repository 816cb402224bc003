"""Request size limits (`LimitSettings`), checked before anything is tokenized.

Each violation is a `PayloadTooLarge` (413) whose `details` name the limit, its maximum, the actual value and the
offending field (`items.3.response`), so a client can tell which item to shorten. Shape problems (empty `items`,
wrong types) are the wire models' business (422), not this module's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.errors import PayloadTooLarge
from service.protocol import MessageItem

if TYPE_CHECKING:
    from service.protocol import GetRewardRequest, ScoreRequest
    from service.settings import LimitSettings

__all__ = ["check_get_reward_limits", "check_score_limits"]


def _too_large(message: str, limit: str, maximum: int, actual: int, field: str | None = None) -> PayloadTooLarge:
    details: dict[str, Any] = {"limit": limit, "max": maximum, "actual": actual}
    if field is not None:
        details["field"] = field
    return PayloadTooLarge(message, details=details)


def _check_count(count: int, limits: LimitSettings, field: str) -> None:
    if count > limits.max_items:
        raise _too_large(f"{count} {field} exceed the limit of {limits.max_items}", "max_items", limits.max_items,
                         count, field)  # fmt: skip


def _check_text(value: str | None, limits: LimitSettings, field: str) -> None:
    if value is not None and len(value) > limits.max_chars:
        raise _too_large(f"{field} has {len(value)} characters, over the limit of {limits.max_chars}", "max_chars",
                         limits.max_chars, len(value), field)  # fmt: skip


def check_score_limits(body: ScoreRequest, limits: LimitSettings) -> None:
    """Refuse a `/v1/score` request over the item, message or character limits.

    Raises:
        PayloadTooLarge: with `details` = `{limit, max, actual, field}`.
    """
    _check_count(len(body.items), limits, "items")
    _check_text(body.policy_text, limits, "policy_text")
    for i, item in enumerate(body.items):
        if isinstance(item, MessageItem):
            if len(item.messages) > limits.max_messages:
                raise _too_large(f"items.{i}.messages has {len(item.messages)} messages, over the limit of "
                                 f"{limits.max_messages}", "max_messages", limits.max_messages, len(item.messages),
                                 f"items.{i}.messages")  # fmt: skip
            for j, message in enumerate(item.messages):
                _check_text(message.content, limits, f"items.{i}.messages.{j}.content")
        else:
            _check_text(item.prompt, limits, f"items.{i}.prompt")
            _check_text(item.response, limits, f"items.{i}.response")


def check_get_reward_limits(body: GetRewardRequest, limits: LimitSettings) -> None:
    """Refuse a `/get_reward` request with too many queries or a query or prompt over the character limit.

    Raises:
        PayloadTooLarge: with `details` = `{limit, max, actual, field}`.
    """
    _check_count(len(body.query), limits, "queries")
    for i, query in enumerate(body.query):
        _check_text(query, limits, f"query.{i}")
    for i, prompt in enumerate(body.prompts or ()):
        _check_text(prompt, limits, f"prompts.{i}")
