"""Plain data types shared across the model package and its callers.

The model sees only text: a rendered policy and a conversation. These types carry that text in, and the
scores out, without any dependency on torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["CONTEXTS", "REQUEST_TAIL_TOKENS", "Context", "EncodedInput", "ItemScore", "Message", "Role", "ScoreInput"]

Role = Literal["system", "user", "assistant"]

Context = Literal["conversation", "response", "request-tail"]
"""What the model reads after the policy: every turn, the final (assistant) response alone, or that response after
the last words of the request that drew it."""

CONTEXTS: tuple[Context, ...] = get_args(Context)

REQUEST_TAIL_TOKENS = 16
"""How many tokens of the last user turn the `request-tail` context keeps (its last ones)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """What the model scores: the rendered policy text and a conversation ending in the assistant turn to judge."""

    policy_text: str
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class EncodedInput:
    """A tokenized ScoreInput, ready to be batched. `truncated` is True when conversation turns were cut."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None
    truncated: bool

    @property
    def tokens(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class ItemScore:
    """The score of one item: raw reward (a logit), calibrated compliance probability, token count, truncation."""

    reward: float
    p_comply: float
    tokens: int
    truncated: bool
