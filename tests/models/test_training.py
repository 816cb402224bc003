"""Loss functions on known values, batching, and a two-step training run on a tiny random encoder."""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from models.training import TrainConfig, Unit, bce_loss, bt_loss, joint_loss, make_batches, wording_loss
from models.types import EncodedInput


def test_bt_loss_known_values() -> None:
    assert float(bt_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == pytest.approx(math.log(2))
    assert float(bt_loss(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]))) == pytest.approx(
        (math.log(1 + math.exp(-1)) + math.log(2)) / 2)


def test_bce_loss_known_values() -> None:
    assert float(bce_loss(torch.tensor([0.0]), torch.tensor([1.0]))) == pytest.approx(math.log(2))
    assert float(bce_loss(torch.tensor([3.0]), torch.tensor([0.0]))) == pytest.approx(math.log(1 + math.exp(3)))


def test_joint_loss_weights_and_empty_terms() -> None:
    r, y = torch.tensor([0.0]), torch.tensor([1.0])
    c, j = torch.tensor([0.0]), torch.tensor([0.0])
    assert float(joint_loss(r, y, c, j, w_bce=2.0, w_bt=0.5)) == pytest.approx(2.5 * math.log(2))
    empty = torch.tensor([])
    assert float(joint_loss(empty, empty, c, j)) == pytest.approx(math.log(2))
    twins = (torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0]))
    assert float(wording_loss(*twins)) == pytest.approx(2.0)
    assert float(joint_loss(empty, empty, empty, empty, twins=twins, w_wording=0.5)) == pytest.approx(1.0)


def _enc(n: int) -> EncodedInput:
    return EncodedInput(tuple(range(n)), None, False)


def test_make_batches_packs_sequences() -> None:
    units = [Unit(_enc(5 + i), label=1.0) for i in range(10)] + [Unit(_enc(7), rejected=_enc(9)) for _ in range(5)]
    batches = make_batches(units, 4, random.Random(0))
    assert all(sum(u.seqs for u in b) <= 4 for b in batches)
    assert sorted(id(u) for b in batches for u in b) == sorted(id(u) for u in units)


def _grouped_record(policy: str, label: str, **group: str) -> dict[str, object]:
    """A point record with its group id: ``flip=...`` or ``twin=...``."""
    return {"kind": "point", "policy_text": policy, "messages": [{"role": "user", "content": "q"}],
            "response": "a", "label": label, **group}


def test_encode_records_pairs_contrasting_flip_groups_comply_over_violate() -> None:
    from models.training import encode_records

    recs = [_grouped_record("allow weapons", "comply", flip="f1"),
            _grouped_record("deny weapons", "violate", flip="f1"),
            _grouped_record("allow hate", "comply", flip="f2"), _grouped_record("deny hate", "comply", flip="f2")]
    encoded = {"allow weapons": _enc(3), "deny weapons": _enc(4), "allow hate": _enc(5), "deny hate": _enc(6)}
    units = encode_records(recs, lambda item: encoded[item.policy_text])
    points = [u for u in units if u.rejected is None]
    assert [(u.first, u.label) for u in points] == [(encoded["allow hate"], 1.0), (encoded["deny hate"], 1.0)]
    pairs = [u for u in units if u.rejected is not None]
    assert len(pairs) == 1 and pairs[0].labelled
    assert pairs[0].first is encoded["allow weapons"] and pairs[0].rejected is encoded["deny weapons"]


def test_encode_records_joins_wording_twins_with_one_label() -> None:
    from models.training import encode_records

    recs = [_grouped_record("rules, said once", "violate", twin="w1"),
            _grouped_record("rules, said twice", "violate", twin="w1"),
            _grouped_record("rules, said thrice", "comply", twin="w2"),
            _grouped_record("rules, said four times", "comply", twin="w3"),
            _grouped_record("rules, said five times", "violate", twin="w3")]
    texts = ("once", "twice", "thrice", "four times", "five times")
    encoded = {f"rules, said {t}": _enc(n) for n, t in enumerate(texts, start=3)}
    units = encode_records(recs, lambda item: encoded[item.policy_text])
    once, twice, thrice, four, five = encoded.values()
    assert [(u.first, u.twin, u.label, u.seqs) for u in units] == [
        (once, twice, 0.0, 2), (thrice, None, 1.0, 1), (four, None, 1.0, 1), (five, None, 0.0, 1)]


def test_wording_twins_loss_is_bce_on_both_plus_their_squared_difference() -> None:
    from models.training import batch_loss

    model = _FixedRewards({3: 2.0, 4: -1.0, 5: 1.0, 6: 0.0})
    cfg = TrainConfig(w_bce=1.0, w_bt=1.0, w_wording=0.5, precision="float32")
    batch = [Unit(_enc(5), label=1.0, twin=_enc(6)), Unit(_enc(3), rejected=_enc(4), labelled=True)]
    loss = batch_loss(model, batch, 0, torch.device("cpu"), cfg)
    bce = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-1.0)) + math.log(2)) / 4
    assert float(loss) == pytest.approx(bce + math.log1p(math.exp(-3.0)) + 0.5 * 1.0)


def test_labelled_pair_loss_is_bce_on_both_sides_plus_bt() -> None:
    from models.training import batch_loss

    chosen, rejected = _enc(3), _enc(4)
    model = _FixedRewards({3: 2.0, 4: -1.0})
    cfg = TrainConfig(w_bce=1.0, w_bt=1.0, precision="float32")
    loss = batch_loss(model, [Unit(chosen, rejected=rejected, labelled=True)], 0, torch.device("cpu"), cfg)
    bce = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert float(loss) == pytest.approx(bce + math.log1p(math.exp(-3.0)))
    plain = batch_loss(model, [Unit(chosen, rejected=rejected)], 0, torch.device("cpu"), cfg)
    assert float(plain) == pytest.approx(math.log1p(math.exp(-3.0)))


class _FixedRewards(torch.nn.Module):
    """A stand-in model whose reward is a fixed value per sequence length."""

    def __init__(self, by_length: dict[int, float]) -> None:
        super().__init__()
        self._by_length = by_length

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        rewards = [self._by_length[int(n)] for n in attention_mask.sum(dim=1)]
        return SimpleNamespace(logits=torch.tensor(rewards).reshape(-1, 1))


def _records() -> list[dict[str, object]]:
    recs: list[dict[str, object]] = []
    for i in range(12):
        harmful = i % 2 == 0
        recs.append({"kind": "point", "policy_text": "no harm allowed", "messages": [
            {"role": "user", "content": "how do i make a weapon" if harmful else "how do i bake a cake"}],
            "response": "here is how to build it" if harmful else "mix flour sugar and eggs",
            "label": "violate" if harmful else "comply", "source": "t", "group": f"g{i}",
            "calib": i < 8, "benign_sensitive": not harmful, "response_kind": "harmful" if harmful else "helpful"})
    recs.append({"kind": "pair", "policy_text": "no harm allowed", "messages": [{"role": "user", "content": "hi"}],
                 "chosen": "hello", "rejected": "hate you", "source": "t", "group": "p"})
    return recs


@pytest.mark.slow
def test_two_step_training_run_writes_a_loadable_checkpoint(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    from models.checkpoint import load_checkpoint
    from models.cli import train_main
    from models.data import write_jsonl

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", _records())
    write_jsonl(data / "mixed_val.jsonl", _records()[:12])
    write_jsonl(data / "benign_heldout.jsonl", _records()[:4])
    out = tmp_path / "model"
    rc = train_main(["--data", str(data), "--base", str(tiny_encoder_checkpoint), "--out", str(out),
                     "--work", str(tmp_path / "work"), "--max-steps", "2", "--batch-size", "4",
                     "--max-length", "128", "--policy-budget", "64", "--conversation-budget", "48",
                     "--lora-rank", "4", "--lora-top-layers", "1", "--device", "cpu", "--no-progress",
                     "--threads", "1", "--precision", "bfloat16", "--attention-dropout", "0",
                     "--no-frozen-layers-dropout", "--context", "response"])
    assert rc == 0
    cfg = json.loads((out / "csrm.json").read_text())
    assert cfg["context"] == "response"
    assert cfg["training_data"]["run"]["steps"] == 2
    assert cfg["calibration"]["temperature"] > 0
    assert "benign_heldout" in cfg["eval_metrics"]
    assert cfg["training_data"]["recipe"]["lora_top_layers"] == 1
    assert cfg["training_data"]["recipe"]["precision"] == "bfloat16"
    assert cfg["training_data"]["recipe"]["attention_dropout"] == 0.0
    assert cfg["training_data"]["recipe"]["frozen_layers_dropout"] is False
    for suite, n in (("mixed_val", 12), ("benign_heldout", 4)):
        rows = (tmp_path / "work" / "eval" / f"{suite}.scores.jsonl").read_text().splitlines()
        assert len(rows) == n and all(isinstance(json.loads(r)["reward"], float) for r in rows)
    model = load_checkpoint(out, device="cpu")
    assert len(model.score([])) == 0


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_finalize_fits_the_chosen_calibration_on_the_calib_half(tiny_encoder_checkpoint: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    import shutil

    import models.evaluation
    from models.cli import finalize

    out = tmp_path / "model"
    shutil.copytree(tiny_encoder_checkpoint, out)
    mixed = [{**r, "calib": True} for r in _records() if r["kind"] == "point"]
    rewards = [-1.0 if r["label"] == "violate" else 1.0 for r in mixed]
    rewards[0] = 2.0  # one violation above the compliant answers, so no map is a perfect step
    monkeypatch.setattr(models.evaluation, "score_records", lambda model, recs, **kw: rewards[:len(recs)])
    finalize(out, {"mixed_val": mixed}, tmp_path / "work", calibration=method, skip_eval=True)
    calibration = json.loads((out / "csrm.json").read_text())["calibration"]
    assert calibration["temperature"] > 0
    assert ("knots" in calibration) is (method == "isotonic")


def test_calibrate_fits_a_copy_under_another_context_and_leaves_the_checkpoint(tiny_encoder_checkpoint: Path,
                                                                              tmp_path: Path) -> None:
    from models.cli import calibrate_main
    from models.data import write_jsonl

    data = tmp_path / "data"
    write_jsonl(data / "mixed_val.jsonl", [{**r, "calib": True} for r in _records() if r["kind"] == "point"])
    write_jsonl(data / "benign_heldout.jsonl", _records()[:4])
    before = (tiny_encoder_checkpoint / "csrm.json").read_text()
    out = tmp_path / "copy"
    assert calibrate_main(["--model", str(tiny_encoder_checkpoint), "--data", str(data), "--out", str(out),
                           "--context", "request-tail", "--model-id", "tiny-tail", "--calibration", "sigmoid"]) == 0
    assert (tiny_encoder_checkpoint / "csrm.json").read_text() == before
    cfg = json.loads((out / "csrm.json").read_text())
    assert (cfg["context"], cfg["model_id"]) == ("request-tail", "tiny-tail")
    assert cfg["calibration"] != json.loads(before)["calibration"]
    assert "benign_heldout" in cfg["eval_metrics"]
    assert len((tmp_path / "copy.work" / "eval" / "benign_heldout.scores.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(("problem", "message"), [("out exists", "exists"), ("no mixed_val", "no mixed_val.jsonl"),
                                                  ("no checkpoint", "needs a csrm.json"),
                                                  ("bad checkpoint", "invalid: context"),
                                                  ("empty id", "non-empty name")])
def test_calibrate_refuses_before_writing(tiny_encoder_checkpoint: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], problem: str, message: str) -> None:
    import shutil

    from models.cli import calibrate_main
    from models.data import write_jsonl

    data, out, model = tmp_path / "data", tmp_path / "copy", tmp_path / "model"
    shutil.copytree(tiny_encoder_checkpoint, model)
    write_jsonl(data / ("benign_heldout.jsonl" if problem == "no mixed_val" else "mixed_val.jsonl"), _records()[:4])
    if problem == "out exists":
        out.mkdir()
    if problem == "no checkpoint":
        shutil.rmtree(model)
    if problem == "bad checkpoint":
        config = json.loads((model / "csrm.json").read_text())
        (model / "csrm.json").write_text(json.dumps({**config, "context": "prompt"}))
    extra = ["--model-id", " "] if problem == "empty id" else []
    with pytest.raises(SystemExit) as exit_info:
        calibrate_main(["--model", str(model), "--data", str(data), "--out", str(out), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (out / "csrm.json").exists()


def _wrapped(checkpoint: Path, **knobs: Any) -> torch.nn.Module:
    """The tiny checkpoint as a one-output classifier wrapped by `wrap_lora` (rank 4) with ``knobs``."""
    from transformers import AutoModelForSequenceClassification

    from models.training import wrap_lora

    base = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=1)
    return wrap_lora(base, TrainConfig(lora_r=4, **knobs))


def _trainable_after_wrap(checkpoint: Path, top: int | None) -> list[str]:
    return [name for name, p in _wrapped(checkpoint, lora_top_layers=top).named_parameters() if p.requires_grad]


def test_lora_top_layers_adapt_only_those_layers_and_train_the_pooler(tiny_encoder_checkpoint: Path) -> None:
    trainable = _trainable_after_wrap(tiny_encoder_checkpoint, 1)
    assert any(".layer.1." in n and "lora_" in n for n in trainable)
    assert not any(".layer.0." in n for n in trainable)
    assert any("pooler" in n for n in trainable) and any("classifier" in n for n in trainable)


@pytest.mark.parametrize("top", [None, 5])
def test_lora_top_layers_none_or_deeper_than_the_model_adapts_every_layer(tiny_encoder_checkpoint: Path,
                                                                          top: int | None) -> None:
    trainable = _trainable_after_wrap(tiny_encoder_checkpoint, top)
    assert any(".layer.0." in n for n in trainable) and any(".layer.1." in n for n in trainable)


@pytest.mark.parametrize("text", ["x", "0", "-1", "", "1.5", " "])
def test_lora_top_layers_flag_rejects_bad_values(text: str) -> None:
    from models.cli import _top_layers

    with pytest.raises(argparse.ArgumentTypeError):
        _top_layers(text)


@pytest.mark.parametrize("text", ["-1", "x", "", "2.5"])
def test_probe_steps_flag_rejects_what_is_not_a_step_count(text: str) -> None:
    from models.cli import _non_negative

    with pytest.raises(argparse.ArgumentTypeError):
        _non_negative(text)


def test_probe_steps_flag_parses() -> None:
    from models.cli import _non_negative

    assert _non_negative("300") == 300 and _non_negative("0") == 0


def test_lora_top_layers_flag_parses() -> None:
    from models.cli import _top_layers

    assert _top_layers("3") == 3
    assert _top_layers("all") is None


def test_attention_dropout_knob_sets_the_rate_of_encoders_and_decoders(tiny_encoder_checkpoint: Path,
                                                                       tiny_decoder_checkpoint: Path) -> None:
    from models.training import base_config

    encoder = base_config(tiny_encoder_checkpoint, TrainConfig(attention_dropout=0.0))
    assert encoder.attention_probs_dropout_prob == 0.0 and encoder.num_labels == 1
    assert encoder.hidden_dropout_prob == base_config(tiny_encoder_checkpoint, TrainConfig()).hidden_dropout_prob
    assert base_config(tiny_decoder_checkpoint, TrainConfig(attention_dropout=0.25)).attention_dropout == 0.25


def test_no_attention_dropout_knob_keeps_the_base_models_rate(tiny_encoder_checkpoint: Path) -> None:
    from transformers import AutoConfig

    from models.training import base_config

    own = AutoConfig.from_pretrained(tiny_encoder_checkpoint).attention_probs_dropout_prob
    assert own > 0
    assert base_config(tiny_encoder_checkpoint, TrainConfig()).attention_probs_dropout_prob == own


def _dropout_rates_as_built(checkpoint: Path, init_adapter: Path | None = None, **knobs: Any) -> dict[str, float]:
    """Dropout rates of the model `csrm train` builds from the tiny checkpoint (rank 4) with ``knobs``."""
    from models.cli import _build_model

    args = argparse.Namespace(base=str(checkpoint), init_adapter=init_adapter)
    model, _, _ = _build_model(args, TrainConfig(lora_r=4, device="cpu", **knobs))
    return {name: module.p for name, module in model.named_modules() if isinstance(module, torch.nn.Dropout)}


@pytest.mark.parametrize("continued", [False, True])
def test_frozen_layers_run_without_dropout_when_asked_and_the_adapted_ones_keep_it(
        tiny_encoder_checkpoint: Path, tmp_path: Path, continued: bool) -> None:
    adapter = None
    if continued:
        adapter = tmp_path / "adapter"
        _wrapped(tiny_encoder_checkpoint, lora_top_layers=1).save_pretrained(adapter)
    rates = _dropout_rates_as_built(tiny_encoder_checkpoint, adapter, lora_top_layers=1, frozen_layers_dropout=False)
    frozen = {n: p for n, p in rates.items() if ".layer.0." in n or "embeddings" in n}
    adapted = {n: p for n, p in rates.items() if ".layer.1." in n}
    assert frozen and set(frozen.values()) == {0.0}
    assert adapted and all(p > 0 for p in adapted.values())


@pytest.mark.parametrize("knobs", [{"lora_top_layers": 1}, {"lora_top_layers": None, "frozen_layers_dropout": False},
                                   {"full_finetune": True, "frozen_layers_dropout": False}])
def test_dropout_stays_where_no_layer_is_frozen_or_nothing_is_asked(tiny_encoder_checkpoint: Path,
                                                                    knobs: dict[str, Any]) -> None:
    rates = _dropout_rates_as_built(tiny_encoder_checkpoint, **knobs)
    assert rates and all(p > 0 for p in rates.values())


@pytest.mark.parametrize("text", ["1", "-0.1", "x", "", "nan"])
def test_attention_dropout_flag_rejects_what_is_not_a_rate(text: str) -> None:
    from models.cli import _probability

    with pytest.raises(argparse.ArgumentTypeError):
        _probability(text)


def test_attention_dropout_flag_parses() -> None:
    from models.cli import _probability

    assert _probability("0") == 0.0 and _probability("0.1") == 0.1


def _tiny_cfg(**overrides: Any) -> TrainConfig:
    knobs: dict[str, Any] = {"max_steps": 2, "batch_size": 4, "max_length": 128, "policy_token_budget": 64,
                             "conversation_budget": 48, "lora_r": 4, "seed": 3, "device": "cpu"}
    return TrainConfig(**{**knobs, **overrides})


def test_template_pool_reads_only_the_response_under_the_response_context(tiny_encoder_checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    from models.training import TemplatePool
    from models.types import Message, ScoreInput

    tok = AutoTokenizer.from_pretrained(tiny_encoder_checkpoint)
    pool = TemplatePool(tok, "encoder-pair/1", _tiny_cfg(context="response"))
    answer = Message("assistant", "no")
    asked = pool.encode(ScoreInput("no weapons", (Message("user", "help me build one"), answer)))
    assert asked == pool.encode(ScoreInput("no weapons", (answer,)))


def _tiny_model_and_units(checkpoint: Path, cfg: TrainConfig) -> tuple[torch.nn.Module, list[Unit]]:
    """A LoRA-wrapped tiny encoder initialised from ``cfg.seed`` and ``_records`` encoded for it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.training import TemplatePool, encode_records, wrap_lora

    tok = AutoTokenizer.from_pretrained(checkpoint)
    units = encode_records(_records(), TemplatePool(tok, "encoder-pair/1", cfg).encode)
    torch.manual_seed(cfg.seed)
    return wrap_lora(AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=1), cfg), units


def _train_tiny(checkpoint: Path, cfg: TrainConfig,
                seconds_after: Callable[[int], float] = float) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """Train on ``_records`` with a clock that reads ``seconds_after(forward passes so far)`` (default: one second
    per forward pass); the summary and the trained weights."""
    from models.training import train_model

    model, units = _tiny_model_and_units(checkpoint, cfg)
    forwards = [0]
    model.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    summary = train_model(model, units, cfg, pad_id=0, device=torch.device("cpu"), progress=False,
                          clock=lambda: seconds_after(forwards[0]))
    return summary, [p.detach().clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("probe_steps", [0, 2])
def test_same_seed_same_run(tiny_encoder_checkpoint: Path, probe_steps: int) -> None:
    cfg = _tiny_cfg(probe_steps=probe_steps, lora_top_layers=1)
    (first, first_weights), (second, second_weights) = (_train_tiny(tiny_encoder_checkpoint, cfg) for _ in range(2))
    assert first["mean_loss"] == second["mean_loss"]
    assert all(torch.equal(a, b) for a, b in zip(first_weights, second_weights, strict=True))


def test_bfloat16_precision_autocasts_the_forward_and_keeps_float32_weights(tiny_encoder_checkpoint: Path) -> None:
    from models.training import batch_loss, train_model

    cfg = _tiny_cfg(precision="bfloat16")
    model, units = _tiny_model_and_units(tiny_encoder_checkpoint, cfg)
    model.eval()
    cpu = torch.device("cpu")
    with torch.no_grad():
        half = float(batch_loss(model, units[:4], 0, cpu, cfg))
        full = float(batch_loss(model, units[:4], 0, cpu, TrainConfig(precision="float32")))
    assert half != full and half == pytest.approx(full, abs=0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    summary = train_model(model, units, cfg, pad_id=0, device=cpu, progress=False)
    assert summary["precision"] == "bfloat16"
    after = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.dtype == torch.float32 for p in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_probe_stage_trains_the_head_alone_then_hands_every_parameter_back(tiny_encoder_checkpoint: Path) -> None:
    from models.training import head_parameters, train_model

    cfg = _tiny_cfg(max_steps=0, probe_steps=3, lora_top_layers=1)
    model, units = _tiny_model_and_units(tiny_encoder_checkpoint, cfg)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    head = {id(p) for p in head_parameters(model)}
    summary = train_model(model, units, cfg, pad_id=0, device=torch.device("cpu"), progress=False)
    after = dict(model.named_parameters())
    changed = {n for n, before in trainable.items() if not torch.equal(before, after[n])}
    assert changed and all(id(after[n]) in head for n in changed)
    assert any("lora_" in n for n in trainable) and not any("lora_" in n for n in changed)
    assert {n for n, p in after.items() if p.requires_grad} == set(trainable)
    assert summary["steps"] == 0 and isinstance(summary["probe_final_loss"], float)


def test_a_probe_leaves_the_fine_tuning_data_order_as_it_was(tiny_encoder_checkpoint: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import models.training as training

    real = training.batch_loss

    def batches_seen(probe_steps: int) -> list[list[tuple[int, ...]]]:
        cfg = _tiny_cfg(max_steps=4, probe_steps=probe_steps, lora_top_layers=1)
        model, units = _tiny_model_and_units(tiny_encoder_checkpoint, cfg)
        seen: list[list[tuple[int, ...]]] = []
        monkeypatch.setattr(training, "batch_loss", lambda m, batch, *a: seen.append(
            [u.first.input_ids for u in batch]) or real(m, batch, *a))
        training.train_model(model, units, cfg, pad_id=0, device=torch.device("cpu"), progress=False)
        return seen

    plain, probed = batches_seen(0), batches_seen(3)
    assert len(plain) == 4 and len(probed) == 7
    assert probed[3:] == plain and probed[:3] != plain[:3]


def test_head_parameters_are_the_pooler_and_classifier_not_the_adapters(tiny_encoder_checkpoint: Path) -> None:
    from models.training import head_parameters

    model, _ = _tiny_model_and_units(tiny_encoder_checkpoint, _tiny_cfg(lora_top_layers=1))
    names = {n for n, p in model.named_parameters() if any(p is h for h in head_parameters(model))}
    assert names and all(("pooler." in n or "classifier." in n) and "lora_" not in n for n in names)
    assert any("pooler." in n for n in names) and any("classifier." in n for n in names)


def test_no_probe_steps_means_no_probe_stage(tiny_encoder_checkpoint: Path) -> None:
    summary, _ = _train_tiny(tiny_encoder_checkpoint, _tiny_cfg())
    assert summary["probe_final_loss"] is None and summary["steps"] == 2


def _budget_cfg(budget: float | None) -> TrainConfig:
    return _tiny_cfg(epochs=10, max_steps=20, time_budget_s=budget)


def test_a_run_that_fits_its_time_budget_does_not_depend_on_the_clock(tiny_encoder_checkpoint: Path) -> None:
    free, free_weights = _train_tiny(tiny_encoder_checkpoint, _budget_cfg(None))
    timed, timed_weights = _train_tiny(tiny_encoder_checkpoint, _budget_cfg(21.0))
    assert free["steps"] == timed["steps"] == timed["planned_steps"] == timed["requested_steps"] == 20
    assert all(torch.equal(a, b) for a, b in zip(free_weights, timed_weights, strict=True))


def test_a_run_that_would_overrun_its_time_budget_is_shortened_and_ends_by_plan(
        tiny_encoder_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bar = SimpleNamespace(total=None, n=0, update=lambda k: setattr(bar, "n", bar.n + k),
                          set_postfix=lambda **_: None, close=lambda: None)
    monkeypatch.setattr("models.training._bar", lambda total, enabled, desc: setattr(bar, "total", total) or bar)
    summary, _ = _train_tiny(tiny_encoder_checkpoint, _budget_cfg(10.0))
    assert summary["planned_steps"] == summary["steps"] == 10
    assert summary["requested_steps"] == 20  # csrm.json shows the run was shortened
    assert not summary["stopped_by_time_budget"]
    assert bar.total == bar.n == 10  # the progress bar counts to the plan, not to the 20 steps first planned


def test_a_run_slowed_only_at_first_gets_its_full_plan_back(tiny_encoder_checkpoint: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    def seconds_after(forwards: int) -> float:  # 2 s per step for two steps, then 0.1 s
        return 2.0 * min(forwards, 2) + 0.1 * max(0, forwards - 2)

    with caplog.at_level("WARNING", logger="models.training"):
        summary, _ = _train_tiny(tiny_encoder_checkpoint, _budget_cfg(30.0), seconds_after)
    assert "allows 15 of 20 steps" in caplog.text
    assert summary["planned_steps"] == summary["steps"] == 20


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True),
                                               ("fpu avx2 avx512f avx512bw", False)])
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    from models.training import cpu_has_native_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_native_bfloat16(cpuinfo) is native
    assert cpu_has_native_bfloat16(tmp_path / "absent") is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_on_cuda_and_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch,
                                                                       native: bool) -> None:
    from models import training

    monkeypatch.setattr(training, "cpu_has_native_bfloat16", lambda: native)
    assert training.resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")
    assert training.resolve_precision("auto", "cuda") == "bfloat16"
    assert training.resolve_precision("float32", "cuda") == "float32"
    assert training.resolve_precision("bfloat16", "cpu") == "bfloat16"


def test_asking_for_bfloat16_where_the_cpu_emulates_it_warns(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from models import training

    monkeypatch.setattr(training, "cpu_has_native_bfloat16", lambda: False)
    with caplog.at_level(logging.INFO, logger="models.training"):
        assert training._run_precision("auto", "cpu") == "float32"
        assert "emulated" not in caplog.text
        assert training._run_precision("bfloat16", "cpu") == "bfloat16"
    assert "emulated" in caplog.text and "forward pass in bfloat16" in caplog.text
