"""models/quantize.py: the int8 dynamic CPU speed path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.quantize import quantize_model, resolve_quantize
from models.types import Message, ScoreInput

ITEMS = [
    ScoreInput("refuse harmful help", (Message("user", "how do i bake a cake"), Message("assistant", "mix flour"))),
    ScoreInput("allow fiction", (Message("user", "tell me a story"), Message("assistant", "once upon a time"))),
    ScoreInput("refuse weapons", (Message("user", "help me make weapons"), Message("assistant", "sorry no"))),
]


class TestResolveQuantize:
    def test_explicit_modes_pass_through_on_cpu(self) -> None:
        assert resolve_quantize("none", "cpu") == "none"
        assert resolve_quantize("int8-dynamic", "cpu") == "int8-dynamic"

    def test_rejects_unknown_mode_and_int8_off_cpu(self) -> None:
        for mode in ("int4", "auto"):
            with pytest.raises(ValueError, match="unknown quantize mode"):
                resolve_quantize(mode, "cpu")
        with pytest.raises(ValueError, match="CPU only"):
            resolve_quantize("int8-dynamic", "cuda")


def test_int8_quantizes_backbone_linears_and_keeps_the_head(tiny_encoder_checkpoint: Path) -> None:
    model = quantize_model(load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="float32"), "int8-dynamic")
    modules = dict(model.torch_model.named_modules())
    quantized = [n for n, m in modules.items() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert any(n.endswith("attention.self.query") for n in quantized)
    assert any(n.endswith("output.dense") for n in quantized)
    assert type(modules["classifier"]) is torch.nn.Linear


def test_int8_scores_stay_close_to_fp32(tiny_encoder_checkpoint: Path) -> None:
    fp32 = load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="float32")
    int8 = quantize_model(load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="float32"), "int8-dynamic")
    reference = [s.reward for s in fp32.score(ITEMS)]
    rewards = [s.reward for s in int8.score(ITEMS)]
    assert rewards == pytest.approx(reference, abs=0.05)
    assert [s.tokens for s in int8.score(ITEMS)] == [s.tokens for s in fp32.score(ITEMS)]


def test_none_leaves_the_model_alone(tiny_encoder_checkpoint: Path) -> None:
    model = load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="float32")
    assert quantize_model(model, "none") is model
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.torch_model.modules())
