"""Evaluation of a CSRM on canonical records: classification, calibration, ranking and configuration metrics.

Violation is the positive class. For a pointwise record the model's verdict is ``violate`` when
``p_comply < threshold``; a record with its own ``threshold`` (a policy's, as the bundled examples carry) is judged
at that one, as the service judges it under that policy. Reported (each only when the records allow it):

* ``f1``, ``precision``, ``recall``, ``accuracy``, ``auroc`` (ranking ``-reward`` against violation), ``ece``
  (15 equal-width bins of ``p_comply``), ``ece_floor`` (the ECE a perfectly calibrated model would show on as many
  items at the same probabilities: the sampling noise to read ``ece`` against), ``flag_rate`` and ``n``;
* ``benign_flag_rate``: the share of helpful answers to benign-but-sensitive requests verdicted ``violate``;
* ``pairwise_accuracy``: the share of pairs where the chosen response gets the higher reward;
* ``flip_consistency``: records sharing a ``flip`` id are one conversation under contrasting policies; a group is
  consistent when every verdict equals its label, so the verdict flips exactly where the labels say.
  ``flip_consistency_contrasting`` restricts to groups whose labels differ.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.calibration import Calibration, calibrated_ece_floor, expected_calibration_error
from models.types import Message, ScoreInput

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = [
    "auroc",
    "binary_metrics",
    "compute_metrics",
    "cut_responses",
    "flip_consistency",
    "format_table",
    "pairwise_accuracy",
    "reliability_diagram",
    "score_records",
]


def auroc(scores: Sequence[float], positives: Sequence[int]) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is missing."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positives, dtype=np.int64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(p_comply: Sequence[float], labels: Sequence[str], threshold: float | Sequence[float] = 0.5,
                   rewards: Sequence[float] | None = None) -> dict[str, Any]:
    """F1/precision/recall (violation positive), accuracy, AUROC, ECE and flag rate.

    Args:
        p_comply: calibrated compliance probabilities.
        labels: ``comply`` / ``violate``.
        threshold: verdict is violate when ``p_comply < threshold`` (one for all items, or one per item).
        rewards: raw rewards for AUROC (defaults to ``p_comply``; the map is monotone, so AUROC is the same).
    """
    p = np.asarray(p_comply, dtype=np.float64)
    y = np.asarray([1 if lab == "violate" else 0 for lab in labels])
    pred = (p < np.asarray(threshold, dtype=np.float64)).astype(int)
    tp, fp, fn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum()), int(
        ((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    score = -np.asarray(rewards if rewards is not None else p, dtype=np.float64)
    return {"n": int(len(y)), "violations": int(y.sum()), "f1": f1, "precision": precision, "recall": recall,
            "accuracy": float((pred == y).mean()) if len(y) else None, "auroc": auroc(score, y),
            "ece": float(expected_calibration_error(p, 1 - y, bins=15)) if len(y) else None,
            "ece_floor": calibrated_ece_floor(p, bins=15) if len(y) else None,
            "flag_rate": float(pred.mean()) if len(y) else None}


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float | None:
    """Share of pairs whose chosen reward is higher (ties count half)."""
    if not chosen:
        return None
    c, r = np.asarray(chosen), np.asarray(rejected)
    return float(((c > r) + 0.5 * (c == r)).mean())


def flip_consistency(records: Sequence[dict[str, Any]], verdicts: Sequence[str]) -> dict[str, Any]:
    """Consistency over groups of records sharing a ``flip`` id (see the module docstring)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rec, v in zip(records, verdicts, strict=True):
        if rec.get("flip") is not None:
            groups[str(rec["flip"])].append((rec["label"], v))
    if not groups:
        return {}
    ok = [all(lab == v for lab, v in g) for g in groups.values()]
    contrasting = [all(lab == v for lab, v in g) for g in groups.values() if len({lab for lab, _ in g}) > 1]
    return {"flip_groups": len(groups), "flip_consistency": float(np.mean(ok)),
            "flip_groups_contrasting": len(contrasting),
            "flip_consistency_contrasting": float(np.mean(contrasting)) if contrasting else None}


def _input(rec: dict[str, Any], response: str) -> ScoreInput:
    msgs = [Message(m["role"], m["content"]) for m in rec["messages"]] + [Message("assistant", response)]
    return ScoreInput(rec["policy_text"], tuple(msgs))


def cut_responses(records: Sequence[dict[str, Any]], words: int, ending: str = "") -> list[dict[str, Any]]:
    """The point records whose response has more than ``2 * words`` words, each cut to its first ``words`` words plus
    ``ending``, labels kept: whether a model reads the opening of an answer or its form (a cut, a trailing "...")."""
    return [{**rec, "response": " ".join(rec["response"].split()[:words]) + ending} for rec in records
            if rec["kind"] == "point" and len(rec["response"].split()) > 2 * words]


def score_records(model: CsrmModel, records: Sequence[dict[str, Any]], batch_size: int = 32,
                  progress: bool = False) -> list[Any]:
    """Rewards per record: a float for a point, ``(chosen, rejected)`` for a pair; None if it cannot be encoded."""
    items: list[tuple[int, int, Any]] = []
    for i, rec in enumerate(records):
        texts = [rec["response"]] if rec["kind"] == "point" else [rec["chosen"], rec["rejected"]]
        for j, text in enumerate(texts):
            try:
                items.append((i, j, model.encode(_input(rec, text))))
            except Exception:  # noqa: BLE001 - InputTooLong/InvalidInput: the record is reported as unscored
                continue
    items.sort(key=lambda t: t[2].tokens)
    rewards: dict[tuple[int, int], float] = {}
    bar = _bar(len(items), progress)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        for (i, j, _), s in zip(chunk, model.score_encoded([c[2] for c in chunk]), strict=True):
            rewards[(i, j)] = s.reward
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    out: list[Any] = []
    for i, rec in enumerate(records):
        if rec["kind"] == "point":
            out.append(rewards.get((i, 0)))
        else:
            a, b = rewards.get((i, 0)), rewards.get((i, 1))
            out.append(None if a is None or b is None else (a, b))
    return out


def compute_metrics(records: Sequence[dict[str, Any]], scores: Sequence[Any], calibration: Calibration,
                    threshold: float = 0.5) -> dict[str, Any]:
    """Every metric the records allow (see the module docstring), from precomputed rewards."""
    pts = [(r, s) for r, s in zip(records, scores, strict=True) if r["kind"] == "point" and s is not None]
    prs = [s for r, s in zip(records, scores, strict=True) if r["kind"] == "pair" and s is not None]
    out: dict[str, Any] = {"unscored": sum(1 for s in scores if s is None)}
    if pts:
        rewards = [s for _, s in pts]
        p = [calibration.p_comply(float(s)) for s in rewards]
        thresholds = [float(r.get("threshold", threshold)) for r, _ in pts]
        out.update(binary_metrics(p, [r["label"] for r, _ in pts], thresholds, rewards))
        verdicts = ["comply" if q >= t else "violate" for q, t in zip(p, thresholds, strict=True)]
        benign = [v for (r, _), v in zip(pts, verdicts, strict=True)
                  if r.get("benign_sensitive") and r.get("response_kind") == "helpful"]
        if benign:
            out["benign_flag_rate"] = float(np.mean([v == "violate" for v in benign]))
            out["benign_n"] = len(benign)
        out.update(flip_consistency([r for r, _ in pts], verdicts))
    if prs:
        out["pairwise_accuracy"] = pairwise_accuracy([a for a, _ in prs], [b for _, b in prs])
        out["pairs"] = len(prs)
    return out


def reliability_diagram(p_comply: Sequence[float], labels: Sequence[str], path: Path, bins: int = 15,
                        title: str = "Reliability") -> Path:
    """Save a reliability diagram (observed compliance rate per bin of predicted ``p_comply``) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.asarray(p_comply, dtype=np.float64)
    y = np.asarray([1.0 if lab == "comply" else 0.0 for lab in labels])
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    centers, rates, counts = [], [], []
    for b in range(bins):
        m = idx == b
        if m.any():
            centers.append(float(p[m].mean()))
            rates.append(float(y[m].mean()))
            counts.append(int(m.sum()))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax.plot(centers, rates, "o-", color="tab:blue")
    for c, r, n in zip(centers, rates, counts, strict=True):
        ax.annotate(str(n), (c, r), fontsize=6, textcoords="offset points", xytext=(3, -8))
    ax.set_xlabel("predicted p_comply")
    ax.set_ylabel("observed compliance rate")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


_COLUMNS = ("n", "f1", "precision", "recall", "auroc", "ece", "ece_floor", "flag_rate", "benign_flag_rate",
            "flip_consistency", "pairwise_accuracy")


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A readable fixed-width table, one row per evaluated set."""
    head = f"{'set':<28}" + "".join(f"{c[:12]:>13}" for c in _COLUMNS)
    lines = [head, "-" * len(head)]
    for name, m in results.items():
        cells = []
        for c in _COLUMNS:
            v = m.get(c)
            cells.append(f"{'-':>13}" if v is None or (isinstance(v, float) and math.isnan(v))
                         else f"{v:>13d}" if isinstance(v, int) else f"{v:>13.3f}")
        lines.append(f"{name[:28]:<28}" + "".join(cells))
    return "\n".join(lines)


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="score", unit="seq", dynamic_ncols=True, mininterval=5.0)
