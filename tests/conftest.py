"""Shared fixtures: tiny, randomly initialised CSRM checkpoints built locally (no download), deterministic.

Fixtures (session-scoped unless noted; names are stable, other packages' tests use them):

- `tiny_encoder_checkpoint` -> Path: a BERT-style checkpoint dir (hidden 32, 2 layers, WordPiece vocab written
  in code), template `encoder-pair/1`, max_length 128, policy_token_budget 64, calibration T=2.0 b=0.1.
- `tiny_decoder_checkpoint` -> Path: a Llama-style checkpoint dir (hidden 32, 2 layers) whose tokenizer has a jinja
  chat template, template `decoder-chat/1`, same lengths and calibration.
- `tiny_encoder_model`, `tiny_decoder_model` -> CsrmModel: those checkpoints loaded on CPU in float32
  (shared: do not mutate them).
- `build_checkpoint` (function-scoped fixture) -> the `build_checkpoint` function below, for checkpoints with
  other `csrm.json` values: `build_checkpoint(tmp_path, arch="decoder", max_length=48, policy_token_budget=16)`.

Both vocabularies hold the letters and `##` letter pieces, so any lower-case ASCII text tokenizes without `[UNK]`;
a word costs one token if it is in `WORDS`, else one per letter.
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from models.scoring import CsrmModel

__all__ = ["CHAT_TEMPLATE", "WORDS", "build_checkpoint"]

WORDS = (
    "the a an and or not no yes is are was be to of in on for with without by from at as it this that you i we "
    "they he she do does did can cannot will would should must may please help how what why when where who which "
    "policy policies safety safe unsafe allowed disallowed allow disallow refuse refusal comply violate harm "
    "harmful violence weapon weapons drug drugs hate self medical legal advice fiction story children child adult "
    "user assistant system question answer sure sorry here is some information about make build write tell me "
    "bake cake recipe flour sugar eggs oven minutes hello hi thanks good bad okay one two three"
).split()

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CHAT_SPECIALS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def _vocabulary(specials: list[str]) -> list[str]:
    pieces = list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    return specials + list(string.punctuation) + list(string.digits) + pieces + list(dict.fromkeys(WORDS))


def _csrm_json(arch: str, name: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": "csrm/1",
        "architecture": arch,
        "template_id": "encoder-pair/1" if arch == "encoder" else "decoder-chat/1",
        "max_length": 128,
        "policy_token_budget": 64,
        "truncation": "oldest-turns-first",
        "calibration": {"temperature": 2.0, "bias": 0.1},
        "default_threshold": 0.5,
        "base_model": {"name": f"random-tiny-{arch}"},
        "model_id": name,
        "training_data": {"note": "none: randomly initialised test model"},
        "eval_metrics": {},
    }
    data.update(overrides)
    return data


def _encoder(out: Path) -> tuple[Any, Any]:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = _vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    vocab_file = out / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab_file), model_max_length=512)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.2,
        pad_token_id=0,
        num_labels=1,
    )
    return BertForSequenceClassification(config), tokenizer


def _decoder(*, pad: bool, chat_template: bool) -> tuple[Any, Any]:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = _vocabulary(["<pad>", "<unk>", "<s>", "</s>", *_CHAT_SPECIALS])
    backend = Tokenizer(WordPiece({tok: i for i, tok in enumerate(vocab)}, unk_token="<unk>"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>" if pad else None,
        additional_special_tokens=_CHAT_SPECIALS,
        chat_template=CHAT_TEMPLATE if chat_template else None,
        model_max_length=512,
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,
        bos_token_id=vocab.index("<s>"),
        eos_token_id=vocab.index("</s>"),
        pad_token_id=vocab.index("<pad>") if pad else None,
        tie_word_embeddings=False,
        num_labels=1,
    )
    return LlamaForSequenceClassification(config), tokenizer


def build_checkpoint(
    tmp_path: Path,
    arch: str = "encoder",
    *,
    seed: int = 0,
    pad_token: bool = True,
    chat_template: bool = True,
    **csrm_overrides: Any,
) -> Path:
    """Write a tiny random checkpoint (model + tokenizer + csrm.json) under `tmp_path` and return its directory.

    Args:
        tmp_path: Parent directory; the checkpoint goes to a fresh `tiny-<arch>[-N]` subdirectory.
        arch: `encoder` (BERT) or `decoder` (Llama).
        seed: torch seed for the weights (same seed, same weights).
        pad_token: Decoder only: False leaves the tokenizer and model without a pad token.
        chat_template: Decoder only: False saves the tokenizer without a chat template.
        **csrm_overrides: Top-level `csrm.json` keys to replace (e.g. `max_length=48`, `calibration={...}`).
    """
    import json

    import torch

    out = next(
        tmp_path / name
        for name in (f"tiny-{arch}" + ("" if n == 0 else f"-{n}") for n in itertools.count())
        if not (tmp_path / name).exists()
    )
    out.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "encoder":
            model, tokenizer = _encoder(out)
        elif arch == "decoder":
            model, tokenizer = _decoder(pad=pad_token, chat_template=chat_template)
        else:
            raise ValueError(f"arch must be encoder or decoder, got {arch!r}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    csrm = _csrm_json(arch, out.name, **csrm_overrides)
    (out / "csrm.json").write_text(json.dumps(csrm, indent=2) + "\n", encoding="utf-8")
    return out


@pytest.fixture(name="build_checkpoint")
def _build_checkpoint_fixture() -> Any:
    return build_checkpoint


@pytest.fixture(scope="session")
def tiny_encoder_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("checkpoints"), "encoder")


@pytest.fixture(scope="session")
def tiny_decoder_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("checkpoints"), "decoder")


@pytest.fixture(scope="session")
def tiny_encoder_model(tiny_encoder_checkpoint: Path) -> Iterator[CsrmModel]:
    from models.checkpoint import load_checkpoint

    yield load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_decoder_model(tiny_decoder_checkpoint: Path) -> Iterator[CsrmModel]:
    from models.checkpoint import load_checkpoint

    yield load_checkpoint(tiny_decoder_checkpoint, device="cpu", dtype="float32")
