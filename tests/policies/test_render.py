"""`policies/render.py`: the `policy-text/1` rendering."""

from __future__ import annotations

from typing import Any

import pytest

from policies.render import TEMPLATE_ID, render_policy
from policies.schema import PolicyDocument, PolicyDraft
from tests.policies.helpers import AT


def _doc(spec: dict[str, Any]) -> PolicyDocument:
    return PolicyDocument.from_draft(PolicyDraft.model_validate({"spec": spec}), policy_id="demo", version=1,
                                     parent_version=None, created_by="t", created_at=AT)


SPEC: dict[str, Any] = {
    "text": "  Be kind.  ",
    "categories": [
        {"id": "fiction", "name": "Fiction", "description": "Stories\n may   depict conflict.", "stance": "allowed",
         "examples": [{"prompt": "SECRET-PROMPT", "response": "SECRET-RESPONSE", "expected": "comply"}]},
        {"id": "fraud", "name": "Fraud", "description": "Scams.", "stance": "disallowed", "severity": "medium"},
        {"id": "csam", "name": "Child sexual content", "description": "Never.", "stance": "disallowed",
         "severity": "critical"},
        {"id": "drugs", "name": "Drugs", "description": "Synthesis.", "stance": "disallowed", "severity": "medium"},
        {"id": "edu", "name": "Education", "description": "Facts.", "stance": "allowed"},
    ],
}


def test_exact_text_and_template_id() -> None:
    rendered = render_policy(_doc(SPEC))
    assert rendered.template_id == TEMPLATE_ID == "policy-text/1"
    assert rendered.text == (
        "Be kind.\n"
        "Disallowed:\n"
        "- Child sexual content (critical): Never.\n"
        "- Fraud (medium): Scams.\n"
        "- Drugs (medium): Synthesis.\n"
        "Allowed:\n"
        "- Fiction: Stories may depict conflict.\n"
        "- Education: Facts."
    )


def test_examples_are_not_rendered() -> None:
    assert "SECRET" not in render_policy(_doc(SPEC)).text


def test_deterministic_across_calls_and_round_trips() -> None:
    d = _doc(SPEC)
    again = PolicyDocument.model_validate_json(d.model_dump_json())
    assert {render_policy(d).text for _ in range(5)} == {render_policy(again).text}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"text": "Only text."}, "Only text."),
        ({"categories": [{"id": "a", "name": "A", "description": "d", "stance": "allowed"}]}, "Allowed:\n- A: d"),
        (
            {"categories": [{"id": "a", "name": "A", "description": "d", "stance": "disallowed", "severity": "low"}]},
            "Disallowed:\n- A (low): d",
        ),
    ],
)
def test_sections_are_omitted_when_empty(spec: dict[str, Any], expected: str) -> None:
    assert render_policy(_doc(spec)).text == expected


def test_drafts_render_like_documents() -> None:
    assert render_policy(PolicyDraft.model_validate({"spec": SPEC})) == render_policy(_doc(SPEC))
