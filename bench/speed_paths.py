"""CPU speed paths for the encoder, side by side: float32, bfloat16, int8 dynamic quantisation, ONNX Runtime.

For each path: throughput (items/s) on batches of ``--batch`` items of exactly 128 and 384 tokens (best of
``--reps`` timed passes after one warm pass), and agreement with float32 on a validation set of real texts
(GPTFuzz responses with human labels from ``../shared/data``; synthetic texts when absent): Spearman of the
rewards against float32, and, for a trained checkpoint with labels, the ECE of ``p_comply`` and its change.
With the untrained head of a base-only checkpoint a random head reads a random, low-variance direction of the
pooled embedding and its Spearman is mostly noise; the bench then replaces the head by a *probe head* along the
first principal component of the float32 pooled embeddings of the validation set (the direction in which the
texts differ most), in every path alike. That is still only a proxy for a trained head; the report says which
head was measured (``head``).

    python -m bench.speed_paths [--checkpoint DIR] [--out bench/results/speed_paths.json]

ONNX Runtime is measured only (export with ``torch.onnx.export``, int8 with ``onnxruntime.quantization``);
the service's switch is ``CSRM_QUANTIZE`` (``models.quantize``).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.model import load_bench_model, resolve_checkpoint
from bench.workloads import DEFAULT_DATA_DIR, Pair, bench_policy_text, synthetic_pairs, to_score_input
from models.types import ScoreInput

if TYPE_CHECKING:
    from models.scoring import CsrmModel
    from models.types import EncodedInput

__all__ = ["Scorer", "load_validation", "main", "spearman"]

Scorer = Callable[[Sequence["EncodedInput"]], list[float]]
"""Rewards of one padded batch, in order."""

TORCH_PATHS = ("fp32", "bf16", "int8-dynamic")
ORT_PATHS = ("ort-fp32", "ort-int8")


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long sequences (ties broken by position)."""
    ra = np.argsort(np.argsort(np.asarray(a)))
    rb = np.argsort(np.argsort(np.asarray(b)))
    return float(np.corrcoef(ra, rb)[0, 1])


def load_validation(
    data_dir: Path | None, count: int, *, jsonl: Path | None = None, policy_text: str = ""
) -> tuple[list[ScoreInput], list[int] | None, str]:
    """``count`` labelled validation inputs (label 1 = complies).

    From ``jsonl`` when given (point records ``{policy_text, messages, response, label}``, as the training CLI
    writes its validation suites), else GPTFuzz's evaluate split under ``policy_text``, else synthetic texts.
    """
    if jsonl is not None:
        return _jsonl_validation(jsonl, count)
    folder = (data_dir or Path("/nonexistent")) / "gptfuzz"
    if not (folder / "evaluate.csv").is_file():
        return [to_score_input(p, policy_text) for p in synthetic_pairs("bulk", count, seed=7)], None, "synthetic"
    with (folder / "question_list.csv").open(encoding="utf-8", newline="") as handle:
        questions = {row["index"]: row["text"] for row in csv.DictReader(handle)}
    inputs: list[ScoreInput] = []
    labels: list[int] = []
    with (folder / "evaluate.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if len(inputs) < count and row["question"] in questions and row["Response"].strip():
                inputs.append(to_score_input(Pair(questions[row["question"]], row["Response"].strip()), policy_text))
                labels.append(1 - int(row["label"]))  # GPTFuzz label 1 = jailbroken = violates
    return inputs, labels, "gptfuzz/evaluate.csv"


def _jsonl_validation(path: Path, count: int) -> tuple[list[ScoreInput], list[int] | None, str]:
    from models.types import Message  # noqa: PLC0415

    inputs: list[ScoreInput] = []
    labels: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") != "point" or len(inputs) >= count:
                continue
            turns = [Message(m["role"], m["content"]) for m in record["messages"]]
            turns.append(Message("assistant", record["response"]))
            inputs.append(ScoreInput(record["policy_text"], tuple(turns)))
            labels.append(1 if record["label"] == "comply" else 0)
    return inputs, labels, str(path)


def _collate(batch: Sequence[EncodedInput], pad_id: int) -> dict[str, np.ndarray]:
    width = max(item.tokens for item in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    types = np.zeros((len(batch), width), dtype=np.int64)
    for row, item in enumerate(batch):
        ids[row, : item.tokens] = item.input_ids
        mask[row, : item.tokens] = 1
        if item.token_type_ids is not None:
            types[row, : item.tokens] = item.token_type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _torch_scorer(model: CsrmModel) -> Scorer:
    return lambda batch: [score.reward for score in model.score_encoded(batch)]


def _export_onnx(model: CsrmModel, out: Path) -> None:
    import torch  # noqa: PLC0415

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = {k: torch.from_numpy(v) for k, v in _collate([model.encode(_sample_input())] * 2, 0).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes; the graph is checked against fp32 below
        _torch_onnx_export(model, out, sample, names)


def _torch_onnx_export(model: CsrmModel, out: Path, sample: dict[str, Any], names: list[str]) -> None:
    import torch  # noqa: PLC0415

    torch.onnx.export(
        model.torch_model,
        (),
        str(out),
        kwargs=sample,
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def _sample_input() -> Any:
    return to_score_input(Pair("Hello there, how are you?", "Fine, thanks. How can I help?"), "Be safe.")


def _ort_scorers(model: CsrmModel, workdir: Path, threads: int) -> dict[str, Scorer]:
    import onnxruntime as ort  # noqa: PLC0415
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    fp32_path, int8_path = workdir / "model.onnx", workdir / "model-int8.onnx"
    _export_onnx(model, fp32_path)
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    scorers: dict[str, Scorer] = {}
    for name, path in (("ort-fp32", fp32_path), ("ort-int8", int8_path)):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        scorers[name] = _ort_scorer(session, model.pad_token_id)
    return scorers


def _ort_scorer(session: Any, pad_id: int) -> Scorer:
    wanted = {i.name for i in session.get_inputs()}

    def score(batch: Sequence[EncodedInput]) -> list[float]:
        feed = {k: v for k, v in _collate(batch, pad_id).items() if k in wanted}
        return [float(x) for x in session.run(None, feed)[0].reshape(len(batch), -1)[:, 0]]

    return score


def _fixed_batch(batch: int, tokens: int, seed: int) -> list[EncodedInput]:
    from models.types import EncodedInput  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    return [
        EncodedInput(tuple(int(t) for t in rng.integers(1000, 20000, tokens)), (0,) * tokens, truncated=False)
        for _ in range(batch)
    ]


def _throughput(score: Scorer, batch: list[EncodedInput], reps: int) -> float:
    score(batch)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        score(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def _rewards(score: Scorer, encoded: list[EncodedInput], batch: int) -> list[float]:
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].tokens)
    out = [0.0] * len(encoded)
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        for index, reward in zip(chunk, score([encoded[i] for i in chunk]), strict=True):
            out[index] = reward
    return out


def _calibration(model: CsrmModel, fp32_rewards: list[float], labels: list[int]) -> tuple[Any, str]:
    """The checkpoint's calibration when it was fitted (``eval_metrics`` present), else one fitted here on the
    float32 rewards; the same map then serves every path, so ECE changes come from the rewards alone."""
    from models.calibration import fit_calibration  # noqa: PLC0415

    if model.config.eval_metrics:
        return model.calibration, "checkpoint"
    return fit_calibration(fp32_rewards, labels), "fitted on the float32 rewards of the validation set"


def _agreement(calibration: Any, reference: list[float], rewards: list[float]) -> float:
    """Share of items whose verdict (p_comply >= 0.5) is the same as under float32."""
    same = sum((calibration.p_comply(a) >= 0.5) == (calibration.p_comply(b) >= 0.5) for a, b in zip(reference, rewards))
    return same / max(len(rewards), 1)


def _batch_dependence(score: Scorer, encoded: Sequence[EncodedInput], batch: int = 16) -> float:
    """Largest change of an item's reward between being scored alone and inside a batch of ``batch`` items.

    0 for float32 (rows do not interact); dynamic int8 quantises activations with one scale per batch tensor,
    so an item's reward moves with its batch-mates.
    """
    if not encoded:
        return 0.0
    alone = [score([item])[0] for item in encoded]
    batched = [r for start in range(0, len(encoded), batch) for r in score(list(encoded[start : start + batch]))]
    return max(abs(a - b) for a, b in zip(alone, batched, strict=True))


def _ece(calibration: Any, rewards: list[float], labels: list[int]) -> float:
    from models.calibration import expected_calibration_error  # noqa: PLC0415

    return float(expected_calibration_error([calibration.p_comply(r) for r in rewards], labels))


def _int8_except_ffn_out(model: CsrmModel) -> CsrmModel:
    """A variant for comparison: int8 per-channel like ``int8-dynamic`` but the FFN output projections (whose
    inputs carry BERT's activation outliers) and the pooler stay float32."""
    import torch  # noqa: PLC0415

    spec = {
        name: torch.ao.quantization.per_channel_dynamic_qconfig
        for name, module in model.torch_model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and (name.endswith(("attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense")))
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model.torch_model, qconfig_spec=spec, dtype=torch.qint8, inplace=True)
    return model


def _encode_valid(model: CsrmModel, inputs: Sequence[ScoreInput], kept: list[int]) -> list[EncodedInput]:
    """Encode what the model can (a policy over its budget is skipped); ``kept`` gets the indices encoded."""
    from models.errors import ModelError  # noqa: PLC0415

    out: list[EncodedInput] = []
    for index, item in enumerate(inputs):
        try:
            out.append(model.encode(item))
        except ModelError:
            continue
        kept.append(index)
    return out


def _probe_head(model: CsrmModel, encoded: Sequence[EncodedInput], batch: int) -> tuple[np.ndarray, float]:
    """Weight and bias of a head along the first principal component of the float32 pooled embeddings."""
    import torch  # noqa: PLC0415

    pooled = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch):
            inputs = {k: torch.from_numpy(v) for k, v in _collate(encoded[start : start + batch], 0).items()}
            pooled.append(model.torch_model.base_model(**inputs).pooler_output.float().numpy())
    matrix = np.concatenate(pooled)
    centre = matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(matrix - centre, full_matrices=False)
    scale = float(np.std((matrix - centre) @ vt[0])) or 1.0
    return vt[0] / scale, float(-(centre @ vt[0]) / scale)


def _set_head(model: CsrmModel, weight: np.ndarray, bias: float) -> CsrmModel:
    import torch  # noqa: PLC0415

    head = model.torch_model.classifier
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).reshape(head.weight.shape).to(head.weight.dtype))
        head.bias.fill_(bias)
    return model


def _build_scorers(
    checkpoint: Path, args: argparse.Namespace, workdir: Path, encoded: Callable[[CsrmModel], list[EncodedInput]]
) -> tuple[CsrmModel, dict[str, Scorer], list[EncodedInput], str]:
    from models.checkpoint import load_checkpoint  # noqa: PLC0415

    fp32 = load_bench_model(checkpoint, threads=args.threads)
    items = encoded(fp32)
    models = {
        "fp32": fp32,
        "bf16": load_checkpoint(checkpoint, device="cpu", dtype="bfloat16"),
        "int8-dynamic": load_bench_model(checkpoint, quantize="int8-dynamic"),
        "int8-dynamic-ffn-out-fp32": _int8_except_ffn_out(load_bench_model(checkpoint)),
    }
    head = "trained"
    has_weights = any((checkpoint / name).is_file() for name in ("config.json", "adapter_config.json"))
    if not has_weights and hasattr(fp32.torch_model, "classifier"):
        weight, bias = _probe_head(fp32, items, args.batch)
        for model in models.values():
            _set_head(model, weight, bias)
        head = "probe (PC1 of float32 pooled embeddings; untrained checkpoint)"
    scorers: dict[str, Scorer] = {name: _torch_scorer(model) for name, model in models.items()}
    if not args.no_onnx:
        scorers.update(_ort_scorers(fp32, workdir, args.threads or 2))
    return fp32, scorers, items, head


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every path; return the report (also written to ``args.out``)."""
    import torch  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="csrm-speed-") as scratch:
        checkpoint = resolve_checkpoint(args.checkpoint, Path(scratch))
        inputs, labels, source = load_validation(
            None if args.synthetic else DEFAULT_DATA_DIR, args.validation, jsonl=args.validation_jsonl,
            policy_text=bench_policy_text(),
        )  # fmt: skip
        kept: list[int] = []
        fp32, scorers, encoded, head = _build_scorers(
            checkpoint, args, Path(scratch), lambda m: _encode_valid(m, inputs, kept)
        )
        labels = [labels[i] for i in kept] if labels is not None else None
        paths: dict[str, dict[str, Any]] = {}
        reference: list[float] = []
        calibration, calibration_source = None, "none"
        for name, score in scorers.items():
            entry: dict[str, Any] = {}
            for tokens in args.tokens:
                rate = _throughput(score, _fixed_batch(args.batch, tokens, seed=tokens), args.reps)
                entry[f"items_per_s_{tokens}"] = round(rate, 2)
            rewards = _rewards(score, encoded, args.batch)
            reference = reference or rewards
            if calibration is None and labels is not None and head == "trained":
                calibration, calibration_source = _calibration(fp32, reference, labels)
            entry["spearman_vs_fp32"] = round(spearman(reference, rewards), 5)
            entry["max_abs_reward_diff"] = round(max(abs(a - b) for a, b in zip(reference, rewards, strict=True)), 5)
            if calibration is not None and labels is not None and args.ece:
                entry["ece"] = round(_ece(calibration, rewards, labels), 5)
                entry["verdict_agreement_vs_fp32"] = round(_agreement(calibration, reference, rewards), 5)
            entry["max_abs_batch_vs_alone"] = round(_batch_dependence(score, encoded[: args.invariance]), 5)
            paths[name] = entry
            print(name, json.dumps(entry), flush=True)
        _add_speedups(paths, args.tokens)
        return {
            "checkpoint": str(checkpoint),
            "model_id": fp32.model_id,
            "head": head,
            "calibration": calibration_source,
            "validation": {"source": source, "items": len(inputs), "mean_tokens": _mean_tokens(encoded)},
            "batch": args.batch,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": _cpu_model(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "paths": paths,
        }


def _add_speedups(paths: dict[str, dict[str, Any]], lengths: Sequence[int]) -> None:
    for entry in paths.values():
        for tokens in lengths:
            base = paths["fp32"][f"items_per_s_{tokens}"]
            entry[f"speedup_{tokens}"] = round(entry[f"items_per_s_{tokens}"] / base, 2) if base else 0.0
        if "ece" in entry and "ece" in paths["fp32"]:
            entry["ece_change"] = round(entry["ece"] - paths["fp32"]["ece"], 5)


def _mean_tokens(encoded: Sequence[EncodedInput]) -> float:
    return round(sum(e.tokens for e in encoded) / max(len(encoded), 1), 1)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.speed_paths", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint dir (default: models/default, else the MiniLM base)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/speed_paths.json"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[128, 384], help="sequence lengths to time")
    parser.add_argument("--batch", type=int, default=32, help="items per batch")
    parser.add_argument("--reps", type=int, default=3, help="timed passes per measurement (best is kept)")
    parser.add_argument("--validation", type=int, default=256, help="validation items")
    parser.add_argument("--invariance", type=int, default=32, help="items scored alone vs batched (batch dependence)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument("--no-ece", dest="ece", action="store_false", help="skip ECE (untrained heads)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic validation texts only")
    parser.add_argument(
        "--validation-jsonl", type=Path, default=None,
        help="labelled point records (e.g. the training run's mixed_val.jsonl) instead of GPTFuzz",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.speed_paths``."""
    args = _parser().parse_args(argv)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
