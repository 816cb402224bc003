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


def test_adult_answer_violates_kids_education_and_complies_elsewhere_in_one_flip_group() -> None:
    train, _, _ = _records()
    adult = {t[3]: t[4] for t in DEPLOYMENT_TOPICS}
    groups: dict[str, dict[str, str]] = {}
    for rec in train:
        if rec["kind"] == "point" and rec.get("flip"):
            groups.setdefault(str(rec["flip"]), {})[str(rec["policy_id"])] = str(rec["label"])
            assert any(rec["response"] == a for a in adult.values())
    assert groups
    for labels in groups.values():
        assert labels.pop("bundled:kids-education") == "violate"
        assert list(labels.values()) == ["comply"]


def test_childrens_answer_complies_everywhere_and_pairs_follow_the_deployment() -> None:
    train, _, _ = _records()
    child = {t[5] for t in DEPLOYMENT_TOPICS}
    points = [r for r in train if r["kind"] == "point" and r["response"] in child]
    assert points and all(r["label"] == "comply" for r in points)
    for pair in (r for r in train if r["kind"] == "pair"):
        kids = pair["policy_id"] == "bundled:kids-education"
        assert (pair["chosen"] in child) == kids


def test_held_out_topics_never_reach_training_nor_share_a_golden_prompt() -> None:
    train, held, golden = _records()
    assert held
    assert not {r["group"] for r in train} & {r["group"] for r in held}
    golden_prompts = {str(r["messages"][-1]["content"]) for r in golden}
    assert not any(g in str(r["messages"][-1]["content"]) for r in train + held for g in golden_prompts)
    for rec in train + held:
        validate_record(rec)


def test_without_the_library_the_set_is_empty() -> None:
    assert deployment_records([]) == ([], [])
