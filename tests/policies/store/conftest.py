"""Store fixtures: one contract suite runs against every backend named in `STORE_BACKENDS`.

To add a backend (e.g. postgres), add an entry mapping its name to an async context manager factory that takes
pytest's `tmp_path` and yields an *opener*: a zero-argument coroutine function returning a new, empty-at-first
store object on the same backing storage (so tests can open several clients on one store). Skip inside the
factory (`pytest.skip`) when the backend is unreachable. Every opened store is closed by the fixture.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from policies.store.base import PolicyStore
from policies.store.file import FilePolicyStore
from policies.store.memory import InMemoryPolicyStore
from tests.pgtools import postgres_backend

Opener = Callable[[], Awaitable[PolicyStore]]


@contextlib.asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[Opener]:
    shared = InMemoryPolicyStore()

    async def open_() -> PolicyStore:
        return shared  # one process-local store: every "client" is the same object

    yield open_


@contextlib.asynccontextmanager
async def _file(tmp_path: Path) -> AsyncIterator[Opener]:
    async def open_() -> PolicyStore:
        return FilePolicyStore(tmp_path / "store")

    yield open_


STORE_BACKENDS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[Opener]]] = {
    "memory": _memory,
    "file": _file,
    "postgres": postgres_backend,  # skips when no server answers at CSRM_TEST_PG_URL
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """An opener for the backend named by the parameter; stores it opened are closed afterwards."""
    opened: list[PolicyStore] = []
    async with STORE_BACKENDS[request.param](tmp_path) as opener:

        async def tracked() -> PolicyStore:
            store = await opener()
            opened.append(store)
            return store

        yield tracked
        for store in opened:
            await store.close()


@pytest.fixture
async def store(store_factory: Opener) -> PolicyStore:
    """A fresh, empty store of each backend."""
    return await store_factory()
