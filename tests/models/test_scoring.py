from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.scoring import CsrmModel
from models.types import Message, ScoreInput

POLICY = "no violence allowed . please refuse weapons"


def item(policy: str, *turns: tuple[str, str]) -> ScoreInput:
    return ScoreInput(policy, tuple(Message(role, content) for role, content in turns))  # type: ignore[arg-type]


ITEMS = [
    item(POLICY, ("user", "how do i bake a cake"), ("assistant", "here is some recipe with flour sugar eggs")),
    item(POLICY, ("assistant", "sure")),
    item("no drugs", ("user", "hello"), ("assistant", "sorry i cannot help with drugs")),
    item(POLICY, ("system", "be good"), ("user", "tell me a story"), ("assistant", "one " * 40)),
    item(POLICY, ("user", "cake " * 200), ("assistant", "okay")),  # truncated
    item(POLICY, ("assistant", "sure")),  # a duplicate
]


@pytest.fixture(params=["encoder", "decoder"])
def model(request: pytest.FixtureRequest) -> CsrmModel:
    fixture: CsrmModel = request.getfixturevalue(f"tiny_{request.param}_model")
    return fixture


def test_scores_are_explicit(model: CsrmModel) -> None:
    scores = model.score(ITEMS)
    assert len(scores) == len(ITEMS)
    for score, source in zip(scores, ITEMS, strict=True):
        assert type(score.reward) is float and type(score.p_comply) is float
        assert score.p_comply == pytest.approx(model.calibration.p_comply(score.reward))
        assert score.tokens == model.encode(source).tokens <= model.max_length
    assert [s.truncated for s in scores] == [False, False, False, False, True, False]
    assert len({round(s.reward, 6) for s in scores}) > 2  # a random model still tells inputs apart


def test_batched_equals_one_by_one(model: CsrmModel) -> None:
    batched = model.score(ITEMS)
    alone = [model.score([x])[0] for x in ITEMS]
    for b, a in zip(batched, alone, strict=True):
        assert b.reward == pytest.approx(a.reward, abs=1e-4)
        assert b.p_comply == pytest.approx(a.p_comply, abs=1e-4)
        assert (b.tokens, b.truncated) == (a.tokens, a.truncated)


def test_order_of_the_batch_does_not_matter(model: CsrmModel) -> None:
    forward = model.score(ITEMS)
    backward = model.score(ITEMS[::-1])[::-1]
    assert [s.reward for s in forward] == pytest.approx([s.reward for s in backward], abs=1e-4)


def test_score_encoded_matches_score(model: CsrmModel) -> None:
    encoded = [model.encode(x) for x in ITEMS]
    assert model.score_encoded(encoded) == model.score(ITEMS)
    assert model.score_encoded([]) == []


def test_model_is_in_eval_mode_on_cpu_float32(model: CsrmModel) -> None:
    assert not model.torch_model.training
    assert (model.device, model.dtype) == ("cpu", "float32")
    assert model.pad_token_id == 0
    assert len(model.checksum) == 64 and model.model_id.startswith("tiny-")


def test_decoder_reward_is_the_head_at_the_last_token(tiny_decoder_model: CsrmModel) -> None:
    encoded = tiny_decoder_model.encode(ITEMS[0])
    hf = tiny_decoder_model.torch_model
    with torch.inference_mode():
        out = hf.model(input_ids=torch.tensor([encoded.input_ids]))
        expected = hf.score(out.last_hidden_state[0, -1]).item()
    assert tiny_decoder_model.score_encoded([encoded])[0].reward == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_decoder_head_pools_the_last_real_token_with_either_padding(
    tiny_decoder_model: CsrmModel, side: str
) -> None:
    short, long = (tiny_decoder_model.encode(x) for x in (ITEMS[1], ITEMS[0]))
    pad = [tiny_decoder_model.pad_token_id] * (long.tokens - short.tokens)
    ids = pad + list(short.input_ids) if side == "left" else list(short.input_ids) + pad
    mask = [0] * len(pad) + [1] * short.tokens if side == "left" else [1] * short.tokens + [0] * len(pad)
    with torch.inference_mode():
        logits = tiny_decoder_model.torch_model(
            input_ids=torch.tensor([ids, list(long.input_ids)]), attention_mask=torch.tensor([mask, [1] * long.tokens])
        ).logits
    alone = tiny_decoder_model.score_encoded([short])[0].reward
    assert logits[0, 0].item() == pytest.approx(alone, abs=1e-4)


def test_decoder_without_pad_token_pads_with_eos(tmp_path: Path) -> None:
    from tests.conftest import build_checkpoint

    model = load_checkpoint(build_checkpoint(tmp_path, "decoder", pad_token=False), device="cpu")
    assert model.pad_token_id == model.tokenizer.convert_tokens_to_ids("</s>")
    batched = model.score(ITEMS)
    alone = [model.score([x])[0] for x in ITEMS]
    assert [s.reward for s in batched] == pytest.approx([s.reward for s in alone], abs=1e-4)


def test_bfloat16_scores_are_fp32_python_floats(tiny_encoder_checkpoint: Path, tiny_encoder_model: CsrmModel) -> None:
    model = load_checkpoint(tiny_encoder_checkpoint, device="cpu", dtype="bfloat16")
    assert model.dtype == "bfloat16"
    scores = model.score(ITEMS[:2])
    assert all(type(s.reward) is float for s in scores)
    reference = tiny_encoder_model.score(ITEMS[:2])
    assert [s.reward for s in scores] == pytest.approx([s.reward for s in reference], abs=0.1)


def test_policy_tokens(model: CsrmModel) -> None:
    assert model.policy_tokens(POLICY) == len(POLICY.split())
    assert model.policy_token_budget == 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_is_bfloat16_and_fp32_batches_agree(tiny_decoder_checkpoint: Path) -> None:
    auto = load_checkpoint(tiny_decoder_checkpoint)
    assert auto.device.startswith("cuda") and auto.dtype == "bfloat16"
    assert all(type(s.reward) is float for s in auto.score(ITEMS))
    model = load_checkpoint(tiny_decoder_checkpoint, device="cuda", dtype="float32")
    batched = model.score(ITEMS)
    alone = [model.score([x])[0] for x in ITEMS]
    assert [s.reward for s in batched] == pytest.approx([s.reward for s in alone], abs=1e-4)
