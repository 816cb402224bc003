"""Helpers for tests against the real PostgreSQL server named by `CSRM_TEST_PG_URL`.

Every test works in its own schema (`csrm_test_<random>`), dropped afterwards, so parallel runs and CI never see
each other's tables. Tests skip, with the reason, only when no server answers at the URL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from policies.store.postgres import PostgresPolicyStore

__all__ = [
    "DEFAULT_PG_URL",
    "pg_url",
    "postgres_backend",
    "require_postgres",
    "store_url",
    "temporary_schema",
]

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

# Short timeouts so outage tests finish quickly; production defaults are longer.
FAST = {"timeout": 1.0, "ping_timeout": 0.5, "poll_interval": 0.2, "connect_timeout": 1.0}


def pg_url() -> str:
    """The server tests use: `CSRM_TEST_PG_URL`, else the local default."""
    return os.environ.get("CSRM_TEST_PG_URL", DEFAULT_PG_URL)


@functools.cache
def _unavailable_reason(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        where = urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()
        return f"no PostgreSQL server answers at CSRM_TEST_PG_URL ({where}): {str(exc).strip().splitlines()[0]}"
    return None


def require_postgres() -> str:
    """Return the server URL, or skip the calling test when no server answers there."""
    url = pg_url()
    reason = _unavailable_reason(url)
    if reason is not None:
        pytest.skip(reason)
    return url


def store_url(url: str, schema: str) -> str:
    """`url` with `schema=NAME` added to its query."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@contextlib.contextmanager
def temporary_schema(url: str) -> Iterator[str]:
    """A fresh schema name (not created: the store creates it); the schema is dropped on exit."""
    name = f"csrm_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.asynccontextmanager
async def postgres_backend(tmp_path: Path, **options: Any) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """The `postgres` entry of the store contract suite: an opener of stores sharing one temporary schema."""
    url = require_postgres()
    with temporary_schema(url) as schema:

        async def open_() -> PostgresPolicyStore:
            return PostgresPolicyStore(store_url(url, schema), **{**FAST, **options})

        yield open_
