"""Service settings: one `Settings` object, read from `CSRM_*` environment variables.

Nothing here runs at import time. `service.cli` builds `Settings()` once and hands it to
`service.app.create_app`; tests construct `Settings(...)` directly.

Nested groups use `__` as delimiter (`CSRM_BATCHER__MAX_BATCH_TOKENS=8192`). A few flat names are kept
because they are the documented spellings and shorter to type:

    CSRM_POLICY_STORE  -> store.url
    CSRM_KEYS_FILE     -> auth.keys_file
    CSRM_API_KEY       -> auth.api_key

The nested spelling (`CSRM_STORE__URL`) wins when both are set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "FLAT_ENV_ALIASES",
    "env_reference",
    "markdown_table",
    "AuthSettings",
    "BatcherSettings",
    "LimitSettings",
    "PolicyStoreSettings",
    "Settings",
]

#: Flat environment variable names and the nested setting each one sets.
FLAT_ENV_ALIASES: dict[str, tuple[str, str]] = {
    "CSRM_POLICY_STORE": ("store", "url"),
    "CSRM_KEYS_FILE": ("auth", "keys_file"),
    "CSRM_API_KEY": ("auth", "api_key"),
}


class BatcherSettings(BaseModel):
    """Knobs of the dynamic batcher (`CSRM_BATCHER__*`); they map one to one onto `service.batcher.BatcherConfig`."""

    model_config = ConfigDict(extra="forbid")

    max_batch_tokens: int = Field(
        16384, ge=1, description="Most padded tokens (longest item x items) in one forward pass."
    )
    max_batch_items: int = Field(64, ge=1, description="Most items in one forward pass.")
    max_wait_ms: float = Field(
        5.0, ge=0, description="Longest time the oldest queued item waits for a batch to fill, in ms."
    )
    max_queue_tokens: int = Field(
        1_048_576, ge=1, description="Queue bound in real tokens (all lanes); beyond it requests get 429 + Retry-After."
    )
    max_queue_items: int = Field(
        4096, ge=1, description="Queue bound in items (all lanes); beyond it requests get 429 + Retry-After."
    )
    tokenizer_threads: int = Field(2, ge=1, description="Threads that tokenize requests off the event loop.")
    drain_timeout_s: float = Field(
        10.0, ge=0, description="At shutdown, how long queued items may still be scored before they fail (503)."
    )


class PolicyStoreSettings(BaseModel):
    """Where policies live (`CSRM_POLICY_STORE` or `CSRM_STORE__*`)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "file:var/policies",
        description="Policy store URL: `file:PATH` (embedded default), `postgresql://...` or `memory:`.",
    )
    seed_library: bool = Field(
        True, description="Publish the bundled policies/library documents as version 1 on first start."
    )


class AuthSettings(BaseModel):
    """API keys (`CSRM_KEYS_FILE`, `CSRM_API_KEY` or `CSRM_AUTH__*`)."""

    model_config = ConfigDict(extra="forbid")

    keys_file: Path = Field(
        Path("var/keys.json"),
        description="JSON file holding the API key hashes; `csrm keys create` writes it.",
    )
    api_key: SecretStr | None = Field(
        None, description="Key the `csrm policy` client sends to a running server (never used by the server)."
    )


class LimitSettings(BaseModel):
    """Request size limits (`CSRM_LIMITS__*`). Exceeding them gives 413 with a JSON error."""

    model_config = ConfigDict(extra="forbid")

    max_items: int = Field(1024, ge=1, description="Most items (or /get_reward queries) in one request.")
    max_chars: int = Field(
        65536, ge=1, description="Most characters in one text field (prompt, response, message, query, policy_text)."
    )
    max_messages: int = Field(128, ge=1, description="Most messages in one item's conversation.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest request body accepted, from Content-Length, in bytes."
    )


class _FlatAliasSource(PydanticBaseSettingsSource):
    """Reads the flat names of FLAT_ENV_ALIASES into their nested settings."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for env_name, (group, key) in FLAT_ENV_ALIASES.items():
            value = os.environ.get(env_name)
            if value is not None:
                values.setdefault(group, {})[key] = value
        return values


class Settings(BaseSettings):
    """Every knob of the service. Build it once (the CLI does) and pass it to `create_app`."""

    model_config = SettingsConfigDict(
        env_prefix="CSRM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Address `csrm serve` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `csrm serve` binds.")
    model: Path | None = Field(
        None, description="CSRM checkpoint directory; unset loads the bundled default checkpoint."
    )
    device: str = Field("auto", description="Torch device: `auto` (CUDA when present, else CPU), `cpu`, `cuda:0`...")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Model dtype: `auto` is bfloat16 on CUDA and float32 on CPU."
    )
    quantize: Literal["none", "int8-dynamic"] = Field(
        "none",
        description="CPU speed path: `int8-dynamic` quantises the backbone's linear layers (about 1.6-2.2x the "
        "float32 throughput; rewards then move slightly with their batch-mates and the calibration drifts), "
        "see BENCHMARKS.md. CPU and float32 only.",
    )
    default_policy: str = Field(
        "general-safety", description="Policy reference used when a request names none (`id`, `id@N`, `id:alias`)."
    )
    warm_up: bool = Field(True, description="Score one dummy batch at start-up before /readyz turns ready.")
    log_level: str = Field("info", description="Log level of `csrm serve` (uvicorn and the service loggers).")
    batcher: BatcherSettings = Field(default_factory=BatcherSettings, description="Dynamic batcher knobs.")
    store: PolicyStoreSettings = Field(default_factory=PolicyStoreSettings, description="Policy store.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="API keys.")
    limits: LimitSettings = Field(default_factory=LimitSettings, description="Request size limits.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FlatAliasSource(settings_cls), dotenv_settings, file_secret_settings)


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return ""
    if field.default is None:
        return "unset"
    if isinstance(field.default, Path):
        return str(field.default)
    if isinstance(field.default, bool):
        return str(field.default).lower()
    return str(field.default)


def env_reference() -> list[tuple[str, str, str]]:
    """Every setting as (environment variable, default, description), nested groups expanded.

    A flat alias (e.g. `CSRM_POLICY_STORE`) is listed instead of its nested spelling.
    """
    flat = {target: name for name, target in FLAT_ENV_ALIASES.items()}
    rows = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub_name, sub_field in annotation.model_fields.items():
                env = flat.get((name, sub_name), f"CSRM_{name.upper()}__{sub_name.upper()}")
                rows.append((env, _default_text(sub_field), sub_field.description or ""))
        else:
            rows.append((f"CSRM_{name.upper()}", _default_text(field), field.description or ""))
    return rows


def markdown_table() -> str:
    """The settings reference as a Markdown table (the README embeds it verbatim)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for env, default, description in env_reference():
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{env}` | `{default}` | {escaped} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
