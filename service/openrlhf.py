"""Turn OpenRLHF `/get_reward` query strings back into conversations.

OpenRLHF sends `query[i]` = the prompt (its chat template already applied) + the generated response, decoded
from token ids, and, in recent versions, `prompts[i]` = the prompt string alone. The rule, in order:

1. With `prompts[i]`: find it in `query[i]` (left padding or a BOS token may precede it); the response is
   everything after it. The prompt is parsed into turns (rule 3); if it has no recognised markers it is one user
   turn. A trailing open assistant header in the prompt (the generation prompt) is dropped.
2. Without `prompts[i]`, or when it is not found in the query: the query itself is parsed into turns (rule 3); if
   the last turn is the assistant's, that is the conversation.
3. Recognised markers: ChatML (`<|im_start|>role ... <|im_end|>`, Qwen), Llama 3
   (`<|start_header_id|>role<|end_header_id|> ... <|eot_id|>`) and Anthropic HH (`Human:` / `Assistant:`
   paragraphs).
4. Otherwise the whole query is the response, alone (a conversation of one assistant turn: no prompt).

Trailing end-of-turn and padding tokens (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, `</s>`, `<pad>`...) are
stripped from the response, and leading BOS/padding tokens from the prompt.
"""

from __future__ import annotations

import re

from models.types import Message

__all__ = ["parse_turns", "split_query"]

_SPECIAL = (
    "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<pad>", "<|pad|>", "<eos>",
    "<|begin_of_text|>", "<s>", "<bos>", "[PAD]", "[SEP]", "[CLS]",
)  # fmt: skip
_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S)
_LLAMA3 = re.compile(
    r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\s*(.*?)(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)", re.S
)
_HH = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?(.*?)(?=\n\n(?:Human|Assistant):|\Z)", re.S)


def _strip_special(text: str) -> str:
    changed = True
    while changed:
        changed = False
        text = text.strip()
        for token in _SPECIAL:
            if text.endswith(token):
                text, changed = text[: -len(token)], True
            if text.startswith(token):
                text, changed = text[len(token):], True
    return text


def _turns(matches: list[tuple[str, str]]) -> list[Message]:
    turns = []
    for role, content in matches:
        mapped = _ROLES.get(role.lower())
        if mapped is not None:
            turns.append(Message(role=mapped, content=_strip_special(content)))  # type: ignore[arg-type]
    return turns


def parse_turns(text: str) -> list[Message]:
    """The conversation turns in `text` by ChatML, Llama 3 or Human/Assistant markers; [] when none match."""
    if "<|im_start|>" in text:
        return _turns(_CHATML.findall(text))
    if "<|start_header_id|>" in text:
        return _turns(_LLAMA3.findall(text))
    if re.search(r"(?:^|\n)\s*Human:", text) and "Assistant:" in text:
        return _turns([(r, c) for r, c in _HH.findall(_strip_special(text))])
    return []


def split_query(query: str, prompt: str | None) -> tuple[Message, ...]:
    """The conversation one OpenRLHF query stands for, ending with the assistant turn to score (rules above)."""
    if prompt:
        start = query.find(prompt)
        if start >= 0:
            response = _strip_special(query[start + len(prompt):])
            head = parse_turns(prompt)
            if head and head[-1].role == "assistant" and not head[-1].content:
                head = head[:-1]
            if not head:
                user = _strip_special(prompt)
                user = re.sub(r"(?:\n\n)?Assistant:\s*$", "", user).removeprefix("Human:").strip()
                head = [Message(role="user", content=user)]
            return (*head, Message(role="assistant", content=response))
    turns = parse_turns(query)
    if turns and turns[-1].role == "assistant":
        return tuple(turns)
    return (Message(role="assistant", content=_strip_special(query)),)
