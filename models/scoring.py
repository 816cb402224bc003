"""`CsrmModel`: a loaded CSRM checkpoint as a pure function from items to scores.

`encode` (tokenizer only, thread-safe) and `score_encoded` (one padded forward pass, engine thread only) are split
so that the service can tokenize on a pool and batch encoded items; `score` does both.

Padding is on the right with the tokenizer's pad id and an attention mask. Encoders pool as they were trained
(`[CLS]`); decoders are scored by Hugging Face's sequence-classification head at the last non-pad token, which with
right padding is the item's own last token, so an item scores the same alone or in a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from models.calibration import Calibration
from models.template import InputTemplate, build_template
from models.types import EncodedInput, ItemScore, ScoreInput

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from models.checkpoint import CsrmConfig

__all__ = ["CsrmModel"]


class CsrmModel:
    """A CSRM ready to score: model in eval mode, tokenizer, input template and calibration.

    Build it with `models.checkpoint.load_checkpoint`; the constructor is for loaders and tests.

    Args:
        model: A `*ForSequenceClassification` with one label, already on its device and dtype, with
            `config.pad_token_id` set.
        tokenizer: Its fast tokenizer.
        config: The checkpoint's `csrm.json` contents.
        model_id: Name reported with every score.
        checksum: sha256 hex digest identifying the checkpoint files.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: CsrmConfig,
        *,
        model_id: str,
        checksum: str,
    ) -> None:
        pad = model.config.pad_token_id
        if not isinstance(pad, int):
            raise ValueError("model.config.pad_token_id must be set before building a CsrmModel")
        model.train(False)
        self._model = model
        self._tokenizer = tokenizer
        self._config = config
        self._model_id = model_id
        self._checksum = checksum
        self._pad_token_id = pad
        self._template = build_template(
            config.template_id,
            tokenizer,
            max_length=config.max_length,
            policy_token_budget=config.policy_token_budget,
            context=config.context,
        )

    @property
    def config(self) -> CsrmConfig:
        """The checkpoint's `csrm.json` contents."""
        return self._config

    @property
    def model_id(self) -> str:
        """The model's name (from `csrm.json`, else the checkpoint directory's name)."""
        return self._model_id

    @property
    def checksum(self) -> str:
        """sha256 hex digest of the checkpoint's files (and of its base weights for adapter checkpoints)."""
        return self._checksum

    @property
    def device(self) -> str:
        """Where the weights live, e.g. `"cpu"` or `"cuda:0"`."""
        return str(next(self._model.parameters()).device)

    @property
    def dtype(self) -> str:
        """Weight dtype name: `"float32"` or `"bfloat16"`."""
        return str(next(self._model.parameters()).dtype).removeprefix("torch.")

    @property
    def pad_token_id(self) -> int:
        """The id used to pad batches (on the right)."""
        return self._pad_token_id

    @property
    def calibration(self) -> Calibration:
        """The reward -> p_comply map."""
        return self._config.calibration

    @property
    def template(self) -> InputTemplate:
        """The input template (tokenization and truncation)."""
        return self._template

    @property
    def max_length(self) -> int:
        """Most tokens per encoded item."""
        return self._config.max_length

    @property
    def policy_token_budget(self) -> int:
        """Most tokens a policy text may take."""
        return self._config.policy_token_budget

    @property
    def torch_model(self) -> PreTrainedModel:
        """The underlying Hugging Face model (for training and evaluation code)."""
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The underlying Hugging Face tokenizer."""
        return self._tokenizer

    def policy_tokens(self, policy_text: str) -> int:
        """Tokens the policy text takes, compared with `policy_token_budget` (cached per text)."""
        return self._template.policy_tokens(policy_text)

    def encode(self, item: ScoreInput) -> EncodedInput:
        """Tokenize and truncate one item. Thread-safe, CPU only, no forward pass.

        Raises:
            InvalidInput: The conversation cannot be encoded (empty, unknown role, not ending with the assistant).
            InputTooLong: The policy exceeds `policy_token_budget`.
        """
        return self._template.encode(item)

    def score_encoded(self, batch: Sequence[EncodedInput]) -> list[ItemScore]:
        """Score encoded items in one padded forward pass under `torch.inference_mode`.

        Call from one thread at a time (the engine thread). Returns one ItemScore per item, in order.
        """
        if not batch:
            return []
        inputs = self._collate(batch)
        with torch.inference_mode():
            logits = self._model(**inputs).logits
        rewards = logits.reshape(len(batch), -1)[:, 0].float().cpu().tolist()
        return [
            ItemScore(
                reward=float(reward),
                p_comply=self.calibration.p_comply(float(reward)),
                tokens=item.tokens,
                truncated=item.truncated,
            )
            for reward, item in zip(rewards, batch, strict=True)
        ]

    def score(self, items: Sequence[ScoreInput]) -> list[ItemScore]:
        """Encode and score items in one batch: the pure function from items to scores."""
        return self.score_encoded([self.encode(item) for item in items])

    def _collate(self, batch: Sequence[EncodedInput]) -> dict[str, torch.Tensor]:
        width = max(item.tokens for item in batch)
        ids = torch.full((len(batch), width), self._pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        with_types = any(item.token_type_ids is not None for item in batch)
        types = torch.zeros((len(batch), width), dtype=torch.long) if with_types else None
        for row, item in enumerate(batch):
            ids[row, : item.tokens] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, : item.tokens] = 1
            if types is not None and item.token_type_ids is not None:
                types[row, : item.tokens] = torch.tensor(item.token_type_ids, dtype=torch.long)
        device = next(self._model.parameters()).device
        inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if types is not None:
            inputs["token_type_ids"] = types.to(device)
        return inputs
