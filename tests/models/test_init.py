from __future__ import annotations

import subprocess
import sys

import models


def test_exported_members() -> None:
    """Pin the public surface other packages import from `models` (httpx test_exported_members)."""
    for name in models.__all__:
        assert getattr(models, name) is not None, name
        member = getattr(models, name)
        if hasattr(member, "__module__") and name != "Role":
            assert member.__module__.startswith("models."), name
    assert set(models.__all__) == {
        "BaseModelRef", "Calibration", "CheckpointError", "CsrmConfig", "CsrmModel", "EncodedInput",
        "InputTemplate", "InputTooLong", "InvalidInput", "ItemScore", "Message", "ModelError", "Role",
        "ScoreInput", "build_template", "default_checkpoint_path", "expected_calibration_error",
        "fit_calibration", "load_checkpoint", "save_checkpoint",
    }


def test_every_module_lists_all() -> None:
    import models.calibration
    import models.checkpoint
    import models.scoring
    import models.template

    for module in (models.calibration, models.checkpoint, models.scoring, models.template):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_import_is_light() -> None:
    """`import models` must not pull torch or transformers in (the service's fakes and policy code import it)."""
    code = "import sys, models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
