"""Render a policy version into the natural-language text the model reads.

Template `policy-text/1` (deterministic: the same document always gives the same bytes):

    <spec.text, if any>
    Disallowed:
    - <name> (<severity>): <description>
    Allowed:
    - <name>: <description>

Disallowed categories come first, most severe first (ties keep document order), then allowed ones in document
order; a section with no categories is left out; lines are joined with "\\n" and whitespace inside descriptions is
collapsed. Examples are **not** rendered: they are the policy's golden set for the publish gate, and the model's
policy budget (~256 tokens of a 512-token encoder) is better spent on the category descriptions. Changing this
format means a new template id, because models are trained against one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from policies.schema import Stance

if TYPE_CHECKING:
    from policies.schema import PolicyCategory, PolicyDocument, PolicyDraft, PolicySpec

__all__ = ["TEMPLATE_ID", "RenderedPolicy", "render_policy", "render_spec"]

TEMPLATE_ID = "policy-text/1"


@dataclass(frozen=True, slots=True)
class RenderedPolicy:
    """The model-facing text of a policy and the template that produced it."""

    text: str
    template_id: str


def _clean(text: str) -> str:
    return " ".join(text.split())


def _line(category: PolicyCategory) -> str:
    if category.severity is None:
        return f"- {_clean(category.name)}: {_clean(category.description)}"
    return f"- {_clean(category.name)} ({category.severity.value}): {_clean(category.description)}"


def render_spec(spec: PolicySpec) -> str:
    """The `policy-text/1` rendering of a spec (see the module docstring)."""
    parts: list[str] = []
    if spec.text is not None:
        parts.append(spec.text.strip())
    disallowed = [c for c in spec.categories if c.stance is Stance.DISALLOWED]
    disallowed.sort(key=lambda c: -(c.severity.rank if c.severity is not None else 0))
    allowed = [c for c in spec.categories if c.stance is Stance.ALLOWED]
    if disallowed:
        parts.append("\n".join(["Disallowed:", *(_line(c) for c in disallowed)]))
    if allowed:
        parts.append("\n".join(["Allowed:", *(_line(c) for c in allowed)]))
    return "\n".join(parts)


def render_policy(doc: PolicyDocument | PolicyDraft) -> RenderedPolicy:
    """Render a document (or a draft, for validation before publishing) with template `policy-text/1`.

    Pure and deterministic; never raises for a valid document.
    """
    return RenderedPolicy(text=render_spec(doc.spec), template_id=TEMPLATE_ID)
