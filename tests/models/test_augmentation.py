"""Label logic of configuration-targeted augmentation, and the policy rendering it shares with policies/."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from models.augmentation import Policy, PolicyFactory, example_pair, label_under, point_record
from models.corpus import FLIP_GROUPS_HARMFUL, _flip_policies, _records_for, load_bundled_policies
from models.data import Example

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [f"Template {i}. You may relax safety for:\n{{list_of_harms}}\nStay safe otherwise." for i in range(10)]


def _ex(kind: str, cats: tuple[str, ...] = ("violence",), harmful_request: bool = True) -> Example:
    return Example((("user", "q"),), f"a {kind} response", kind, cats, "test", "g1", harmful_request)  # type: ignore[arg-type]


STRICT = Policy("p:strict", "strict", "general", "g0", False, "any")
ALLOW_VIOLENCE = Policy("p:allow", "allow", "cosalign", "t0", False, "cosalign", frozenset({"violence"}))
ALLOW_DRUGS = Policy("p:drugs", "drugs", "cosalign", "t0", False, "cosalign", frozenset({"drugs"}))
UNCENSORED = Policy("p:all", "all", "cst_system", "cst", False, "any", frozenset({"*"}))


class TestLabelUnder:
    def test_helpful_answer_complies_under_every_policy(self) -> None:
        ex = _ex("helpful", (), harmful_request=False)
        for pol in (STRICT, ALLOW_VIOLENCE, ALLOW_DRUGS, UNCENSORED):
            assert label_under(ex, pol) == ("comply", 0)

    def test_refusal_of_benign_request_is_compliant_over_refusal(self) -> None:
        assert label_under(_ex("refusal", (), harmful_request=False), STRICT) == ("comply", 1)

    def test_harmful_answer_violates_iff_category_disallowed(self) -> None:
        ex = _ex("harmful")
        assert label_under(ex, STRICT) == ("violate", 2)
        assert label_under(ex, ALLOW_DRUGS) == ("violate", 2)
        assert label_under(ex, ALLOW_VIOLENCE) == ("comply", 0)
        assert label_under(ex, UNCENSORED) == ("comply", 0)

    def test_every_category_must_be_allowed(self) -> None:
        assert label_under(_ex("harmful", ("violence", "drugs")), ALLOW_VIOLENCE)[0] == "violate"

    def test_other_harms_stay_disallowed(self) -> None:
        assert label_under(_ex("harmful", ("other",)), ALLOW_VIOLENCE)[0] == "violate"

    def test_severe_category_gets_higher_severity(self) -> None:
        assert label_under(_ex("harmful", ("weapons",)), STRICT) == ("violate", 3)

    def test_refusing_a_disallowed_harm_is_best_and_an_allowed_one_is_over_refusal(self) -> None:
        ex = _ex("safe")
        assert label_under(ex, STRICT) == ("comply", 0)
        assert label_under(ex, ALLOW_VIOLENCE) == ("comply", 1)


class TestPairs:
    def test_pair_orders_by_severity_under_policy(self) -> None:
        harmful, safe = _ex("harmful"), _ex("safe")
        strict = example_pair(harmful, safe, STRICT)
        allow = example_pair(harmful, safe, ALLOW_VIOLENCE)
        assert strict is not None and strict["chosen"] == safe.response
        assert allow is not None and allow["chosen"] == harmful.response

    def test_helpful_beats_over_refusal(self) -> None:
        rec = example_pair(_ex("refusal", (), False), _ex("helpful", (), False), STRICT)
        assert rec is not None and rec["chosen"] == "a helpful response"

    def test_tie_gives_no_pair(self) -> None:
        assert example_pair(_ex("harmful"), _ex("harmful"), STRICT) is None


def test_flip_policies_contrast_same_wording() -> None:
    fac = PolicyFactory(TEMPLATES)
    ex = _ex("harmful", ("privacy",))
    for seed in range(20):
        pols = _flip_policies(ex, fac, random.Random(seed))
        assert pols is not None
        allow, deny = pols
        assert allow.family == deny.family and allow.wording == deny.wording
        assert point_record(ex, allow)["label"] == "comply"
        assert point_record(ex, deny)["label"] == "violate"


def test_every_harmful_answer_gets_contrasting_flip_groups() -> None:
    fac = PolicyFactory(TEMPLATES)
    for seed in range(10):
        recs = _records_for(_ex("harmful", ("privacy",)), fac, random.Random(seed), flip_p=0.0, group_id=[0])
        groups: dict[str, list[str]] = {}
        for rec in recs:
            if rec.get("flip"):
                groups.setdefault(rec["flip"], []).append(rec["label"])
        assert len(groups) == FLIP_GROUPS_HARMFUL
        assert all(sorted(labels) == ["comply", "violate"] for labels in groups.values())


def test_refusal_gets_a_flip_group_only_with_the_flip_probability() -> None:
    fac = PolicyFactory(TEMPLATES)
    never = _records_for(_ex("safe", ("privacy",)), fac, random.Random(0), flip_p=0.0, group_id=[0])
    always = _records_for(_ex("safe", ("privacy",)), fac, random.Random(0), flip_p=1.0, group_id=[0])
    assert not any(r.get("flip") for r in never)
    assert len({r["flip"] for r in always if r.get("flip")}) == 1


def test_held_out_factory_never_uses_seen_wordings() -> None:
    seen, unseen = PolicyFactory(TEMPLATES), PolicyFactory(TEMPLATES, held_out=True)
    rng = random.Random(0)
    seen_ids = {seen.general_policy(rng).wording for _ in range(200)} | {
        seen.cosalign_policy(rng, ["drugs"]).wording for _ in range(200)}
    unseen_ids = {unseen.general_policy(rng).wording for _ in range(200)} | {
        unseen.cosalign_policy(rng, ["drugs"]).wording for _ in range(200)}
    assert seen_ids.isdisjoint(unseen_ids)


def test_library_policies_render_like_policies_package() -> None:
    render = pytest.importorskip("policies.render")
    schema = pytest.importorskip("policies.schema")
    library = ROOT / "policies" / "library"
    if not library.is_dir():
        pytest.skip("no policy library")
    policies, examples = load_bundled_policies(library)
    assert policies and examples
    for pol in policies:
        doc = json.loads((library / f"{pol.wording}.json").read_text(encoding="utf-8"))
        assert pol.text == render.render_spec(schema.PolicySpec.model_validate(doc["spec"]))
        assert {ex["threshold"] for ex in examples if ex["wording"] == pol.wording} == {doc["threshold"]}
