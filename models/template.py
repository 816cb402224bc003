"""Input templates: how a rendered policy and a conversation become the token ids the model reads.

Two templates, named by the `template_id` in `csrm.json`:

- `encoder-pair/1` (BERT-like): segment A is the policy text, segment B the conversation, one line per turn,
  `"System: ..."`, `"User: ..."`, `"Assistant: ..."`; special tokens and token type ids come from the tokenizer's own
  pair post-processor (`[CLS] A [SEP] B [SEP]` for BERT). Each turn line is tokenized on its own and the pieces are
  concatenated (for WordPiece this equals tokenizing the newline-joined text).
- `decoder-chat/1` (Llama/Qwen-like): the tokenizer's chat template applied to `[system: policy] + conversation`,
  no generation prompt, tokenized without extra special tokens (as `apply_chat_template(tokenize=True)` does).
  A tokenizer without a chat template gets `FALLBACK_CHAT_TEMPLATE`: `bos`, then one `"Role: content"` block per
  turn, blocks separated by a blank line. The model is scored at the last non-pad token.

Truncation (rule `oldest-turns-first`), so that the total stays within `max_length`:

1. The policy is never cut. A policy longer than `policy_token_budget` (counted as the policy text alone, without
   template tokens) raises `InputTooLong(tokens=, budget=)`.
2. Whole turns are dropped, oldest first, but never the last user turn nor anything after it.
3. If that is not enough, the head (oldest text) of the oldest remaining turn is cut, token by token; a turn cut
   to nothing is dropped and cutting goes on with the next one. The final (assistant) turn is kept, its tail last.
4. `truncated` is True whenever anything was cut. If the policy and the template alone leave no room, `InputTooLong`.

Context (`CONTEXTS`): `conversation` reads every turn, as above; `response` reads the final assistant turn alone (the
earlier turns are dropped before rendering and do not set `truncated`), for a model that judges what was said, not
what was asked: an attack prompt then cannot talk the model into passing the answer it drew. `request-tail` reads
the last user turn cut to its last `REQUEST_TAIL_TOKENS` tokens, then what follows it: the words that name the
request (attack prompts put them last) without the framing before them. Neither cut sets `truncated`.

Templates are thread-safe: they hold a private copy of the tokenizer's Rust backend with truncation and padding
turned off (tokenizer files often ship with them on), never mutate it, and cache policy tokenizations in an LRU.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from tokenizers import Encoding, Tokenizer

from models.errors import CheckpointError, InputTooLong, InvalidInput
from models.types import CONTEXTS, REQUEST_TAIL_TOKENS, Context, EncodedInput, Message, ScoreInput

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "FALLBACK_CHAT_TEMPLATE",
    "ROLE_LABELS",
    "TEMPLATE_IDS",
    "DecoderChatTemplate",
    "EncoderPairTemplate",
    "InputTemplate",
    "build_template",
]

ROLE_LABELS: dict[str, str] = {"system": "System", "user": "User", "assistant": "Assistant"}

FALLBACK_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}{% if not loop.first %}\n\n{% endif %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}{% endfor %}"
)

_MAX_CUT_ROUNDS = 10_000


@dataclass(frozen=True, slots=True)
class _Rendered:
    input_ids: list[int]
    token_type_ids: list[int] | None


class InputTemplate(ABC):
    """Turns a ScoreInput into an EncodedInput that fits `max_length`, never cutting the policy.

    Args:
        tokenizer: A fast (Rust-backed) Hugging Face tokenizer.
        max_length: Most tokens in one encoded item, special tokens included.
        policy_token_budget: Most tokens the policy text alone may take.
        policy_cache_size: How many distinct policy texts keep their tokenization cached.
        context: `conversation` (every turn), `response` (the final assistant turn alone) or `request-tail` (the
            last user turn's last `REQUEST_TAIL_TOKENS` tokens and what follows it).

    Raises:
        CheckpointError: The tokenizer is not a fast tokenizer, the lengths are inconsistent, or the context is
            unknown.
    """

    template_id: ClassVar[str]

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int,
        policy_token_budget: int,
        policy_cache_size: int = 1024,
        context: Context = "conversation",
    ) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise CheckpointError(f"template {self.template_id} needs a fast tokenizer, got {type(tokenizer).__name__}")
        if not 0 < policy_token_budget < max_length:
            raise CheckpointError(f"need 0 < policy_token_budget ({policy_token_budget}) < max_length ({max_length})")
        if context not in CONTEXTS:
            raise CheckpointError(f"unknown context {context!r}; known: {list(CONTEXTS)}")
        self.context = context
        self._tokenizer = tokenizer
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self.max_length = max_length
        self.policy_token_budget = policy_token_budget
        self._policy_encoding: Callable[[str], Encoding] = functools.lru_cache(maxsize=policy_cache_size)(
            self._tokenize
        )

    def policy_tokens(self, policy_text: str) -> int:
        """Number of tokens of the policy text alone (what `policy_token_budget` bounds)."""
        return len(self._policy_encoding(policy_text).ids)

    def encode(self, item: ScoreInput) -> EncodedInput:
        """Encode one item, truncating the conversation if needed.

        Raises:
            InvalidInput: Empty policy or messages, an unknown role, or a conversation not ending in an assistant turn.
            InputTooLong: The policy exceeds its budget, or the policy and template leave no room for the response.
        """
        turns = self._context_turns(_validate(item))
        policy = self._policy_encoding(item.policy_text)
        if len(policy.ids) > self.policy_token_budget:
            raise InputTooLong(
                f"policy has {len(policy.ids)} tokens, over the model's policy budget of {self.policy_token_budget}",
                tokens=len(policy.ids),
                budget=self.policy_token_budget,
            )
        rendered, truncated = self._fit(item.policy_text, policy, turns)
        return EncodedInput(
            input_ids=tuple(rendered.input_ids),
            token_type_ids=None if rendered.token_type_ids is None else tuple(rendered.token_type_ids),
            truncated=truncated,
        )

    def _context_turns(self, turns: list[Message]) -> list[Message]:
        if self.context == "conversation":
            return turns
        last_user = _last_user_turn(turns)
        if self.context == "response" or last_user is None:
            return turns[-1:]
        request, rest = turns[last_user], turns[last_user + 1 :]
        offsets = self._tokenize(request.content).offsets
        if len(offsets) > REQUEST_TAIL_TOKENS:
            request = replace(request, content=request.content[offsets[-REQUEST_TAIL_TOKENS][0] :])
        return [request, *rest]

    @abstractmethod
    def _render(self, policy_text: str, policy: Encoding, turns: Sequence[Message]) -> _Rendered:
        """Token ids (and type ids) of the policy followed by these turns, untruncated."""

    def _tokenize(self, text: str) -> Encoding:
        return self._backend.encode(text, add_special_tokens=False)

    def _fit(self, policy_text: str, policy: Encoding, turns: list[Message]) -> tuple[_Rendered, bool]:
        def render(candidate: Sequence[Message]) -> _Rendered:
            return self._render(policy_text, policy, candidate)

        rendered = render(turns)
        if len(rendered.input_ids) <= self.max_length:
            return rendered, False
        turns = _drop_oldest_turns(turns, render, self.max_length)
        return self._cut_heads(turns, render), True

    def _cut_heads(self, turns: list[Message], render: Callable[[Sequence[Message]], _Rendered]) -> _Rendered:
        for _ in range(_MAX_CUT_ROUNDS):
            rendered = render(turns)
            over = len(rendered.input_ids) - self.max_length
            if over <= 0:
                return rendered
            offsets = self._tokenize(turns[0].content).offsets
            if over < len(offsets):
                turns[0] = replace(turns[0], content=turns[0].content[offsets[over][0] :])
            elif len(turns) > 1:
                turns.pop(0)
            elif turns[0].content:
                turns[0] = replace(turns[0], content="")
            else:
                raise InputTooLong(
                    f"the policy and the template take {len(rendered.input_ids)} tokens, "
                    f"leaving no room for the response within max_length {self.max_length}",
                    tokens=len(rendered.input_ids),
                    budget=self.max_length,
                )
        raise InputTooLong("conversation could not be cut to fit", tokens=-1, budget=self.max_length)


def _validate(item: ScoreInput) -> list[Message]:
    if not isinstance(item.policy_text, str) or not item.policy_text.strip():
        raise InvalidInput("policy text is empty")
    if not item.messages:
        raise InvalidInput("messages are empty: need at least the assistant turn to score")
    for index, message in enumerate(item.messages):
        if message.role not in ROLE_LABELS:
            raise InvalidInput(f"message {index} has unknown role {message.role!r} (system, user or assistant)")
        if not isinstance(message.content, str):
            raise InvalidInput(f"message {index} content must be a string")
    if item.messages[-1].role != "assistant":
        raise InvalidInput(f"the last message must be the assistant turn to score, got {item.messages[-1].role!r}")
    return list(item.messages)


def _last_user_turn(turns: Sequence[Message]) -> int | None:
    """Index of the last user turn (the request the final answer replies to), or None without one."""
    return next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)


def _drop_oldest_turns(
    turns: list[Message], render: Callable[[Sequence[Message]], _Rendered], limit: int
) -> list[Message]:
    """Drop the fewest oldest whole turns so that the rest fits, never the last user turn nor what follows it."""
    last_user = _last_user_turn(turns)
    keep_from = len(turns) - 1 if last_user is None else last_user
    lo, hi = 1, keep_from  # the answer is the smallest k in [lo, hi] that fits, else hi
    while lo < hi:
        mid = (lo + hi) // 2
        if len(render(turns[mid:]).input_ids) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return turns[hi:] if hi > 0 else list(turns)


class EncoderPairTemplate(InputTemplate):
    """`encoder-pair/1`: policy as segment A, the conversation (one "Role: content" line per turn) as segment B."""

    template_id: ClassVar[str] = "encoder-pair/1"

    def _render(self, policy_text: str, policy: Encoding, turns: Sequence[Message]) -> _Rendered:
        lines = [self._tokenize(f"{ROLE_LABELS[m.role]}: {m.content}") for m in turns]
        conversation = Encoding.merge(lines, growing_offsets=True)
        pair = self._backend.post_process(policy, conversation, add_special_tokens=True)
        type_ids = list(pair.type_ids) if "token_type_ids" in self._tokenizer.model_input_names else None
        return _Rendered(list(pair.ids), type_ids)


class DecoderChatTemplate(InputTemplate):
    """`decoder-chat/1`: the chat template over [system: policy] + conversation, scored at the last token."""

    template_id: ClassVar[str] = "decoder-chat/1"

    def _render(self, policy_text: str, policy: Encoding, turns: Sequence[Message]) -> _Rendered:
        chat = [{"role": "system", "content": policy_text}]
        chat += [{"role": m.role, "content": m.content} for m in turns]
        template = None if getattr(self._tokenizer, "chat_template", None) else FALLBACK_CHAT_TEMPLATE
        try:
            text = self._tokenizer.apply_chat_template(
                chat, chat_template=template, add_generation_prompt=False, tokenize=False
            )
        except Exception as exc:  # jinja raises TemplateError and friends for conversations it refuses
            raise InvalidInput(f"the chat template refused this conversation: {exc}") from exc
        if not isinstance(text, str):
            raise CheckpointError(f"apply_chat_template returned {type(text).__name__}, expected text")
        return _Rendered(list(self._tokenize(text).ids), None)


TEMPLATE_IDS: dict[str, type[InputTemplate]] = {
    EncoderPairTemplate.template_id: EncoderPairTemplate,
    DecoderChatTemplate.template_id: DecoderChatTemplate,
}


def build_template(
    template_id: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    policy_token_budget: int,
    context: Context = "conversation",
) -> InputTemplate:
    """The InputTemplate registered under `template_id`.

    Raises:
        CheckpointError: Unknown template id, a tokenizer that cannot encode a plain user/assistant exchange under
            a one-word policy (e.g. a chat template without a system role), or see InputTemplate.
    """
    try:
        cls = TEMPLATE_IDS[template_id]
    except KeyError:
        raise CheckpointError(f"unknown template {template_id!r}; known: {sorted(TEMPLATE_IDS)}") from None
    template = cls(tokenizer, max_length=max_length, policy_token_budget=policy_token_budget, context=context)
    try:
        template.encode(_PROBE)
    except InvalidInput as exc:
        raise CheckpointError(f"template {template_id} cannot encode a basic conversation: {exc}") from exc
    return template


_PROBE = ScoreInput("policy", (Message("user", "hello"), Message("assistant", "hello")))
