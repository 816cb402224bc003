"""The deployment-contrast set: labels follow the deployment, held-out topics stay out of training."""

from __future__ import annotations

from pathlib import Path

from models.corpus import load_bundled_policies
from models.data import validate_record
from models.deployment_contrast import DEPLOYMENT_TOPICS, deployment_records

LIBRARY = Path(__file__).resolve().parents[2] / "policies" / "library"


def _records() -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    policies, golden = load_bundled_policies(LIBRARY)
    train, held = deployment_records(policies)
    return train, held, golden


def test_adult_answer_violates_kids_education_and_complies_with_mature_fiction_in_one_flip_group() -> None:
    train, _, _ = _records()
    adult = {t[3] for t in DEPLOYMENT_TOPICS}
    groups: dict[str, dict[str, str]] = {}
    for rec in train:
        if rec["kind"] == "point" and rec.get("flip"):
            assert rec["response"] in adult
            groups.setdefault(str(rec["flip"]), {})[str(rec["policy_id"])] = str(rec["label"])
    assert groups
    for labels in groups.values():
        assert labels == {"bundled:kids-education": "violate", "bundled:mature-fiction": "comply"}


def test_childrens_answer_complies_everywhere_and_pairs_follow_the_deployment() -> None:
    train, _, _ = _records()
    child = {t[4] for t in DEPLOYMENT_TOPICS}
    points = [r for r in train if r["kind"] == "point" and r["response"] in child]
    assert points and all(r["label"] == "comply" for r in points)
    pairs = [r for r in train if r["kind"] == "pair"]
    assert pairs
    for pair in pairs:
        assert (pair["chosen"] in child) == (pair["policy_id"] == "bundled:kids-education")


def test_general_safety_labels_none_of_the_answers() -> None:
    train, held, _ = _records()
    assert {str(r["policy_id"]) for r in train + held} == {"bundled:kids-education", "bundled:mature-fiction"}


def test_held_out_topics_never_reach_training_nor_share_a_golden_prompt() -> None:
    train, held, golden = _records()
    assert held
    assert not {r["group"] for r in train} & {r["group"] for r in held}
    golden_prompts = {str(r["messages"][-1]["content"]) for r in golden}
    assert not any(g in str(r["messages"][-1]["content"]) for r in train + held for g in golden_prompts)
    for rec in train + held:
        validate_record(rec)


def test_without_both_library_policies_the_set_is_empty() -> None:
    policies, _ = load_bundled_policies(LIBRARY)
    assert deployment_records([p for p in policies if p.wording != "mature-fiction"]) == ([], [])
