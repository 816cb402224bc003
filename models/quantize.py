"""CPU speed path for a loaded CSRM: int8 dynamic quantisation of the transformer's linear layers.

``quantize_model(model, "int8-dynamic")`` replaces every ``torch.nn.Linear`` of the backbone (attention and
feed-forward projections, and the BERT pooler) by a dynamically quantised one: weights int8 per output channel,
activations quantised per batch at run time (``torch.ao.quantization.quantize_dynamic``). The scalar reward head
(``classifier`` / ``score``) stays float32, so the reward's scale is untouched; embeddings and layer norms stay
float32 too. CPU only (fbgemm kernels); on CUDA the model runs bfloat16 instead and ``auto`` resolves to ``none``.

BENCHMARKS.md ("CPU speed path") has its speed and its agreement with float32; the service's setting is
``CSRM_QUANTIZE``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal, get_args

import torch

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = ["QUANTIZE_MODES", "QuantizeMode", "quantize_model", "resolve_quantize"]

QuantizeMode = Literal["auto", "none", "int8-dynamic"]
QUANTIZE_MODES: tuple[str, ...] = get_args(QuantizeMode)

_HEAD_NAMES = frozenset({"classifier", "score"})


def resolve_quantize(mode: str, device: str) -> str:
    """Resolve ``auto``: ``int8-dynamic`` on CPU, ``none`` elsewhere. Other modes pass through.

    Raises:
        ValueError: Unknown mode, or ``int8-dynamic`` asked for on a non-CPU device.
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {mode!r}; use one of {', '.join(QUANTIZE_MODES)}")
    on_cpu = torch.device(device).type == "cpu"
    if mode == "auto":
        return "int8-dynamic" if on_cpu else "none"
    if mode == "int8-dynamic" and not on_cpu:
        raise ValueError(f"int8-dynamic quantisation runs on CPU only, not on {device}")
    return mode


def quantize_model(model: CsrmModel, mode: str) -> CsrmModel:
    """Apply a speed path to ``model`` in place and return it.

    Args:
        model: A loaded float32 CsrmModel on CPU (not shared with a thread that is scoring).
        mode: ``none``, ``int8-dynamic`` or ``auto`` (see ``resolve_quantize``).

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
