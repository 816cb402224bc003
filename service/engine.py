"""The engine: the one synchronous interface the batcher drives.

`Engine` is what the service needs from a model: `encode` (tokenize one item; thread-safe, called from the
tokenizer pool) and `score` (one forward pass over a batch; called from the single engine thread only).
`TorchEngine` adapts `models.scoring.CsrmModel`; tests use `tests.fakes.FakeEngine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from models.types import EncodedInput, ItemScore, Message, ScoreInput

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = ["WARM_UP_INPUT", "Engine", "TorchEngine", "warm_up"]

WARM_UP_INPUT = ScoreInput(
    policy_text="Warm-up policy: answer helpfully and refuse to help with real-world harm.",
    messages=(
        Message(role="user", content="Hello, how are you?"),
        Message(role="assistant", content="I am fine, thank you. How can I help?"),
    ),
)
"""The item `warm_up` scores: short, valid for every input template."""


@runtime_checkable
class Engine(Protocol):
    """A model the batcher can drive.

    Implementations raise `models.errors` types (e.g. `InputTooLong`, `InvalidInput`), never HTTP errors.
    """

    @property
    def model_id(self) -> str:
        """A stable, human-readable id of the loaded model."""
        ...

    @property
    def checksum(self) -> str:
        """The checksum of the loaded checkpoint (echoed in every score response)."""
        ...

    @property
    def device(self) -> str:
        """Where the model runs, e.g. ``"cpu"`` or ``"cuda:0"``."""
        ...

    @property
    def dtype(self) -> str:
        """The compute dtype, e.g. ``"float32"`` or ``"bfloat16"``."""
        ...

    @property
    def default_threshold(self) -> float:
        """The checkpoint's verdict threshold on `p_comply`, used for inline policy text."""
        ...

    @property
    def policy_token_budget(self) -> int:
        """Most tokens a rendered policy may take; longer policies are refused at publish time."""
        ...

    def policy_tokens(self, policy_text: str) -> int:
        """Tokens the policy text takes under the input template. Thread-safe and CPU-only."""
        ...

    def describe(self) -> dict[str, Any]:
        """The checkpoint's configuration (its ``csrm.json``) as JSON-ready data, for ``GET /v1/model``."""
        ...

    def encode(self, item: ScoreInput) -> EncodedInput:
        """Tokenize one item. Thread-safe and CPU-only; called from the tokenizer pool.

        Raises:
            models.errors.InputTooLong: the policy alone does not fit the model's policy budget.
            models.errors.InvalidInput: the conversation cannot be encoded.
        """
        ...

    def score(self, batch: Sequence[EncodedInput]) -> list[ItemScore]:
        """Score a batch in one forward pass: one `ItemScore` per item, in order. Engine thread only."""
        ...


class TorchEngine(Engine):
    """An `Engine` over a loaded `models.scoring.CsrmModel`.

    Args:
        model: The loaded checkpoint (see `models.checkpoint.load_checkpoint`).
    """

    def __init__(self, model: CsrmModel) -> None:
        self._model = model

    @property
    def model(self) -> CsrmModel:
        """The wrapped model."""
        return self._model

    @property
    def model_id(self) -> str:
        return str(self._model.model_id)

    @property
    def checksum(self) -> str:
        return str(self._model.checksum)

    @property
    def device(self) -> str:
        return str(self._model.device)

    @property
    def dtype(self) -> str:
        return str(self._model.dtype)

    @property
    def default_threshold(self) -> float:
        return float(self._model.config.default_threshold)

    @property
    def policy_token_budget(self) -> int:
        return int(self._model.policy_token_budget)

    def policy_tokens(self, policy_text: str) -> int:
        return int(self._model.policy_tokens(policy_text))

    def describe(self) -> dict[str, Any]:
        return dict(self._model.config.model_dump(mode="json"))

    def encode(self, item: ScoreInput) -> EncodedInput:
        return self._model.encode(item)

    def score(self, batch: Sequence[EncodedInput]) -> list[ItemScore]:
        return list(self._model.score_encoded(batch))


def warm_up(engine: Engine, *, batch_size: int = 2) -> list[ItemScore]:
    """Encode and score one small batch so that lazy initialisation happens before the first request.

    Call it on the engine thread (`DynamicBatcher.warm_up`) or before the batcher starts.

    Args:
        engine: The engine to warm up.
        batch_size: How many copies of `WARM_UP_INPUT` to score together.

    Returns:
        The scores of the warm-up batch.

    Raises:
        RuntimeError: The engine returned the wrong number of scores.
    """
    encoded = engine.encode(WARM_UP_INPUT)
    scores = engine.score([encoded] * batch_size)
    if len(scores) != batch_size:
        raise RuntimeError(f"warm-up batch of {batch_size} returned {len(scores)} scores")
    return scores
