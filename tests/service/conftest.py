"""Fixtures for the HTTP tests.

- `clean_env` (autouse): removes every `CSRM_*` variable, so a developer's environment cannot leak into tests.
- `make_settings(**overrides)`: `Settings` with an in-memory policy store, a keys file under `tmp_path`, warm-up
  off, CPU/float32 and a short batching wait; `overrides` are merged group by group.

Serving helpers (`serve`, `wait_ready`, `metric_samples`) live in `tests/service/helpers.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CSRM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store": {"url": "memory:"},
            "auth": {"keys_file": tmp_path / "keys.json"},
            "batcher": {"max_wait_ms": 2.0},
            "warm_up": False,
            "device": "cpu",
            "dtype": "float32",
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        return Settings(**values)

    return make


TINY_POLICY = "tiny-policy"


@pytest.fixture
async def tiny_policy_store() -> Any:
    """An in-memory store holding only `tiny-policy` v1 (stable): short enough for the tiny checkpoints' budget."""
    from policies.registry import PolicyRegistry
    from policies.store.memory import InMemoryPolicyStore

    store = InMemoryPolicyStore()
    await PolicyRegistry(store).create_policy(
        {"id": TINY_POLICY, "spec": {"text": "no weapons allowed"}, "threshold": 0.5}, actor="test"
    )
    yield store
    await store.close()


@pytest.fixture
def real_app_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """`make_settings` for a real checkpoint: the tiny policy as default and no library seeding."""

    def make(checkpoint: Path, **overrides: Any) -> Settings:
        return make_settings(
            model=checkpoint, default_policy=TINY_POLICY, store={"seed_library": False}, **overrides
        )

    return make
