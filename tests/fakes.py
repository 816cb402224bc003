"""Test doubles that implement the real interfaces.

`FakeEngine(Engine)` is deterministic and model-free: one token per whitespace-separated word (policy tokens too), a reward derived
from a hash of the token ids (or from a function you pass). It records every batch it was asked to score and can
raise on, return a short result for, or block on, chosen calls, so tests can fill the queue deterministically.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

from models.errors import InvalidInput
from models.types import EncodedInput, ItemScore, ScoreInput
from service.engine import Engine

__all__ = ["FakeEngine", "FakeEngineError", "encoded", "hash_reward"]

_GATE_TIMEOUT_S = 30.0  # a forgotten gate fails the test instead of hanging it


class FakeEngineError(RuntimeError):
    """What `FakeEngine.score` raises on the calls listed in `fail_on_calls`."""


def encoded(tokens: int, tag: int = 0, *, truncated: bool = False) -> EncodedInput:
    """An `EncodedInput` of `tokens` tokens whose first id is `tag` (to recognise it in `FakeEngine.batches`)."""
    if tokens < 1:
        raise ValueError("tokens must be >= 1")
    return EncodedInput(input_ids=(tag,) + (1,) * (tokens - 1), token_type_ids=None, truncated=truncated)


def hash_reward(item: EncodedInput) -> float:
    """A deterministic reward in [-5, 5) from the token ids."""
    digest = zlib.crc32(struct.pack(f"{item.tokens}q", *item.input_ids))
    return (digest % 10_000) / 1_000 - 5.0


class FakeEngine(Engine):
    """A deterministic `Engine` for tests.

    Args:
        reward_fn: Reward of one item; `hash_reward` by default. `p_comply` is its sigmoid.
        fail_on_calls: 0-based indices of `score` calls that raise `FakeEngineError`.
        short_on_calls: 0-based indices of `score` calls that return one score fewer than items.
        gate: When given, every `score` call waits for it to be set before scoring (after recording the batch
            and setting `entered`).

    Attributes:
        batches: Every batch `score` was called with, in call order.
        entered: Set each time `score` is entered; clear it yourself to wait for the next call.
    """

    def __init__(
        self,
        *,
        reward_fn: Callable[[EncodedInput], float] = hash_reward,
        fail_on_calls: Collection[int] = (),
        short_on_calls: Collection[int] = (),
        gate: threading.Event | None = None,
        model_id: str = "fake-model",
        checksum: str = "sha256:fake",
        policy_token_budget: int = 10_000,
    ) -> None:
        self._reward_fn = reward_fn
        self._fail_on_calls = frozenset(fail_on_calls)
        self._short_on_calls = frozenset(short_on_calls)
        self._gate = gate
        self._model_id = model_id
        self._checksum = checksum
        self._policy_token_budget = policy_token_budget
        self._lock = threading.Lock()
        self.batches: list[list[EncodedInput]] = []
        self.entered = threading.Event()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def checksum(self) -> str:
        return self._checksum

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def dtype(self) -> str:
        return "float32"

    @property
    def default_threshold(self) -> float:
        return 0.5

    @property
    def policy_token_budget(self) -> int:
        return self._policy_token_budget

    def policy_tokens(self, policy_text: str) -> int:
        return len(policy_text.split())

    def describe(self) -> dict[str, Any]:
        return {"format": "fake", "model_id": self._model_id}

    @property
    def seen(self) -> list[EncodedInput]:
        """Every item the engine was asked to score, in order."""
        with self._lock:
            return [item for batch in self.batches for item in batch]

    def encode(self, item: ScoreInput) -> EncodedInput:
        if not item.messages:
            raise InvalidInput("no messages")
        words = item.policy_text.split() + [w for m in item.messages for w in m.content.split()]
        ids = tuple(zlib.crc32(w.encode()) % 30_000 + 100 for w in words) or (100,)
        return EncodedInput(input_ids=ids, token_type_ids=None, truncated=False)

    def score(self, batch: Sequence[EncodedInput]) -> list[ItemScore]:
        with self._lock:
            call = len(self.batches)
            self.batches.append(list(batch))
        self.entered.set()
        if self._gate is not None and not self._gate.wait(_GATE_TIMEOUT_S):
            raise TimeoutError("FakeEngine gate was never opened")
        if call in self._fail_on_calls:
            raise FakeEngineError(f"injected failure on call {call}")
        scores = [self._score_one(item) for item in batch]
        return scores[:-1] if call in self._short_on_calls else scores

    def _score_one(self, item: EncodedInput) -> ItemScore:
        reward = self._reward_fn(item)
        return ItemScore(
            reward=reward, p_comply=1.0 / (1.0 + math.exp(-reward)), tokens=item.tokens, truncated=item.truncated
        )
