"""The dynamic batcher: a bounded two-lane queue in front of one engine thread.

Callers tokenize with `DynamicBatcher.encode` (tokenizer thread pool) and then `submit_many` one request's items,
which are admitted all or nothing against the queue bound and awaited. A single loop task forms batches with the
pure function `take_batch` and runs `Engine.score` on a dedicated one-thread executor, so the event loop never blocks
on the model. A batch starts as soon as it is full (`max_batch_items` items or `max_batch_tokens` queued tokens) or
the oldest queued item has waited `max_wait_ms`, whichever comes first; only one batch runs at a time, and items
queue up behind it.

Failure rules, per item:

- queue full at admission -> `Overloaded(retry_after_s)`; nothing of the request is queued;
- deadline passed before compute -> `DeadlineExceeded`, never sent to the engine; deadline passed during compute
  -> `DeadlineExceeded` at the deadline, the result is discarded;
- caller cancelled (client went away) -> its queued items are removed before compute and counted as ``dropped``;
- `Engine.score` raised, or returned a different number of scores than items -> `InferenceFailed` for that batch's
  items only; the loop keeps serving;
- `stop()` -> whatever is still queued fails with `ShuttingDown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, get_args

from models.types import EncodedInput, ItemScore, ScoreInput
from service.engine import Engine, warm_up
from service.errors import (
    DeadlineExceeded,
    InferenceFailed,
    Overloaded,
    RequestCancelled,
    ServiceError,
    ShuttingDown,
)
from service.metrics import Metrics

__all__ = [
    "LANES",
    "Batchable",
    "BatcherConfig",
    "DynamicBatcher",
    "Lane",
    "ScoredItem",
    "padded_tokens",
    "take_batch",
]

logger = logging.getLogger(__name__)

Lane = Literal["interactive", "bulk"]
LANES: tuple[Lane, ...] = get_args(Lane)
"""Lanes in priority order: every queued interactive item is batched before any bulk item."""

_RETRY_AFTER_UNMEASURED_S = 1.0  # Retry-After before the first batch has measured the engine's throughput
_RETRY_AFTER_MIN_S = 0.05
_RETRY_AFTER_MAX_S = 60.0
_THROUGHPUT_EWMA_ALPHA = 0.3


@dataclass(frozen=True, slots=True)
class BatcherConfig:
    """Batcher knobs; `service.settings.BatcherSettings` maps onto these fields one to one.

    Attributes:
        max_batch_tokens: Padded tokens per engine batch (longest item x items). A single item longer than this
            still runs, alone. Default 16384.
        max_batch_items: Items per engine batch. Default 64.
        max_wait_ms: How long the oldest queued item may wait for a batch to fill before the batch runs anyway.
            Default 5.0.
        max_queue_tokens: Real tokens queued (all lanes) before requests are refused with `Overloaded`.
            Default 1048576.
        max_queue_items: Items queued (all lanes) before requests are refused with `Overloaded`. Default 4096.
        tokenizer_threads: Threads of the tokenizer pool used by `DynamicBatcher.encode`. Default 2.
        drain_timeout_s: How long `stop(drain=True)` waits for queued items to be scored. Default 10.0.
    """

    max_batch_tokens: int = 16384
    max_batch_items: int = 64
    max_wait_ms: float = 5.0
    max_queue_tokens: int = 1_048_576
    max_queue_items: int = 4096
    tokenizer_threads: int = 2
    drain_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_items", "max_queue_tokens", "max_queue_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatcherConfig.{name} must be >= 1")
        if self.tokenizer_threads < 1:
            raise ValueError("BatcherConfig.tokenizer_threads must be >= 1")
        if self.max_wait_ms < 0 or self.drain_timeout_s < 0:
            raise ValueError("BatcherConfig.max_wait_ms and drain_timeout_s must be >= 0")


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """One item's score and where it spent its time (for the x-queue-time / x-inference-time headers).

    Attributes:
        score: What the engine returned for the item.
        queue_s: Seconds from admission until its batch was sent to the engine.
        inference_s: Seconds the engine spent on its batch (shared by the batch's items).
        batch_size: Items in its batch.
    """

    score: ItemScore
    queue_s: float
    inference_s: float
    batch_size: int


class Batchable(Protocol):
    """What `take_batch` needs to know about a queued item."""

    @property
    def lane(self) -> Lane: ...

    @property
    def tokens(self) -> int: ...


_B = TypeVar("_B", bound=Batchable)


def padded_tokens(batch: Sequence[Batchable]) -> int:
    """The tokens a batch costs once padded to its longest item: ``max(tokens) * len(batch)``."""
    return max((item.tokens for item in batch), default=0) * len(batch)


def take_batch(pending: Iterable[_B], max_items: int, max_tokens: int) -> list[_B]:
    """Choose the next batch from the queued items.

    Items are considered interactive lane first, then bulk, each in arrival order, and taken while the batch
    stays within `max_items` and within `max_tokens` *padded* tokens (see `padded_tokens`). Taking stops at the
    first item that does not fit, so no item is overtaken by a later one of its own lane. The first item is
    always taken, even if alone it exceeds `max_tokens`, so an oversize item cannot block the queue.

    Args:
        pending: Queued items, oldest first.
        max_items: Most items in the batch.
        max_tokens: Most padded tokens in the batch (unless the first item alone is larger).

    Returns:
        The batch, sorted by length (shortest first; ties keep their order), as the engine pads it.
    """
    batch: list[_B] = []
    longest = 0
    for item in sorted(pending, key=lambda p: LANES.index(p.lane)):
        if len(batch) >= max_items:
            break
        longest_with_item = max(longest, item.tokens)
        if batch and longest_with_item * (len(batch) + 1) > max_tokens:
            break
        batch.append(item)
        longest = longest_with_item
    batch.sort(key=lambda p: p.tokens)
    return batch


@dataclass(eq=False, slots=True)
class _Pending:
    """One queued item. `queued` is True while it sits in a lane and counts against the queue bound."""

    encoded: EncodedInput
    lane: Lane
    deadline: float | None
    enqueued_at: float
    future: asyncio.Future[ScoredItem]
    queued: bool = field(default=True)

    @property
    def tokens(self) -> int:
        return self.encoded.tokens


def _timed_score(engine: Engine, batch: list[EncodedInput]) -> tuple[list[ItemScore], float]:
    started = time.perf_counter()
    scores = engine.score(batch)
    return scores, time.perf_counter() - started


def _encode_all(engine: Engine, items: Sequence[ScoreInput]) -> list[EncodedInput]:
    return [engine.encode(item) for item in items]


class DynamicBatcher:
    """Queues encoded items in two lanes and scores them in batches on one engine thread.

    Deadlines are absolute times on the `time.monotonic()` clock (``time.monotonic() + timeout_s``).

    Args:
        engine: The engine; `encode` runs on the tokenizer pool, `score` on the engine thread only.
        config: Batch and queue bounds.
        metrics: Where queue, batch and failure metrics go.
    """

    def __init__(self, engine: Engine, config: BatcherConfig, metrics: Metrics) -> None:
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._lanes: dict[Lane, deque[_Pending]] = {lane: deque() for lane in LANES}
        self._queued_items = 0
        self._queued_tokens = 0
        self._wakeup = asyncio.Event()  # set on every admission and on stop
        self._idle = asyncio.Event()  # set when the loop finds the queue empty
        self._task: asyncio.Task[None] | None = None
        self._engine_pool: ThreadPoolExecutor | None = None
        self._tokenizer_pool: ThreadPoolExecutor | None = None
        self._accepting = False
        self._tokens_per_s: float | None = None
        self._items_per_s: float | None = None

    @property
    def engine(self) -> Engine:
        """The engine this batcher drives."""
        return self._engine

    @property
    def config(self) -> BatcherConfig:
        """The batch and queue bounds."""
        return self._config

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._accepting

    @property
    def queued_items(self) -> int:
        """Items waiting for a batch (not counting the batch being scored)."""
        return self._queued_items

    @property
    def queued_tokens(self) -> int:
        """Real tokens waiting for a batch."""
        return self._queued_tokens

    async def start(self) -> None:
        """Start the thread pools and the batching loop.

        Raises:
            RuntimeError: Already started.
        """
        if self._task is not None:
            raise RuntimeError("DynamicBatcher already started")
        self._engine_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csrm-engine")
        self._tokenizer_pool = ThreadPoolExecutor(
            max_workers=self._config.tokenizer_threads, thread_name_prefix="csrm-tokenizer"
        )
        self._accepting = True
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="csrm-batcher")

    async def stop(self, *, drain: bool = True) -> None:
        """Stop accepting, optionally let the queue drain, then fail whatever is left with `ShuttingDown`.

        Args:
            drain: Wait up to `BatcherConfig.drain_timeout_s` for queued items to be scored first.
        """
        if self._task is None:
            return
        self._accepting = False
        self._wakeup.set()
        if drain:
            try:
                await asyncio.wait_for(self._idle.wait(), self._config.drain_timeout_s)
            except TimeoutError:
                logger.warning("batcher drain timed out with %d items queued", self._queued_items)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._fail_queued(ShuttingDown, "the batcher stopped before the item was scored")
        for pool in (self._engine_pool, self._tokenizer_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._engine_pool = self._tokenizer_pool = None

    async def warm_up(self) -> list[ItemScore]:
        """Run `service.engine.warm_up` on the engine thread. Call after `start()`."""
        if not self._accepting:
            raise ShuttingDown("the batcher is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._require_pool(self._engine_pool), warm_up, self._engine)

    async def encode(self, items: Sequence[ScoreInput]) -> list[EncodedInput]:
        """Tokenize items on the tokenizer pool, in order.

        Raises:
            models.errors.ModelError: From `Engine.encode` (e.g. `InputTooLong`).
            ShuttingDown: The batcher is not running.
        """
        if not self._accepting:
            raise ShuttingDown("the batcher is not running")
        pool = self._require_pool(self._tokenizer_pool)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        size = math.ceil(len(items) / self._config.tokenizer_threads)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results = await asyncio.gather(*(loop.run_in_executor(pool, _encode_all, self._engine, c) for c in chunks))
        return [encoded for chunk in results for encoded in chunk]

    async def submit(
        self, encoded: EncodedInput, *, lane: Lane = "interactive", deadline: float | None = None
    ) -> ScoredItem:
        """Score one item; see `submit_many`."""
        return (await self.submit_many([encoded], lane=lane, deadline=deadline))[0]

    async def submit_many(
        self, encoded: Sequence[EncodedInput], *, lane: Lane = "interactive", deadline: float | None = None
    ) -> list[ScoredItem]:
        """Queue one request's items, all or nothing, and wait for their scores.

        If the queue is empty, a request is admitted even if it alone exceeds the queue bound (the HTTP layer
        limits the size of one request), so a large bulk request is delayed, never refused forever.

        Args:
            encoded: The request's items, already tokenized.
            lane: ``"interactive"`` (served first) or ``"bulk"``.
            deadline: Absolute `time.monotonic()` time after which the scores are no longer wanted.

        Returns:
            One `ScoredItem` per item, in order.

        Raises:
            Overloaded: The queue cannot take the whole request; nothing was queued.
            DeadlineExceeded: The deadline passed before every item was scored.
            InferenceFailed: The engine failed on a batch holding one of the items.
            RequestCancelled: One of the items' futures was cancelled by someone else.
            ShuttingDown: The batcher is stopped or stopped while the items were queued.
        """
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; expected one of {LANES}")
        if not encoded:
            return []
        items = self._admit(encoded, lane, deadline)
        try:
            return await self._wait(items, deadline)
        except asyncio.CancelledError:
            if self._withdraw(items):  # the caller went away: drop what was not computed yet
                self._metrics.record_failure("dropped")
            raise
        except (DeadlineExceeded, InferenceFailed, RequestCancelled, ShuttingDown) as exc:
            self._withdraw(items)
            self._record_request_failure(exc)
            raise

    def _record_request_failure(self, exc: Exception) -> None:
        if isinstance(exc, DeadlineExceeded):
            self._metrics.record_failure("deadline")
        elif isinstance(exc, InferenceFailed):
            self._metrics.record_failure("inference")
        elif isinstance(exc, RequestCancelled):
            self._metrics.record_failure("dropped")

    # -- admission -------------------------------------------------------------------------------------------

    def _admit(self, encoded: Sequence[EncodedInput], lane: Lane, deadline: float | None) -> list[_Pending]:
        """Check and queue a request's items atomically (no await in here)."""
        if not self._accepting:
            raise ShuttingDown("the batcher is not running")
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            self._metrics.record_failure("deadline")
            raise DeadlineExceeded("the request's deadline passed before it was queued")
        self._check_capacity(len(encoded), sum(e.tokens for e in encoded))
        loop = asyncio.get_running_loop()
        items = [_Pending(e, lane, deadline, now, loop.create_future()) for e in encoded]
        self._lanes[lane].extend(items)
        self._queued_items += len(items)
        self._queued_tokens += sum(p.tokens for p in items)
        self._publish_queue()
        self._idle.clear()
        self._wakeup.set()
        return items

    def _check_capacity(self, items: int, tokens: int) -> None:
        if self._queued_items == 0:
            return
        excess_items = self._queued_items + items - self._config.max_queue_items
        excess_tokens = self._queued_tokens + tokens - self._config.max_queue_tokens
        if excess_items <= 0 and excess_tokens <= 0:
            return
        self._metrics.record_failure("overloaded")
        raise Overloaded(
            f"queue full ({self._queued_items} items, {self._queued_tokens} tokens queued); "
            f"cannot take {items} items, {tokens} tokens",
            retry_after_s=self._retry_after(max(excess_items, 0), max(excess_tokens, 0)),
        )

    def _retry_after(self, excess_items: int, excess_tokens: int) -> float:
        """Seconds until the queue has drained the excess, at the engine's measured throughput."""
        if self._tokens_per_s is None or self._items_per_s is None:
            estimate = _RETRY_AFTER_UNMEASURED_S
        else:
            estimate = max(excess_tokens / self._tokens_per_s, excess_items / self._items_per_s)
        return min(max(estimate, _RETRY_AFTER_MIN_S), _RETRY_AFTER_MAX_S)

    async def _wait(self, items: list[_Pending], deadline: float | None) -> list[ScoredItem]:
        futures = [p.future for p in items]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, not_done = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
        # Retrieve every exception (so none is reported as "never retrieved") and raise the first one.
        errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
        for error in errors:
            if error is not None:
                raise error
        if any(f.cancelled() for f in futures):
            raise RequestCancelled("an item of the request was cancelled before it was scored")
        if not_done:
            raise DeadlineExceeded("the request's deadline passed before all its items were scored")
        return [f.result() for f in futures]

    def _withdraw(self, items: list[_Pending]) -> bool:
        """Remove a request's still-queued items and cancel its futures. Returns True if any were queued."""
        lanes = {p.lane for p in items if p.queued}
        for p in items:
            if p.queued:
                self._release(p)
            if not p.future.done():
                p.future.cancel()
        for lane in lanes:  # one O(queue) rebuild instead of a deque.remove per item
            self._lanes[lane] = deque(p for p in self._lanes[lane] if p.queued)
        if lanes:
            self._publish_queue()
        return bool(lanes)

    def _release(self, item: _Pending) -> None:
        item.queued = False
        self._queued_items -= 1
        self._queued_tokens -= item.tokens

    def _publish_queue(self) -> None:
        self._metrics.set_queue({lane: len(q) for lane, q in self._lanes.items()}, self._queued_tokens)

    def _fail_queued(self, error: type[ServiceError], message: str) -> None:
        for queue in self._lanes.values():
            items = list(queue)
            for item in items:
                self._release(item)
            queue.clear()
            self._fail_batch(items, error, message)
        self._publish_queue()

    # -- the batching loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wait_until_ready()
            batch: list[_Pending] = []
            try:
                batch = self._next_batch()
                if batch:
                    await self._execute(batch)
            except Exception as exc:  # a bug here must not stop the loop, nor leave callers waiting
                logger.exception("batcher loop error")
                self._fail_batch(batch, InferenceFailed, "internal batcher error", cause=exc)

    async def _wait_until_ready(self) -> None:
        """Return when a batch should start: it is full, the oldest item waited max_wait_ms, or we are stopping."""
        while True:
            if self._queued_items == 0:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._accepting or self._batch_full():
                return
            oldest = min(q[0].enqueued_at for q in self._lanes.values() if q)
            wait_s = oldest + self._config.max_wait_ms / 1000 - time.monotonic()
            if wait_s <= 0:
                return
            # Checking and clearing happen without an await in between, so no admission is missed.
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait_s)

    def _batch_full(self) -> bool:
        return (
            self._queued_items >= self._config.max_batch_items
            or self._queued_tokens >= self._config.max_batch_tokens
        )

    def _next_batch(self) -> list[_Pending]:
        """Pop candidates, let `take_batch` choose, and put the rest back at the head of their lanes."""
        candidates = self._pop_candidates()
        batch = take_batch(candidates, self._config.max_batch_items, self._config.max_batch_tokens)
        taken = {id(p) for p in batch}
        # take_batch stops at the first misfit, so the rest is a suffix of each lane's candidates: re-add in reverse.
        for item in reversed(candidates):
            if id(item) not in taken:
                item.queued = True
                self._queued_items += 1
                self._queued_tokens += item.tokens
                self._lanes[item.lane].appendleft(item)
        self._publish_queue()
        return batch

    def _pop_candidates(self) -> list[_Pending]:
        """Pop up to max_batch_items live items, interactive first; fail expired ones, skip answered ones."""
        out: list[_Pending] = []
        now = time.monotonic()
        for lane in LANES:
            queue = self._lanes[lane]
            while queue and len(out) < self._config.max_batch_items:
                item = queue.popleft()
                self._release(item)
                if item.future.done():  # withdrawn or cancelled: the caller is no longer waiting
                    continue
                if item.deadline is not None and item.deadline <= now:
                    item.future.set_exception(DeadlineExceeded("the deadline passed while queued; not scored"))
                    continue
                out.append(item)
        return out

    async def _execute(self, batch: list[_Pending]) -> None:
        """Score one batch on the engine thread and resolve its futures. Never raises but CancelledError."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        pool = self._require_pool(self._engine_pool)  # set from start() until the loop task has ended
        try:
            scores, inference_s = await loop.run_in_executor(
                pool, _timed_score, self._engine, [p.encoded for p in batch]
            )
        except asyncio.CancelledError:
            self._fail_batch(batch, ShuttingDown, "the batcher stopped while the item was being scored")
            raise
        except Exception as exc:
            logger.exception("engine failed on a batch of %d items", len(batch))
            self._fail_batch(batch, InferenceFailed, f"the engine failed on this batch: {exc!r}", cause=exc)
            return
        if len(scores) != len(batch):
            logger.error("engine returned %d scores for a batch of %d items", len(scores), len(batch))
            message = f"the engine returned {len(scores)} scores for a batch of {len(batch)} items"
            self._fail_batch(batch, InferenceFailed, message)
            return
        self._observe_batch(batch, inference_s)
        for item, score in zip(batch, scores, strict=True):
            if not item.future.done():
                item.future.set_result(ScoredItem(score, started - item.enqueued_at, inference_s, len(batch)))

    def _observe_batch(self, batch: list[_Pending], inference_s: float) -> None:
        real = sum(p.tokens for p in batch)
        self._metrics.record_batch(len(batch), real, padded_tokens(batch))
        seconds = max(inference_s, 1e-6)
        tps, ips = real / seconds, len(batch) / seconds
        if self._tokens_per_s is None or self._items_per_s is None:
            self._tokens_per_s, self._items_per_s = tps, ips
        else:
            a = _THROUGHPUT_EWMA_ALPHA
            self._tokens_per_s = a * tps + (1 - a) * self._tokens_per_s
            self._items_per_s = a * ips + (1 - a) * self._items_per_s

    @staticmethod
    def _fail_batch(
        batch: Iterable[_Pending], error: type[ServiceError], message: str, *, cause: BaseException | None = None
    ) -> None:
        """Fail every still-waiting item, each with its own exception (one instance per awaiting caller)."""
        for item in batch:
            if not item.future.done():
                exc = error(message)
                exc.__cause__ = cause
                item.future.set_exception(exc)

    def _require_pool(self, pool: ThreadPoolExecutor | None) -> ThreadPoolExecutor:
        if pool is None:
            raise ShuttingDown("the batcher is not running")
        return pool
