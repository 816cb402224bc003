"""`ChangeListener`: the PostgreSQL store's push channel (LISTEN/NOTIFY), with a polled fallback.

Part of the postgres backend (`policies/store/postgres.py` owns it); nothing outside the backend imports this.

The listener holds its own connection with `LISTEN <channel>` and calls every subscribed callback with the policy
id of each notification. Every `poll_interval` seconds it also reads the store's change counter on that
connection: the read proves the connection alive and, if the counter moved while no notification arrived, the
callbacks get `None` ("anything may have changed"). On a lost connection it reconnects with capped exponential
backoff; once back it calls the callbacks with `None`, so caches catch up on what they missed. A change committed
between the store's open and the first LISTEN is announced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

__all__ = ["BACKOFF_MAX_S", "ChangeCallback", "ChangeListener", "read_change_seq"]

logger = logging.getLogger(__name__)

BACKOFF_MAX_S = 2.0
"""The listener retries at most this far apart, so caches catch up within about this delay after an outage."""

ChangeCallback = Callable[[str | None], Awaitable[None] | None]
"""Called with a policy id after a change to it, or with None when anything may have changed."""


async def read_change_seq(conn: psycopg.AsyncConnection[TupleRow]) -> int:
    """The store-wide change counter (`store_state.change_seq`, on the connection's search path)."""
    cur = await conn.execute("SELECT change_seq FROM store_state")
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


class ChangeListener:
    """Delivers change notifications to subscribers; see the module docstring.

    Args:
        connect: Opens a new autocommit connection whose search path holds the store's tables.
        channel: The NOTIFY channel (a plain identifier).
        name: Shown in log lines (the store's schema).
        on_seq: Called with every change counter value read; returns it (the store tracks the highest).
        timeout: Seconds the LISTEN and the first read may take after connecting.
        ping_timeout: Seconds a poll read may take (plus one) before the connection counts as lost.
        poll_interval: Seconds between polls.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[TupleRow]]],
        channel: str,
        *,
        name: str,
        on_seq: Callable[[int], int],
        timeout: float,
        ping_timeout: float,
        poll_interval: float,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._name = name
        self._on_seq = on_seq
        self._timeout = timeout
        self._ping_timeout = ping_timeout
        self._poll_interval = poll_interval
        self._callbacks: list[ChangeCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._announced = 0
        self.listening = False
        """True while the connection is up and LISTENing."""
        self.lost = False
        """True from a lost connection until the listener is back (an outage, as far as it can tell)."""

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Add a callback (sync or async; its errors are logged and ignored); returns its remover."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def start(self, baseline: int) -> None:
        """Start listening. `baseline`: the change counter when the store opened (later changes get announced)."""
        if self._task is None:
            self._announced = baseline
            self._task = asyncio.create_task(self._run(), name=f"csrm-listen-{self._name}")

    async def stop(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                if not self.lost:
                    logger.warning("policy store %s: change listener lost: %s", self._name, exc)
                self.lost = True
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX_S)
            else:  # pragma: no cover - _listen only ends by raising
                delay = 0.5

    async def _listen(self) -> None:
        """Connect, LISTEN, then dispatch notifications and poll; ends only by raising (connection lost)."""
        async with asyncio.timeout(self._timeout * 2):
            conn = await self._connect()
        try:
            async with asyncio.timeout(self._timeout):
                await conn.execute(f"LISTEN {self._channel}")
                current = self._on_seq(await read_change_seq(conn))
            self.listening = True
            if self.lost:
                logger.info("policy store %s: change listener reconnected; invalidating caches", self._name)
                self.lost = False
                await self._announce(current)
            elif current != self._announced:  # committed before the LISTEN took effect
                await self._announce(current)
            while True:
                notified = False
                async for notify in conn.notifies(timeout=self._poll_interval):
                    notified = True
                    await self._dispatch(notify.payload or None)
                async with asyncio.timeout(self._ping_timeout + 1.0):
                    current = self._on_seq(await read_change_seq(conn))
                if current != self._announced and not notified:
                    await self._announce(current)
                self._announced = current
        finally:
            self.listening = False
            with contextlib.suppress(Exception):
                await conn.close()

    async def _announce(self, seq: int) -> None:
        """Tell every subscriber that anything may have changed, up to change counter `seq`."""
        self._announced = seq
        await self._dispatch(None)

    async def _dispatch(self, policy_id: str | None) -> None:
        for callback in list(self._callbacks):
            try:
                result = callback(policy_id)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("policy store %s: change callback %r failed", self._name, callback)
