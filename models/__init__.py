"""The CSRM model package: checkpoint format and loading, input template, scoring, calibration.

Importing `models` is cheap: the light modules (types, errors, calibration) load eagerly, and the names that need
torch and transformers (`CsrmModel`, `load_checkpoint`, ...) load on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models.calibration import Calibration, expected_calibration_error, fit_calibration
from models.errors import CheckpointError, InputTooLong, InvalidInput, ModelError
from models.types import EncodedInput, ItemScore, Message, Role, ScoreInput

if TYPE_CHECKING:
    from models.checkpoint import (
        BaseModelRef,
        CsrmConfig,
        default_checkpoint_path,
        load_checkpoint,
        save_checkpoint,
    )
    from models.scoring import CsrmModel
    from models.template import InputTemplate, build_template

__all__ = [
    "BaseModelRef",
    "Calibration",
    "CheckpointError",
    "CsrmConfig",
    "CsrmModel",
    "EncodedInput",
    "InputTemplate",
    "InputTooLong",
    "InvalidInput",
    "ItemScore",
    "Message",
    "ModelError",
    "Role",
    "ScoreInput",
    "build_template",
    "default_checkpoint_path",
    "expected_calibration_error",
    "fit_calibration",
    "load_checkpoint",
    "save_checkpoint",
]

_LAZY = {
    "BaseModelRef": "models.checkpoint",
    "CsrmConfig": "models.checkpoint",
    "default_checkpoint_path": "models.checkpoint",
    "load_checkpoint": "models.checkpoint",
    "save_checkpoint": "models.checkpoint",
    "CsrmModel": "models.scoring",
    "InputTemplate": "models.template",
    "build_template": "models.template",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
