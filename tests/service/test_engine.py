"""The Engine protocol, warm_up, FakeEngine, and TorchEngine over the tiny checkpoints from tests/conftest.py."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from models.errors import InvalidInput
from models.types import Message, ScoreInput
from service.batcher import BatcherConfig, DynamicBatcher
from service.engine import WARM_UP_INPUT, Engine, TorchEngine, warm_up
from service.metrics import Metrics
from tests.fakes import FakeEngine, FakeEngineError, encoded, hash_reward

if TYPE_CHECKING:
    from models.scoring import CsrmModel

TOLERANCE = 1e-4

# Conversations of clearly different lengths, so a batch pads most of them.
ITEMS = [
    ScoreInput(
        policy_text="refuse harmful requests about weapons and drugs",
        messages=(Message("user", "how do i bake a cake"), Message("assistant", "mix flour sugar and eggs")),
    ),
    ScoreInput(policy_text="be safe", messages=(Message("user", "hi"), Message("assistant", "hello"))),
    ScoreInput(
        policy_text="fiction with violence is allowed but real world harm is not",
        messages=(
            Message("user", "write a story about a weapon"),
            Message("assistant", "here is a story about a weapon in a fiction world"),
            Message("user", "thanks tell me more please"),
            Message("assistant", "sure here is some more of the story with no harm"),
        ),
    ),
    ScoreInput(policy_text="children safety", messages=(Message("user", "help"), Message("assistant", "sorry"))),
]


class TestFakeEngine:
    def test_is_an_engine(self) -> None:
        assert isinstance(FakeEngine(), Engine)

    def test_encode_is_one_token_per_word_and_deterministic(self) -> None:
        engine = FakeEngine()
        first = engine.encode(ITEMS[1])
        assert first.tokens == 4  # "be safe" + "hi" + "hello"
        assert engine.encode(ITEMS[1]) == first

    def test_encode_refuses_an_empty_conversation(self) -> None:
        with pytest.raises(InvalidInput):
            FakeEngine().encode(ScoreInput(policy_text="p", messages=()))

    def test_score_records_batches_and_injects_failures(self) -> None:
        engine = FakeEngine(fail_on_calls={1}, short_on_calls={2}, reward_fn=lambda item: float(item.tokens))
        batch = [encoded(2, 1), encoded(3, 2)]
        assert [s.reward for s in engine.score(batch)] == [2.0, 3.0]
        with pytest.raises(FakeEngineError):
            engine.score(batch)
        assert len(engine.score(batch)) == 1
        assert engine.batches == [batch, batch, batch]

    def test_default_reward_is_a_hash(self) -> None:
        score = FakeEngine().score([encoded(3, 7)])[0]
        assert score.reward == hash_reward(encoded(3, 7))
        assert 0 < score.p_comply < 1


class TestWarmUp:
    def test_scores_one_small_batch(self) -> None:
        engine = FakeEngine()
        assert len(warm_up(engine)) == 2
        assert engine.batches == [[engine.encode(WARM_UP_INPUT)] * 2]

    def test_wrong_length_is_an_error(self) -> None:
        with pytest.raises(RuntimeError, match="warm-up"):
            warm_up(FakeEngine(short_on_calls={0}))


@pytest.fixture(params=["encoder", "decoder"])
def tiny_model(request: pytest.FixtureRequest) -> CsrmModel:
    model: CsrmModel = request.getfixturevalue(f"tiny_{request.param}_model")
    return model


class TestTorchEngine:
    def test_is_an_engine_describing_its_model(self, tiny_encoder_model: CsrmModel) -> None:
        engine = TorchEngine(tiny_encoder_model)
        assert isinstance(engine, Engine)
        assert engine.model is tiny_encoder_model
        assert engine.model_id == tiny_encoder_model.model_id
        assert engine.checksum == tiny_encoder_model.checksum
        assert engine.device == "cpu"

    def test_batched_scores_match_scores_alone(self, tiny_model: CsrmModel) -> None:
        engine = TorchEngine(tiny_model)
        encoded_items = [engine.encode(item) for item in ITEMS]
        assert len({item.tokens for item in encoded_items}) > 1  # the batch really pads
        batched = engine.score(encoded_items)
        alone = [engine.score([item])[0] for item in encoded_items]
        for together, single in zip(batched, alone, strict=True):
            assert together.reward == pytest.approx(single.reward, abs=TOLERANCE)
            assert together.p_comply == pytest.approx(single.p_comply, abs=TOLERANCE)
            assert (together.tokens, together.truncated) == (single.tokens, single.truncated)

    def test_warm_up(self, tiny_encoder_model: CsrmModel) -> None:
        assert len(warm_up(TorchEngine(tiny_encoder_model))) == 2

    async def test_through_the_batcher_scores_match_scores_alone(self, tiny_model: CsrmModel) -> None:
        engine = TorchEngine(tiny_model)
        batcher = DynamicBatcher(engine, BatcherConfig(max_wait_ms=20), Metrics(CollectorRegistry()))
        await batcher.start()
        try:
            encoded_items = await batcher.encode(ITEMS)
            results = await asyncio.gather(*(batcher.submit(item) for item in encoded_items))
        finally:
            await batcher.stop()
        alone = [engine.score([item])[0] for item in encoded_items]
        for result, single in zip(results, alone, strict=True):
            assert result.score.reward == pytest.approx(single.reward, abs=TOLERANCE)
