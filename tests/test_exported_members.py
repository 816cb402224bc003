"""Pin the public surface (httpx `tests/test_exported_members.py`): every module lists `__all__`, every listed name
exists, and the `service` package exports exactly what other code uses."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import models
import policies
import service

PACKAGES = (service, models, policies)


def _modules(package: ModuleType) -> list[str]:
    names = [package.__name__]
    names += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [name for name in names if not name.endswith("__main__")]


ALL_MODULES = [name for package in PACKAGES for name in _modules(package)]


def test_service_exports() -> None:
    assert sorted(service.__all__) == ["Settings", "create_app"]
    for name in service.__all__:
        assert getattr(service, name).__module__.startswith("service.")


@pytest.mark.parametrize("module_name", ALL_MODULES)
def test_every_module_lists_its_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:  # only an empty package __init__ may go without
        public = [k for k, v in vars(module).items() if not k.startswith("_") and not isinstance(v, ModuleType)]
        assert not public, f"{module_name} has no __all__ but defines {public}"
        return
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ has duplicates"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ lists undefined names: {missing}"


@pytest.mark.parametrize("module_name", [n for n in ALL_MODULES if n.startswith("service.")])
def test_service_modules_export_only_their_own_definitions(module_name: str) -> None:
    """Re-exports belong in the package `__init__` only (constants and type aliases are fine)."""
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        defined_in = getattr(value, "__module__", module_name)
        assert defined_in in (module_name, "typing", "builtins") or not callable(value), (
            f"{module_name} re-exports {name} from {defined_in}"
        )
