"""Evaluation metrics on small hand-made sets with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.calibration import Calibration
from models.evaluation import (auroc, binary_metrics, compute_metrics, cut_responses, flip_consistency, format_table,
                               pairwise_accuracy)


def _pt(label: str, **kw: object) -> dict[str, object]:
    return {"kind": "point", "policy_text": "p", "messages": [{"role": "user", "content": "q"}], "response": "r",
            "label": label, "source": "t", **kw}


def test_auroc_known_values() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 1], [0, 1]) == pytest.approx(0.5)
    assert auroc([1, 2], [1, 1]) is None


def test_binary_metrics_known_confusion() -> None:
    # p_comply < 0.5 -> violate. labels: 3 violate, 2 comply; predictions: TP=2, FN=1, FP=1, TN=1
    p = [0.1, 0.2, 0.9, 0.3, 0.8]
    labels = ["violate", "violate", "violate", "comply", "comply"]
    m = binary_metrics(p, labels)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["flag_rate"] == pytest.approx(3 / 5)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["ece_floor"] > 0.1  # five items: noise alone gives an ECE well above zero
    assert binary_metrics([0.0, 1.0], ["violate", "comply"])["ece_floor"] == 0.0


def test_pairwise_accuracy() -> None:
    assert pairwise_accuracy([1.0, 2.0, 0.0, 1.0], [0.0, 3.0, -1.0, 1.0]) == pytest.approx(2.5 / 4)


def test_flip_consistency() -> None:
    recs = [_pt("comply", flip="a"), _pt("violate", flip="a"), _pt("comply", flip="b"), _pt("violate", flip="b"),
            _pt("comply", flip="c"), _pt("comply", flip="c")]
    verdicts = ["comply", "violate", "comply", "comply", "comply", "comply"]
    m = flip_consistency(recs, verdicts)
    assert m["flip_groups"] == 3
    assert m["flip_consistency"] == pytest.approx(2 / 3)
    assert m["flip_consistency_contrasting"] == pytest.approx(1 / 2)


def test_compute_metrics_from_rewards() -> None:
    recs = [_pt("comply", benign_sensitive=True, response_kind="helpful"), _pt("violate"),
            _pt("comply", benign_sensitive=True, response_kind="helpful"),
            {"kind": "pair", "policy_text": "p", "messages": [], "chosen": "a", "rejected": "b", "source": "t"}]
    scores = [2.0, -3.0, -1.0, (1.0, 0.0)]
    m = compute_metrics(recs, scores, Calibration())
    assert m["benign_flag_rate"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(1.0) and m["precision"] == pytest.approx(0.5)
    assert m["pairwise_accuracy"] == pytest.approx(1.0)
    assert "f1" in format_table({"x": m})


def test_a_records_own_threshold_decides_its_verdict() -> None:
    # reward 0.5 -> p_comply 0.62 (identity calibration): comply at the default 0.5, violate at a policy's 0.7
    recs = [_pt("violate", threshold=0.7), _pt("violate"), _pt("comply", flip="g"), _pt("violate", flip="g",
                                                                                          threshold=0.7)]
    m = compute_metrics(recs, [0.5, 0.5, 0.5, 0.5], Calibration())
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(1.0)
    assert m["flip_consistency"] == pytest.approx(1.0)


def test_cut_responses_keeps_the_opening_of_long_point_answers_only() -> None:
    long_answer = "one two three four five"
    recs = [_pt("violate", response=long_answer), _pt("comply", response="one two three four"),
            {"kind": "pair", "chosen": long_answer, "rejected": long_answer}]
    assert cut_responses(recs, 2, "...") == [_pt("violate", response="one two...")]
    assert cut_responses(recs, 1) == [_pt("violate", response="one"), _pt("comply", response="one")]


def test_eval_main_on_tiny_checkpoint(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.cli import eval_main
    from models.data import write_jsonl

    recs = [_pt("comply"), _pt("violate"), _pt("comply", flip="f"), _pt("violate", flip="f")]
    write_jsonl(tmp_path / "set.jsonl", recs)
    assert eval_main(["--model", str(tiny_encoder_checkpoint), "--data", str(tmp_path / "set.jsonl"),
                      "--out", str(tmp_path / "m.json"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n"] == 4 and "auroc" in metrics and "flip_consistency" in metrics
    assert (tmp_path / "m.png").is_file()


def test_evaluate_suites_reports_diasafety_by_norm(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.checkpoint import load_checkpoint
    from models.cli import evaluate_suites

    norms = ["dia:risk_ignorance", "dia:risk_ignorance", "dia:biased_opinion"]
    recs = [_pt(label, categories=[norm], policy_id="diasafety:chit-chat")
            for label, norm in zip(["violate", "comply", "violate"], norms, strict=True)]
    model = load_checkpoint(tiny_encoder_checkpoint, device="cpu")
    metrics = evaluate_suites(model, {"ood_diasafety": recs}, Calibration(), tmp_path)
    assert metrics["ood_diasafety"]["n"] == 3
    assert metrics["ood_diasafety:risk_ignorance"]["n"] == 2 and metrics["ood_diasafety:biased_opinion"]["n"] == 1
    assert not any(key.endswith("_wording") for key in metrics)


def test_evaluate_suites_reports_jailbreakbench_by_wording_attack_and_target_model(tiny_encoder_checkpoint: Path,
                                                                                   tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.checkpoint import load_checkpoint
    from models.cli import evaluate_suites

    runs = [("PAIR", "vicuna-13b-v1.5", "general-safety"), ("PAIR", "gpt-4-0125-preview", "g0"),
            ("GCG", "vicuna-13b-v1.5", "general-safety")]
    recs = [_pt(label, attack=attack, target_model=target, wording=wording, held_out_wording=False)
            for label, (attack, target, wording) in zip(["violate", "comply", "violate"], runs, strict=True)]
    recs.append(_pt("comply", wording="g8", held_out_wording=True))  # a record built before attacks were recorded
    model = load_checkpoint(tiny_encoder_checkpoint, device="cpu")
    metrics = evaluate_suites(model, {"ood_jbb": recs}, Calibration(), tmp_path)
    assert {k: v["n"] for k, v in metrics.items() if "=" in k} == {
        "ood_jbb:wording=general-safety": 2, "ood_jbb:wording=g0": 1, "ood_jbb:wording=g8": 1,
        "ood_jbb:attack=PAIR": 2, "ood_jbb:attack=GCG": 1,
        "ood_jbb:target_model=vicuna-13b-v1.5": 2, "ood_jbb:target_model=gpt-4-0125-preview": 1}
    assert metrics["ood_jbb:attack=PAIR"]["violations"] == 1 and metrics["ood_jbb"]["n"] == 4
    assert metrics["ood_jbb:wording=general-safety"]["violations"] == 2
    scored = [json.loads(line) for line in (tmp_path / "eval" / "ood_jbb.scores.jsonl").read_text().splitlines()]
    assert [row["attack"] for row in scored] == ["PAIR", "PAIR", "GCG", None]


def test_evaluate_suites_reports_flip_consistency_per_harm_category(tiny_encoder_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.checkpoint import load_checkpoint
    from models.cli import evaluate_suites

    groups = [("jbb0", ["privacy"]), ("jbb2", ["privacy", "violence"]), ("jbb4", ["sexual"])]
    recs = [_pt(label, flip=flip, categories=cats, held_out_wording=False)
            for flip, cats in groups for label in ("comply", "violate")]
    model = load_checkpoint(tiny_encoder_checkpoint, device="cpu")
    metrics = evaluate_suites(model, {"flip_jbb": recs}, Calibration(), tmp_path)
    assert {k: v["flip_groups"] for k, v in metrics.items() if "category=" in k} == {
        "flip_jbb:category=privacy": 2, "flip_jbb:category=violence": 1, "flip_jbb:category=sexual": 1}
    assert metrics["flip_jbb:category=privacy"]["flip_groups_contrasting"] == 2


def test_eval_main_scores_cut_answers(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.cli import eval_main
    from models.data import write_jsonl

    write_jsonl(tmp_path / "set.jsonl", [_pt("violate", response="a b c d e"), _pt("comply"), _pt("comply")])
    assert eval_main(["--model", str(tiny_encoder_checkpoint), "--data", str(tmp_path / "set.jsonl"),
                      "--out", str(tmp_path / "m.json"), "--device", "cpu", "--cut-words", "2",
                      "--cut-ending", "..."]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 1


@pytest.mark.parametrize("argv", [["--cut-words", "0"], ["--cut-ending", "..."]])
def test_eval_main_rejects_bad_cut_options(argv: list[str], tmp_path: Path) -> None:
    from models.cli import eval_main

    with pytest.raises(SystemExit) as exc:
        eval_main(["--model", str(tmp_path), "--data", str(tmp_path / "set.jsonl"), *argv])
    assert exc.value.code == 2


def test_eval_main_reports_the_subsets_of_a_suite_file(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from models.cli import eval_main
    from models.data import write_jsonl

    recs = [_pt(label, categories=[norm]) for label, norm in
            (("violate", "dia:offending_user"), ("comply", "dia:offending_user"), ("comply", "dia:biased_opinion"))]
    write_jsonl(tmp_path / "ood_diasafety.jsonl", recs)
    assert eval_main(["--model", str(tiny_encoder_checkpoint), "--data", str(tmp_path / "ood_diasafety.jsonl"),
                      "--out", str(tmp_path / "m.json"), "--device", "cpu"]) == 0
    subsets = json.loads((tmp_path / "m.json").read_text())["subsets"]
    assert {k: v["n"] for k, v in subsets.items()} == {"ood_diasafety:offending_user": 2,
                                                        "ood_diasafety:biased_opinion": 1}
