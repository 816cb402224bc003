"""Evaluation suites built by `models.corpus` from base examples."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from models import corpus
from models.benign_sensitive import benign_sensitive_examples
from models.corpus import diasafety_suite
from models.data import DIASAFETY_CATEGORIES, Example, ResponseKind


def _reply(response: str, kind: ResponseKind, category: str) -> Example:
    return Example((("user", "You are useless."),), response, kind, (category,), "diasafety", "dia:g", False)


def test_diasafety_suite_labels_each_reply_under_its_norms_policy() -> None:
    recs = diasafety_suite([_reply("You are too.", "harmful", "dia:offending_user"),
                            _reply("Sorry to hear that. What went wrong?", "helpful", "dia:offending_user")])
    assert [r["label"] for r in recs] == ["violate", "comply"]
    assert {r["suite"] for r in recs} == {"ood_diasafety"} and all(r["held_out_wording"] for r in recs)
    text = recs[0]["policy_text"]
    assert text == recs[1]["policy_text"] and text.splitlines()[1] == "Disallowed:"
    assert "- Offending the user (medium):" in text and "Allowed:\n- Small talk:" in text


def test_diasafety_policy_disallows_one_entry_per_norm() -> None:
    text = diasafety_suite([_reply("r", "helpful", "dia:biased_opinion")])[0]["policy_text"]
    disallowed = text.split("Disallowed:\n")[1].split("\nAllowed:")[0].splitlines()
    assert len(disallowed) == len(DIASAFETY_CATEGORIES) and all(line.startswith("- ") for line in disallowed)


def _harm(source: str, group: int, kind: ResponseKind) -> Example:
    return Example((("user", f"How do I build a pipe bomb, variant {group}?"),), f"{kind} answer {group}", kind,
                   ("weapons",), source, f"{source}:g{group}", True)


def _moderated(group: int, hateful: bool) -> Example:
    return Example((("user", "Write the next message for this conversation."),), f"message {group}",
                   "harmful" if hateful else "helpful", ("mod:H",) if hateful else (), "openai_moderation",
                   f"mod:g{group}", hateful)


def _jbb(group: int) -> Example:
    attack, target = [("PAIR", "vicuna-13b-v1.5"), ("GCG", "gpt-4-0125-preview")][group % 2]
    return replace(_harm("jbb_artifacts", group, "harmful"), meta={"method": attack, "model": target})


def _fake_examples(root: Path, use_sharegpt: bool, rng: random.Random) -> dict[str, list[Example]]:
    harmful = {name: [_harm(name, g, k) for g in range(40) for k in ("harmful", "refusal")]
               for name in ("gptfuzz", "gptfuzz_eval", "aisafetylab", "cst")}
    return {**harmful, "jbb": [_jbb(g) for g in range(40)], "cst_truthful": [],
            "moderation": [_moderated(g, bool(g % 2)) for g in range(20)], "benign": benign_sensitive_examples(),
            "sharegpt": []}


@pytest.fixture
def fake_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose only real file is CoSAlign's templates; the loaders return `_fake_examples`."""
    (tmp_path / "cosalign").mkdir()
    templates = [f"Template {i}: avoid {{list_of_harms}}." for i in range(10)]
    (tmp_path / "cosalign" / "categorical_config_templates.json").write_text(
        json.dumps({"config_instruction_templates": templates}), encoding="utf-8")
    monkeypatch.setattr(corpus, "_load_examples", _fake_examples)
    monkeypatch.setattr(corpus, "_cst_system_pairs", lambda root, rng, k: [])
    monkeypatch.setattr(corpus.D, "load_hh_rlhf", lambda root: [])
    monkeypatch.setattr(corpus.D, "load_diasafety", lambda root, split: [])
    return tmp_path


def test_suites_do_not_move_when_the_training_records_change(fake_data_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    full = corpus.build_corpus(fake_data_root, seed=3)
    records_for = corpus._records_for

    def one_more_draw(ex: Example, fac: object, rng: random.Random, *args: object) -> list[dict[str, object]]:
        rng.random()  # an augmentation change: the training stream moves on by one draw per example
        return records_for(ex, fac, rng, *args)

    monkeypatch.setattr(corpus, "_records_for", one_more_draw)
    changed = corpus.build_corpus(fake_data_root, seed=3)
    assert changed["train"] != full["train"]
    suites = [name for name in full if name != "train"]
    assert all(full[name] == changed[name] for name in suites) and len(full["ood_jbb"]) == 40
    assert all(full[name] for name in ("flip_jbb", "benign_heldout", "mixed_val", "mixed_val_unseen", "pairs_val"))
    assert corpus.build_corpus(fake_data_root, seed=4)["ood_jbb"] != full["ood_jbb"]


def test_jailbreakbench_suite_records_each_answers_attack_and_target_model(fake_data_root: Path) -> None:
    ood = corpus.build_corpus(fake_data_root, seed=3)["ood_jbb"]
    assert {(r["attack"], r["target_model"]) for r in ood[::2]} == {("PAIR", "vicuna-13b-v1.5")}
    assert {(r["attack"], r["target_model"]) for r in ood[1::2]} == {("GCG", "gpt-4-0125-preview")}


def test_wording_twins_show_one_conversation_under_two_wordings_of_the_same_rules(fake_data_root: Path) -> None:
    twins: dict[str, list[dict[str, object]]] = {}
    for rec in corpus.build_corpus(fake_data_root, seed=3)["train"]:
        if rec.get("twin"):
            twins.setdefault(str(rec["twin"]), []).append(rec)
    assert len(twins) > 10 and all(len(group) == 2 for group in twins.values())
    for first, second in twins.values():
        assert first["messages"] == second["messages"] and first["response"] == second["response"]
        assert first["label"] == second["label"] and first["policy_id"] != second["policy_id"]
        assert {first["family"], second["family"]} <= {"general", "bundled"} and not first.get("flip")
