"""CPU speed path for a loaded CSRM: int8 dynamic quantisation of the transformer's linear layers.

``quantize_model(model, "int8-dynamic")`` replaces every ``torch.nn.Linear`` of the backbone (attention and
feed-forward projections, and the BERT pooler) by a dynamically quantised one: weights int8 per output channel,
activations quantised per batch at run time (``torch.ao.quantization.quantize_dynamic``). The scalar reward head
(``classifier`` / ``score``) stays float32, so the reward's scale is untouched; embeddings and layer norms stay
float32 too. CPU only (fbgemm kernels); on CUDA the model runs bfloat16 instead.

Trade-off (numbers in BENCHMARKS.md, "CPU speed path"): about 1.6-2.2x the float32 throughput on this CPU and
nearly the same ranking (Spearman 0.991-0.998 against float32), but activations are quantised with one scale per
batch tensor, so an item's reward moves a little with the items it is batched with (float32 rows never interact),
and a calibration fitted on float32 rewards fits less well (ECE +0.02 on the trained model). It is therefore
opt-in (``CSRM_QUANTIZE=int8-dynamic``), for throughput-first bulk scoring; the default is ``none``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal, get_args

import torch

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = ["QUANTIZE_MODES", "QuantizeMode", "quantize_model", "resolve_quantize"]

QuantizeMode = Literal["none", "int8-dynamic"]
QUANTIZE_MODES: tuple[str, ...] = get_args(QuantizeMode)

_HEAD_NAMES = frozenset({"classifier", "score"})


def resolve_quantize(mode: str, device: str) -> str:
    """Check ``mode`` against the device and return it.

    Raises:
        ValueError: Unknown mode, or ``int8-dynamic`` asked for on a non-CPU device.
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {mode!r}; use one of {', '.join(QUANTIZE_MODES)}")
    on_cpu = torch.device(device).type == "cpu"
    if mode == "int8-dynamic" and not on_cpu:
        raise ValueError(f"int8-dynamic quantisation runs on CPU only, not on {device}")
    return mode


def quantize_model(model: CsrmModel, mode: str) -> CsrmModel:
    """Apply a speed path to ``model`` in place and return it.

    Args:
        model: A loaded float32 CsrmModel on CPU (not shared with a thread that is scoring).
        mode: ``none`` or ``int8-dynamic``.

    Raises:
        ValueError: Unknown mode, a non-CPU model, or a model that is not float32.
    """
    resolved = resolve_quantize(mode, model.device)
    if resolved == "none":
        return model
    if model.dtype != "float32":
        raise ValueError(f"int8-dynamic quantisation needs a float32 model, got {model.dtype}")
    backbone_linears = {
        name: torch.ao.quantization.per_channel_dynamic_qconfig
        for name, module in model.torch_model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in _HEAD_NAMES
    }
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the eager API still works on torch < 2.14.
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(
            model.torch_model, qconfig_spec=backbone_linears, dtype=torch.qint8, inplace=True
        )
    return model
