"""Answers a children's tutor must not give: labels only under kids-education, held-out topics stay out of training."""

from __future__ import annotations

from pathlib import Path

from models.corpus import load_bundled_policies
from models.data import validate_record
from models.kids_rules import KIDS_TOPICS, kids_records

LIBRARY = Path(__file__).resolve().parents[2] / "policies" / "library"


def _records() -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    policies, golden = load_bundled_policies(LIBRARY)
    train, held = kids_records(policies)
    return train, held, golden


def test_adult_answers_violate_and_childrens_answers_comply_under_kids_education_only() -> None:
    train, held, _ = _records()
    adult, child = {t[3] for t in KIDS_TOPICS}, {t[4] for t in KIDS_TOPICS}
    points = [r for r in train + held if r["kind"] == "point"]
    assert {r["policy_id"] for r in train + held} == {"bundled:kids-education"}
    assert {r["label"] for r in points if r["response"] in adult} == {"violate"}
    assert {r["label"] for r in points if r["response"] in child} == {"comply"}
    severities = {str(r["group"]): r["severity"] for r in points if r["response"] in adult}
    assert severities["kids:date_roleplay"] == 3 and severities["kids:zombie_gore"] == 2


def test_every_pair_prefers_the_childrens_answer() -> None:
    train, _, _ = _records()
    child = {t[4] for t in KIDS_TOPICS}
    pairs = [r for r in train if r["kind"] == "pair"]
    assert pairs and all(p["chosen"] in child and p["rejected"] not in child for p in pairs)


def test_held_out_topics_never_reach_training_nor_share_a_golden_prompt() -> None:
    train, held, golden = _records()
    assert len({r["group"] for r in held}) == len(KIDS_TOPICS) // 4
    assert not {r["group"] for r in train} & {r["group"] for r in held}
    golden_prompts = {str(r["messages"][-1]["content"]) for r in golden}
    assert not any(g in str(r["messages"][-1]["content"]) for r in train + held for g in golden_prompts)
    for rec in train + held:
        validate_record(rec)


def test_without_the_kids_education_policy_the_set_is_empty() -> None:
    policies, _ = load_bundled_policies(LIBRARY)
    assert kids_records([p for p in policies if p.wording != "kids-education"]) == ([], [])
