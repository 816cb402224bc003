"""Settings: CSRM_* environment, nested groups, flat aliases, documentation."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

import service
from service.batcher import BatcherConfig
from service.settings import BatcherSettings, Settings, env_reference, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.model is None
    assert settings.default_policy == "general-safety"
    assert settings.store.url == "file:var/policies"
    assert settings.auth.keys_file == Path("var/keys.json")
    assert settings.auth.api_key is None


def test_environment_and_nested_groups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CSRM_PORT", "9001")
    monkeypatch.setenv("CSRM_MODEL", str(tmp_path))
    monkeypatch.setenv("CSRM_DEFAULT_POLICY", "kids-education:canary")
    monkeypatch.setenv("CSRM_BATCHER__MAX_WAIT_MS", "7.5")
    monkeypatch.setenv("CSRM_LIMITS__MAX_ITEMS", "12")
    settings = Settings()
    assert settings.port == 9001
    assert settings.model == tmp_path
    assert settings.default_policy == "kids-education:canary"
    assert settings.batcher.max_wait_ms == 7.5
    assert settings.batcher.max_batch_items == 64  # the rest of the group keeps its defaults
    assert settings.limits.max_items == 12


def test_flat_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSRM_POLICY_STORE", "postgresql://db/csrm")
    monkeypatch.setenv("CSRM_KEYS_FILE", "/etc/csrm/keys.json")
    monkeypatch.setenv("CSRM_API_KEY", "csrm_secret")
    settings = Settings()
    assert settings.store.url == "postgresql://db/csrm"
    assert settings.auth.keys_file == Path("/etc/csrm/keys.json")
    assert settings.auth.api_key is not None
    assert settings.auth.api_key.get_secret_value() == "csrm_secret"
    assert "csrm_secret" not in repr(settings)


def test_nested_spelling_wins_over_the_flat_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSRM_POLICY_STORE", "file:/a")
    monkeypatch.setenv("CSRM_STORE__URL", "file:/b")
    assert Settings().store.url == "file:/b"


def test_explicit_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSRM_POLICY_STORE", "file:/a")
    monkeypatch.setenv("CSRM_PORT", "1")
    settings = Settings(port=2, store={"url": "memory:"})
    assert settings.port == 2
    assert settings.store.url == "memory:"


@pytest.mark.parametrize(
    ("name", "value"),
    [("CSRM_PORT", "eighty"), ("CSRM_BATCHER__MAX_BATCH_ITEMS", "0"), ("CSRM_DTYPE", "int8")],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(prot=1)  # type: ignore[call-arg]


def test_every_field_is_described() -> None:
    models: list[type[BaseModel]] = [Settings]
    models += [f.annotation for f in Settings.model_fields.values() if isinstance(f.annotation, type)
               and issubclass(f.annotation, BaseModel)]  # fmt: skip
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_batcher_settings_map_onto_batcher_config() -> None:
    assert set(BatcherSettings.model_fields) == set(BatcherConfig.__dataclass_fields__)
    config = BatcherConfig(**BatcherSettings(max_wait_ms=3).model_dump())
    assert config.max_wait_ms == 3


def test_readme_documents_every_setting() -> None:
    readme = README.read_text()
    assert markdown_table() in readme, "README's settings table is stale: paste `python -m service.settings`"
    for env, _, _ in env_reference():
        assert env in readme


def test_no_module_builds_settings_at_import() -> None:
    for info in pkgutil.walk_packages(service.__path__, "service."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            assert not isinstance(value, BaseSettings), f"{info.name} builds settings at import time"
