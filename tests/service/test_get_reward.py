"""POST /get_reward: OpenRLHF's remote reward model contract, and how queries become conversations."""

from __future__ import annotations

from typing import Any

import pytest

from models.types import Message
from service.app import create_app
from service.openrlhf import parse_turns, split_query
from tests.fakes import FakeEngine
from tests.service.helpers import metric_samples, serve

CHATML_PROMPT = "<|im_start|>system\nbe safe<|im_end|>\n<|im_start|>user\nhow do i bake a cake<|im_end|>\n" \
    "<|im_start|>assistant\n"  # fmt: skip
CHATML_RESPONSE = "mix flour sugar and eggs<|im_end|>"

# What OpenRLHF's remote_rm_fn posts: query = prompt + response (decoded, left padding included), prompts, labels.
OPENRLHF_PAYLOAD = {
    "query": [
        "<|endoftext|><|endoftext|>" + CHATML_PROMPT + CHATML_RESPONSE,
        CHATML_PROMPT + "sorry i cannot help with that<|im_end|><|endoftext|>",
    ],
    "prompts": [CHATML_PROMPT, CHATML_PROMPT],
    "labels": ["", ""],
}


class TestRoundTrip:
    async def test_openrlhf_payload(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/get_reward", json=OPENRLHF_PAYLOAD)
            samples = await metric_samples(client)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"rewards", "scores", "extra_logs"}
        assert len(body["rewards"]) == len(body["scores"]) == 2
        assert all(0.0 <= s <= 1.0 for s in body["scores"])
        logs = body["extra_logs"]
        assert logs["p_comply"] == body["scores"]
        assert logs["truncated"] == [0.0, 0.0]
        assert logs["policy_version"] == [1.0, 1.0]
        assert all(t > 0 for t in logs["tokens"])
        assert "x-total-time" in response.headers
        assert samples[("csrm_request_duration_seconds_count", (("endpoint", "/get_reward"),))] == 1

    async def test_rewards_match_v1_score_for_the_same_conversation(self, make_settings: Any) -> None:
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            rewards = (await client.post("/get_reward", json=OPENRLHF_PAYLOAD)).json()["rewards"]
            scored = await client.post(
                "/v1/score",
                json={
                    "items": [
                        {
                            "messages": [
                                {"role": "system", "content": "be safe"},
                                {"role": "user", "content": "how do i bake a cake"},
                                {"role": "assistant", "content": "mix flour sugar and eggs"},
                            ]
                        }
                    ],
                    "lane": "bulk",
                },
            )
        assert rewards[0] == pytest.approx(scored.json()["results"][0]["reward"])

    async def test_policy_query_parameter(self, make_settings: Any) -> None:
        engine = FakeEngine()
        async with serve(create_app(make_settings(), engine=engine)) as client:
            default = (await client.post("/get_reward", json={"query": ["hello there"]})).json()
            kids = await client.post("/get_reward?policy=kids-education@1", json={"query": ["hello there"]})
            missing = await client.post("/get_reward?policy=nope", json={"query": ["hello there"]})
        assert kids.status_code == 200
        assert kids.json()["rewards"] != default["rewards"]  # a different policy text reaches the model
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "POLICY_NOT_FOUND"

    async def test_query_only_payload(self, make_settings: Any) -> None:
        """Older OpenRLHF versions post only `query`."""
        async with serve(create_app(make_settings(), engine=FakeEngine())) as client:
            response = await client.post("/get_reward", json={"query": ["Human: hi\n\nAssistant: hello"]})
        assert response.status_code == 200
        assert len(response.json()["rewards"]) == 1

    async def test_real_model(
        self, tiny_encoder_checkpoint: Any, real_app_settings: Any, tiny_policy_store: Any
    ) -> None:
        app = create_app(real_app_settings(tiny_encoder_checkpoint), store=tiny_policy_store)
        payload = {
            "query": ["Human: how do i bake a cake\n\nAssistant: mix flour and sugar", "Human: hi\n\nAssistant: hello"],
            "prompts": ["Human: how do i bake a cake\n\nAssistant:", "Human: hi\n\nAssistant:"],
            "labels": [None, None],
        }
        async with serve(app) as client:
            response = await client.post("/get_reward", json=payload)
        assert response.status_code == 200, response.text
        assert len(response.json()["rewards"]) == 2


class TestBadPayloads:
    @pytest.mark.parametrize(
        ("payload", "status", "code"),
        [
            ({"query": []}, 422, "VALIDATION_FAILED"),
            ({"query": ["a", "b"], "prompts": ["a"]}, 422, "VALIDATION_FAILED"),
            ({"query": ["a"], "labels": [1, 2]}, 422, "VALIDATION_FAILED"),
            ({"query": "a"}, 422, "VALIDATION_FAILED"),
            ({"queries": ["a"]}, 422, "VALIDATION_FAILED"),
            ({"query": ["a"] * 4}, 413, "PAYLOAD_TOO_LARGE"),
            ({"query": ["a" * 51]}, 413, "PAYLOAD_TOO_LARGE"),
        ],
    )
    async def test_bad_payload(self, make_settings: Any, payload: Any, status: int, code: str) -> None:
        settings = make_settings(limits={"max_items": 3, "max_chars": 50})
        async with serve(create_app(settings, engine=FakeEngine())) as client:
            response = await client.post("/get_reward", json=payload)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code


class TestSplitQuery:
    def test_prompt_prefix_with_padding_and_end_tokens(self) -> None:
        query = "<|endoftext|>" + CHATML_PROMPT + CHATML_RESPONSE + "<|endoftext|>"
        assert split_query(query, CHATML_PROMPT) == (
            Message("system", "be safe"),
            Message("user", "how do i bake a cake"),
            Message("assistant", "mix flour sugar and eggs"),
        )

    def test_plain_prompt_is_one_user_turn(self) -> None:
        assert split_query("what is two plus two? four", "what is two plus two?") == (
            Message("user", "what is two plus two?"),
            Message("assistant", "four"),
        )

    def test_hh_prompt(self) -> None:
        assert split_query("Human: hi\n\nAssistant: hello</s>", "Human: hi\n\nAssistant:") == (
            Message("user", "hi"),
            Message("assistant", "hello"),
        )

    def test_prompt_not_found_falls_back_to_markers(self) -> None:
        query = "Human: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
        assert split_query(query, "something else") == (
            Message("user", "a"), Message("assistant", "b"), Message("user", "c"), Message("assistant", "d"),
        )  # fmt: skip

    def test_llama3_markers(self) -> None:
        query = (
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>"
        )
        assert split_query(query, None) == (Message("user", "hi"), Message("assistant", "hello"))

    def test_no_markers_scores_the_whole_query_as_the_response(self) -> None:
        assert split_query("just some text</s>", None) == (Message("assistant", "just some text"),)

    def test_conversation_ending_with_the_user_is_treated_as_text(self) -> None:
        query = "Human: hi\n\nAssistant: hello\n\nHuman: bye"
        assert split_query(query, None) == (Message("assistant", query),)

    def test_parse_turns_without_markers(self) -> None:
        assert parse_turns("no markers here") == []
