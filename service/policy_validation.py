"""Publish-time checks of a policy version against the loaded model: the token budget and the golden-example gate.

`build_validator` returns a `policies.registry.Validator` hook; the registry runs it on the built document and its
rendering before anything is written, so a refused version leaves no trace (no version, no audit entry).

- **Token budget** (always): the rendered policy must fit the loaded engine's
  `policy_token_budget`, because truncation never cuts a policy. Refused with `InvalidPolicy` (422
  `INVALID_POLICY`) whose message and `details` carry both numbers.
- **Golden examples** (`?validate=examples`): every category example is scored under the rendered policy through
  the live batcher (bulk lane, so interactive traffic keeps its priority) and its verdict compared with
  `expected`; any disagreement refuses publication, listing each disagreeing example.

`details` of both refusals is a list in the shape of schema errors (`loc`, `msg`, `type`, plus extra keys); the
service's error table turns every such list into the one 422 shape (`field`, `message`, `type`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from models.types import Message, ScoreInput
from policies.errors import InvalidPolicy
from service.routes.score import verdict

if TYPE_CHECKING:
    from policies.registry import Validator
    from policies.render import RenderedPolicy
    from policies.schema import PolicyDocument
    from service.batcher import DynamicBatcher
    from service.engine import Engine

__all__ = ["ValidationReport", "build_validator"]


@dataclass(slots=True)
class ValidationReport:
    """What the hook checked, filled in as it runs (for the publish response).

    The registry skips the hook on an idempotent replay (it returns the earlier version), so an untouched report
    means nothing was checked now; `is_replay` tells the two apart.
    """

    policy_tokens: int | None = None
    policy_token_budget: int | None = None
    examples_checked: int | None = None
    built: PolicyDocument | None = None

    def is_replay(self, stored: PolicyDocument) -> bool:
        """True when `stored` is not the version this request built (an idempotent replay)."""
        return self.built is None or self.built.metadata.created_at != stored.metadata.created_at


def build_validator(
    engine: Engine, batcher: DynamicBatcher, *, examples: bool, report: ValidationReport
) -> Validator:
    """The publish hook for one request.

    Args:
        engine: The loaded engine (for the token budget).
        batcher: The running batcher (for the example gate).
        examples: Run the golden-example gate.
        report: Filled with what was checked.

    Returns:
        An async hook that raises `InvalidPolicy` to refuse publication (and `models`/`service` errors, e.g.
        `Overloaded`, when the gate cannot be run; nothing is written then either).
    """

    async def validate(doc: PolicyDocument, rendered: RenderedPolicy) -> None:
        report.built = doc
        await _check_budget(engine, rendered.text, report)
        if examples:
            await _check_examples(batcher, doc, rendered.text, report)

    return validate


async def _check_budget(engine: Engine, text: str, report: ValidationReport) -> None:
    tokens = await anyio.to_thread.run_sync(engine.policy_tokens, text)
    budget = engine.policy_token_budget
    report.policy_tokens, report.policy_token_budget = tokens, budget
    if tokens > budget:
        message = (f"the rendered policy has {tokens} tokens, over the loaded model's policy token budget of "
                   f"{budget}; shorten the text or the category descriptions")
        raise InvalidPolicy(message, details=[{
            "loc": ["spec"], "msg": message, "type": "policy_token_budget", "tokens": tokens, "budget": budget,
        }])  # fmt: skip


async def _check_examples(batcher: DynamicBatcher, doc: PolicyDocument, text: str, report: ValidationReport) -> None:
    located: list[tuple[list[Any], str, Any]] = []
    for ci, category in enumerate(doc.spec.categories):
        for ei, example in enumerate(category.examples):
            located.append((["spec", "categories", ci, "examples", ei], category.id, example))
    report.examples_checked = len(located)
    if not located:
        return
    inputs = [
        ScoreInput(policy_text=text, messages=(Message(role="user", content=ex.prompt),
                                               Message(role="assistant", content=ex.response)))
        for _, _, ex in located
    ]  # fmt: skip
    scored = await batcher.submit_many(await batcher.encode(inputs), lane="bulk")
    failures = []
    for (loc, category_id, example), item in zip(located, scored, strict=True):
        got = verdict(item.score.p_comply, doc.threshold)
        if got != example.expected.value:
            failures.append({
                "loc": loc,
                "msg": f"expected {example.expected.value}, the model says {got} "
                       f"(p_comply {item.score.p_comply:.3f}, threshold {doc.threshold})",
                "type": "example_disagrees",
                "category": category_id,
                "prompt": example.prompt,
                "expected": example.expected.value,
                "verdict": got,
                "p_comply": item.score.p_comply,
                "reward": item.score.reward,
            })  # fmt: skip
    if failures:
        raise InvalidPolicy(
            f"{len(failures)} of {len(located)} golden examples disagree with the model; not published",
            details=failures,
        )
