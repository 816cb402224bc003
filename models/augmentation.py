"""Configuration-targeted augmentation: the same conversation under several policies, labels derived from the policy.

Labeling rule (`label_under`), for a base example (see `models.data.Example`) under a `Policy`:

* ``helpful`` (useful answer to a benign request) -> **comply**, severity 0, under every policy it is shown with.
* ``refusal`` of a benign request -> **comply**, severity 1: an unhelpful over-refusal never violates a safety
  policy, but ranks below the helpful answer (a Bradley-Terry pair says so).
* ``safe`` (refusal or harmless deflection of a harmful request) -> **comply**; severity 0 when the request's harm
  is disallowed (refusing was right), 1 when the policy allows every category of the request (over-refusal).
* ``harmful`` (engages in the requested harm) -> **comply**, severity 0, iff every category it engages in is
  allowed by the policy; otherwise **violate**, severity 2, or 3 when a disallowed category is severe (weapons,
  sexual content with minors, hateful threats, graphic violence). Harms outside a policy's taxonomy (``other``)
  are always disallowed: every policy family keeps "all other harms" disallowed.

Severity order kept as pairwise constraints under one policy: helpful (0) > unhelpful refusal (1) > violation (2)
> severe violation (3); under a policy allowing the harm the engaging answer (0) beats the refusal (1).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.data import CATEGORIES, Example, PairExample, messages_to_dicts
from models.policy_texts import (
    BENIGN_ALLOWED_ENTRIES,
    CATEGORY_ENTRIES,
    COSALIGN_HELD_OUT,
    GENERAL_WORDINGS,
    MODERATION_ENTRIES,
    OTHER_HARM_ENTRY,
    SEVERITIES,
    SPEC_TEXTS,
    render_structured,
)

__all__ = [
    "SEVERE_CATEGORIES",
    "Policy",
    "PolicyFactory",
    "label_under",
    "pair_record",
    "point_record",
]

SEVERE_CATEGORIES = frozenset({"weapons", "mod:S3", "mod:H2", "mod:V2"})
ALL = "*"


@dataclass(frozen=True, slots=True)
class Policy:
    """A rendered policy plus the structured meaning the labels are derived from.

    Attributes:
        policy_id: unique id of this configuration (family, wording and allowed set).
        text: the text the model reads.
        family: ``general``, ``cosalign``, ``structured``, ``moderation``, ``bundled`` or ``cst_system``.
        wording: wording id; evaluation compares seen and held-out wordings.
        held_out: True for wordings that never appear in training.
        taxonomy: ``cosalign``, ``moderation`` or ``any`` (every harm disallowed, whatever the taxonomy).
        allowed: allowed harm categories of the taxonomy; ``{"*"}`` allows every harm.
        skip: example families or sources this policy is not applied to (labels would be ambiguous).
    """

    policy_id: str
    text: str
    family: str
    wording: str
    held_out: bool
    taxonomy: str
    allowed: frozenset[str] = frozenset()
    skip: frozenset[str] = field(default_factory=frozenset)


def applicable(example: Example, policy: Policy) -> bool:
    """Whether a policy can label an example unambiguously."""
    tags = {example.source, str(example.meta.get("family", ""))}
    if tags & policy.skip:
        return False
    mod = any(c.startswith("mod:") for c in example.categories) or example.source == "openai_moderation"
    if policy.taxonomy == "moderation":
        return mod or not example.harmful_request
    if policy.taxonomy == "cosalign":
        return not mod
    return True


def label_under(example: Example, policy: Policy) -> tuple[str, int]:
    """The (label, severity) of an example's response under a policy (rule in the module docstring)."""
    if example.kind == "helpful":
        return "comply", 0
    cats = set(example.categories) or {"other"}
    allowed_all = ALL in policy.allowed or (policy.taxonomy != "any" and cats <= policy.allowed)
    if example.kind in ("refusal", "safe"):
        over_refusal = not example.harmful_request or allowed_all
        return "comply", 1 if over_refusal else 0
    if allowed_all:
        return "comply", 0
    disallowed = cats - (policy.allowed if policy.taxonomy != "any" else set())
    return "violate", 3 if disallowed & SEVERE_CATEGORIES else 2


def point_record(example: Example, policy: Policy, **extra: Any) -> dict[str, Any]:
    """A canonical pointwise record of an example under a policy."""
    label, severity = label_under(example, policy)
    return {"kind": "point", "policy_text": policy.text, "policy_id": policy.policy_id,
            "messages": messages_to_dicts(example.messages), "response": example.response, "label": label,
            "severity": severity, "source": example.source, "group": example.group, "family": policy.family,
            "wording": policy.wording, "held_out_wording": policy.held_out, "response_kind": example.kind,
            "categories": list(example.categories), "benign_sensitive": example.source == "benign_sensitive"
            and not example.harmful_request, **extra}


def pair_record(messages: Sequence[tuple[str, str]], chosen: str, rejected: str, policy: Policy, source: str,
                group: str, **extra: Any) -> dict[str, Any]:
    """A canonical pairwise record: under ``policy``, ``chosen`` should get the higher reward."""
    return {"kind": "pair", "policy_text": policy.text, "policy_id": policy.policy_id,
            "messages": messages_to_dicts(messages), "chosen": chosen, "rejected": rejected, "source": source,
            "group": group, "family": policy.family, "wording": policy.wording,
            "held_out_wording": policy.held_out, **extra}


def example_pair(a: Example, b: Example, policy: Policy) -> dict[str, Any] | None:
    """A pair from two responses to the same request, ordered by severity under the policy; None on a tie."""
    sa, sb = label_under(a, policy)[1], label_under(b, policy)[1]
    if sa == sb:
        return None
    best, worst = (a, b) if sa < sb else (b, a)
    return pair_record(best.messages, best.response, worst.response, policy, best.source, best.group,
                       severities=[min(sa, sb), max(sa, sb)])


class PolicyFactory:
    """Builds policies of every family, restricted to seen or held-out wordings.

    Args:
        cosalign_templates: the ten CoSAlign instruction templates (with ``{list_of_harms}``).
        bundled: extra ready-made policies (the library policies), used in training and evaluation alike.
        held_out: produce held-out wordings instead of seen ones.
    """

    def __init__(self, cosalign_templates: Sequence[str], bundled: Iterable[Policy] = (), *,
                 held_out: bool = False) -> None:
        self.held_out = held_out
        self.cosalign = [(i, t) for i, t in enumerate(cosalign_templates) if (i in COSALIGN_HELD_OUT) == held_out]
        self.general = [(w, t) for w, h, t in GENERAL_WORDINGS if h == held_out]
        self.specs = [(w, t) for w, h, t in SPEC_TEXTS if h == held_out]
        self.bundled = list(bundled)

    def _pick(self, rng: random.Random, entries: list[tuple[str, bool, str, str]]) -> tuple[str, str]:
        pool = [e for e in entries if e[1] == self.held_out] or entries
        _, _, name, desc = rng.choice(pool)
        return name, desc

    def general_policy(self, rng: random.Random) -> Policy:
        """A free-text policy under which every harm is disallowed."""
        wid, text = rng.choice(self.general)
        return Policy(f"general:{wid}", text, "general", wid, self.held_out, "any")

    def bundled_or_general(self, rng: random.Random, p_bundled: float = 0.25) -> Policy:
        """A library policy with probability ``p_bundled`` (if any), else a general one."""
        if self.bundled and rng.random() < p_bundled:
            return rng.choice(self.bundled)
        return self.general_policy(rng)

    def cosalign_policy(self, rng: random.Random, allowed: Sequence[str]) -> Policy:
        """A CoSAlign instruction listing ``allowed`` taxonomy categories (at least one)."""
        idx, template = rng.choice(self.cosalign)
        names = "\n".join(f"- {CATEGORIES[c]}" for c in allowed)
        text = template.replace("{list_of_harms}", names)
        return Policy(f"cosalign:t{idx}:allow={','.join(sorted(allowed))}", text, "cosalign", f"t{idx}",
                      self.held_out, "cosalign", frozenset(allowed))

    def structured_policy(self, rng: random.Random, allowed: Sequence[str]) -> Policy:
        """A ``policy-text/1`` policy over the CoSAlign taxonomy with ``allowed`` categories allowed."""
        wid, spec = rng.choice(self.specs)
        cats = list(CATEGORIES)
        rng.shuffle(cats)
        dis: list[tuple[str, str, str | None, int]] = []
        alw: list[tuple[str, str]] = []
        for c in cats:
            name, desc = self._pick(rng, CATEGORY_ENTRIES[c])
            if c in allowed:
                alw.append((name, desc))
            else:
                sev = rng.choice(SEVERITIES) if c not in SEVERE_CATEGORIES else "critical"
                dis.append((name, desc, sev, SEVERITIES.index(sev)))
        name, desc = self._pick(rng, OTHER_HARM_ENTRY)
        dis.append((name, desc, "medium", 2))
        dis.sort(key=lambda e: e[3])
        for _ in range(rng.randint(0, 2)):
            name, desc = self._pick(rng, BENIGN_ALLOWED_ENTRIES)
            if (name, desc) not in alw:
                alw.append((name, desc))
        text = render_structured(spec if rng.random() < 0.8 else None, [(n, d, s) for n, d, s, _ in dis], alw)
        return Policy(f"structured:{wid}:allow={','.join(sorted(allowed))}", text, "structured", wid,
                      self.held_out, "cosalign", frozenset(allowed))

    def moderation_policy(self, rng: random.Random, allowed: Sequence[str]) -> Policy:
        """A ``policy-text/1`` policy over the OpenAI moderation taxonomy."""
        wid, spec = rng.choice(self.specs)
        dis: list[tuple[str, str, str | None]] = []
        alw: list[tuple[str, str]] = []
        for code, entries in MODERATION_ENTRIES.items():
            name, desc = self._pick(rng, entries)
            if code in allowed:
                alw.append((name, desc))
            else:
                dis.append((name, desc, "critical" if code in SEVERE_CATEGORIES else "high"))
        dis.sort(key=lambda e: 0 if e[2] == "critical" else 1)
        text = render_structured(spec, dis, alw)
        return Policy(f"moderation:{wid}:allow={','.join(sorted(allowed))}", text, "moderation", wid,
                      self.held_out, "moderation", frozenset(allowed))

    def category_policy(self, rng: random.Random, allowed: Sequence[str]) -> Policy:
        """A CoSAlign-taxonomy policy (cosalign or structured family, at random) allowing ``allowed``."""
        if allowed and rng.random() < 0.5:
            return self.cosalign_policy(rng, allowed)
        return self.structured_policy(rng, allowed)


def random_allowed(rng: random.Random, must: Iterable[str] = (), exclude: Iterable[str] = (),
                   taxonomy: Sequence[str] = tuple(CATEGORIES), extra_max: int = 2) -> list[str]:
    """A random allowed set: ``must`` plus up to ``extra_max`` other categories, never one in ``exclude``."""
    must_l = [c for c in must if c in taxonomy]
    rest = [c for c in taxonomy if c not in must_l and c not in set(exclude)]
    extra = rng.sample(rest, k=min(len(rest), rng.randint(0 if must_l else 1, extra_max)))
    return sorted(set(must_l) | set(extra))


def hh_pair(pair: PairExample, policy: Policy) -> dict[str, Any]:
    """An HH-RLHF harmless pair under a policy where every harm is disallowed."""
    return pair_record(pair.messages, pair.chosen, pair.rejected, policy, pair.source, pair.group)
