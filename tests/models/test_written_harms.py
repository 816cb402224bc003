"""The harmful-text set: three answers per phrasing, labels from the categories, JailbreakBench overlap filter."""

from __future__ import annotations

from collections import Counter

from models.augmentation import Policy, label_under
from models.corpus import _drop_overlaps
from models.data import CATEGORIES
from models.written_harms import WRITTEN_HARM_TOPICS, written_harm_examples

_EVERY_HARM_DISALLOWED = Policy("general:t", "No harmful content.", "general", "t", False, "any")


def _allowing(categories: set[str]) -> Policy:
    return Policy("cosalign:t", "Allowed: ...", "cosalign", "t", False, "cosalign", frozenset(categories))


def test_every_phrasing_has_the_harm_a_refusal_and_an_alternative() -> None:
    items = written_harm_examples(phrasings_per_topic=3)
    assert len(items) == 9 * len(WRITTEN_HARM_TOPICS)
    per_prompt = Counter((ex.group, ex.messages, ex.kind) for ex in items)
    assert set(per_prompt.values()) == {1, 2}  # one harmful and two safe answers per phrasing
    assert len({ex.messages for ex in items}) == 3 * len(WRITTEN_HARM_TOPICS)
    assert all(ex.harmful_request and ex.source == "written_harms" for ex in items)
    assert {c for ex in items for c in ex.categories} <= set(CATEGORIES) | {"other"}


def test_harmful_answer_complies_only_where_every_category_it_engages_is_allowed() -> None:
    for ex in written_harm_examples(phrasings_per_topic=1):
        if ex.kind != "harmful":
            assert label_under(ex, _EVERY_HARM_DISALLOWED)[0] == "comply"
            continue
        assert label_under(ex, _EVERY_HARM_DISALLOWED)[0] == "violate"
        everything = label_under(ex, _allowing(set(CATEGORIES)))[0]
        assert everything == ("violate" if "other" in ex.categories else "comply")
        if len(ex.categories) > 1:
            assert label_under(ex, _allowing({ex.categories[0]}))[0] == "violate"


def test_a_topic_whose_request_overlaps_a_held_out_goal_is_dropped() -> None:
    items = written_harm_examples()
    topic, _, request, _, _ = WRITTEN_HARM_TOPICS[0]
    kept = _drop_overlaps(items, [request])
    assert {ex.group for ex in items} - {ex.group for ex in kept} == {f"wh:{topic}"}
