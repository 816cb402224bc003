"""DynamicBatcher and take_batch, against FakeEngine: no model, no HTTP, no timing assertions.

Tests that need items to pile up hold the engine on a gate (`FakeEngine(gate=...)`): the first batch enters the
engine and blocks there, the next submissions queue behind it, and the test opens the gate when it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from models.types import EncodedInput, Message, ScoreInput
from service.batcher import BatcherConfig, DynamicBatcher, Lane, ScoredItem, padded_tokens, take_batch
from service.errors import DeadlineExceeded, InferenceFailed, Overloaded, ShuttingDown
from service.metrics import Metrics
from tests.fakes import FakeEngine, FakeEngineError, encoded, hash_reward

# -- take_batch (pure) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    name: str
    tokens: int
    lane: Lane = "interactive"


def names(batch: list[Item]) -> list[str]:
    return [item.name for item in batch]


class TestTakeBatch:
    def test_empty(self) -> None:
        assert take_batch([], max_items=4, max_tokens=100) == []

    def test_interactive_lane_before_bulk(self) -> None:
        pending = [Item("b1", 5, "bulk"), Item("i1", 5), Item("b2", 5, "bulk"), Item("i2", 5)]
        assert names(take_batch(pending, max_items=3, max_tokens=100)) == ["i1", "i2", "b1"]

    def test_item_bound_takes_oldest_first(self) -> None:
        pending = [Item(f"x{i}", 5) for i in range(10)]
        assert names(take_batch(pending, max_items=4, max_tokens=1000)) == ["x0", "x1", "x2", "x3"]

    def test_token_bound(self) -> None:
        pending = [Item(f"x{i}", 10) for i in range(5)]
        assert names(take_batch(pending, max_items=10, max_tokens=35)) == ["x0", "x1", "x2"]

    def test_tokens_are_counted_padded(self) -> None:
        # Real tokens 2 + 2 + 30 = 34 fit in 60, but padded to the longest item the batch would cost 3 x 30 = 90.
        pending = [Item("a", 2), Item("b", 2), Item("long", 30)]
        batch = take_batch(pending, max_items=10, max_tokens=60)
        assert names(batch) == ["a", "b"]
        assert padded_tokens(batch) == 4

    def test_batch_is_length_sorted_and_stable(self) -> None:
        pending = [Item("five", 5), Item("one", 1), Item("three", 3), Item("one-bis", 1)]
        assert names(take_batch(pending, max_items=10, max_tokens=1000)) == ["one", "one-bis", "three", "five"]

    def test_oversize_first_item_is_taken_alone(self) -> None:
        pending = [Item("huge", 100), Item("small", 1)]
        assert names(take_batch(pending, max_items=10, max_tokens=50)) == ["huge"]

    def test_later_items_do_not_overtake_a_misfit(self) -> None:
        pending = [Item("a", 2), Item("long", 100), Item("b", 2)]
        assert names(take_batch(pending, max_items=10, max_tokens=50)) == ["a"]

    def test_padded_tokens(self) -> None:
        assert padded_tokens([Item("a", 3), Item("b", 7)]) == 14
        assert padded_tokens([]) == 0


# -- helpers ----------------------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave an engine thread blocked


@contextlib.asynccontextmanager
async def running(engine: FakeEngine, metrics: Metrics, **config: Any) -> AsyncIterator[DynamicBatcher]:
    batcher = DynamicBatcher(engine, BatcherConfig(**config), metrics)
    await batcher.start()
    try:
        yield batcher
    finally:
        await batcher.stop(drain=False)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition` holds (a synchronisation point, not a timing assertion)."""
    give_up = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting until {what}"
        await asyncio.sleep(0.001)


async def engine_entered(engine: FakeEngine) -> None:
    assert await asyncio.to_thread(engine.entered.wait, 10), "the engine was never called"


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def failures(registry: CollectorRegistry, reason: str) -> float:
    return sample(registry, "csrm_request_failures_total", reason=reason)


def tags(items: list[EncodedInput]) -> list[int]:
    return [item.input_ids[0] for item in items]


async def occupy_engine(batcher: DynamicBatcher, engine: FakeEngine) -> asyncio.Task[ScoredItem]:
    """Submit one item (tag 0) and return once the engine is blocked on it (behind a closed gate)."""
    task = asyncio.create_task(batcher.submit(encoded(1, tag=0)))
    await engine_entered(engine)
    return task


# -- batching ---------------------------------------------------------------------------------------------------


async def test_concurrent_submits_are_batched(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry
) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics, max_wait_ms=1) as batcher:
        first = await occupy_engine(batcher, engine)
        items = [encoded(3 + i, tag=10 + i) for i in range(4)]
        tasks = [asyncio.create_task(batcher.submit(item)) for item in items]
        await wait_until(lambda: batcher.queued_items == 4, "4 items are queued")
        gate.set()
        results = await asyncio.gather(*tasks)
        await first

    assert [len(batch) for batch in engine.batches] == [1, 4]
    assert [r.score.reward for r in results] == [hash_reward(item) for item in items]
    assert all(r.batch_size == 4 and r.queue_s >= 0 and r.inference_s >= 0 for r in results)
    assert sample(registry, "csrm_batch_size_count") == 2
    assert sample(registry, "csrm_batch_size_bucket", le="1.0") == 1  # so one observation is above 1
    assert sample(registry, "csrm_batch_size_sum") == 5
    assert sample(registry, "csrm_items_total") == 5


async def test_full_batch_starts_without_waiting(metrics: Metrics) -> None:
    engine = FakeEngine()
    async with running(engine, metrics, max_wait_ms=600_000, max_batch_items=3) as batcher:
        async with asyncio.timeout(10):
            results = await batcher.submit_many([encoded(2, tag=i) for i in range(3)])
    assert len(results) == 3
    assert [len(batch) for batch in engine.batches] == [3]


async def test_token_full_batch_starts_without_waiting(metrics: Metrics) -> None:
    engine = FakeEngine()
    async with running(engine, metrics, max_wait_ms=600_000, max_batch_tokens=10) as batcher:
        async with asyncio.timeout(10):
            results = await batcher.submit_many([encoded(5, tag=1), encoded(5, tag=2)])
    assert len(results) == 2


async def test_results_come_back_in_request_order(metrics: Metrics) -> None:
    engine = FakeEngine()
    items = [encoded(n, tag=n) for n in (7, 2, 9, 1, 4)]
    async with running(engine, metrics) as batcher:
        results = await batcher.submit_many(items, lane="bulk")
    assert [r.score.tokens for r in results] == [7, 2, 9, 1, 4]
    assert [r.score.reward for r in results] == [hash_reward(item) for item in items]
    assert tags(engine.batches[0]) == [1, 2, 4, 7, 9]  # the engine saw them length-sorted


async def test_interactive_served_before_bulk(gate: threading.Event, metrics: Metrics) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics, max_batch_items=2) as batcher:
        first = await occupy_engine(batcher, engine)
        bulk = asyncio.create_task(batcher.submit_many([encoded(2, 21), encoded(2, 22)], lane="bulk"))
        await wait_until(lambda: batcher.queued_items == 2, "bulk is queued")
        interactive = asyncio.create_task(batcher.submit_many([encoded(2, 11), encoded(2, 12)]))
        await wait_until(lambda: batcher.queued_items == 4, "interactive is queued")
        gate.set()
        await asyncio.gather(first, bulk, interactive)
    assert [tags(batch) for batch in engine.batches] == [[0], [11, 12], [21, 22]]


# -- the queue bound --------------------------------------------------------------------------------------------


async def test_full_queue_is_overloaded_and_admission_is_all_or_nothing(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry
) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics, max_queue_items=3) as batcher:
        first = await occupy_engine(batcher, engine)
        queued = asyncio.create_task(batcher.submit_many([encoded(2, 1), encoded(2, 2)]))
        await wait_until(lambda: batcher.queued_items == 2, "two items are queued")

        with pytest.raises(Overloaded) as refused:
            await batcher.submit_many([encoded(2, 31), encoded(2, 32)])
        assert refused.value.retry_after_s > 0
        assert batcher.queued_items == 2  # nothing of the refused request was queued
        assert failures(registry, "overloaded") == 1

        fits = asyncio.create_task(batcher.submit(encoded(2, 4)))
        await wait_until(lambda: batcher.queued_items == 3, "the item that fits is queued")
        gate.set()
        await asyncio.gather(first, queued, fits)
    assert 31 not in tags(engine.seen) and 32 not in tags(engine.seen)


async def test_queue_bound_in_tokens(gate: threading.Event, metrics: Metrics) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics, max_queue_tokens=20) as batcher:
        first = await occupy_engine(batcher, engine)
        queued = asyncio.create_task(batcher.submit(encoded(15, 1)))
        await wait_until(lambda: batcher.queued_tokens == 15, "15 tokens are queued")
        with pytest.raises(Overloaded):
            await batcher.submit_many([encoded(3, 2), encoded(3, 3)])
        assert batcher.queued_tokens == 15
        gate.set()
        await asyncio.gather(first, queued)


async def test_empty_queue_admits_a_request_larger_than_the_bound(metrics: Metrics) -> None:
    engine = FakeEngine()
    async with running(engine, metrics, max_queue_tokens=10, max_queue_items=2) as batcher:
        results = await batcher.submit_many([encoded(5, i) for i in range(3)], lane="bulk")
    assert len(results) == 3


async def test_retry_after_follows_measured_throughput(gate: threading.Event, metrics: Metrics) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics, max_queue_items=1) as batcher:
        gate.set()
        await batcher.submit(encoded(4, 1))  # measures the engine
        gate.clear()
        engine.entered.clear()
        first = await occupy_engine(batcher, engine)
        queued = asyncio.create_task(batcher.submit(encoded(4, 2)))
        await wait_until(lambda: batcher.queued_items == 1, "one item is queued")
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(encoded(4, 3))
        assert 0 < refused.value.retry_after_s <= 60
        gate.set()
        await asyncio.gather(first, queued)


# -- deadlines and cancellation ---------------------------------------------------------------------------------


async def test_expired_deadline_is_refused_before_queueing(metrics: Metrics, registry: CollectorRegistry) -> None:
    engine = FakeEngine()
    async with running(engine, metrics) as batcher:
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(encoded(2, 1), deadline=time.monotonic() - 1)
        assert batcher.queued_items == 0
    assert engine.batches == []
    assert failures(registry, "deadline") == 1


async def test_deadline_passing_in_the_queue_is_never_computed(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry
) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics) as batcher:
        first = await occupy_engine(batcher, engine)
        with pytest.raises(DeadlineExceeded):  # the engine is blocked, so this can only end by the deadline
            await batcher.submit(encoded(2, 7), deadline=time.monotonic() + 0.05)
        assert batcher.queued_items == 0
        gate.set()
        await first
        await batcher.submit(encoded(2, 8))
    assert tags(engine.seen) == [0, 8]
    assert failures(registry, "deadline") == 1


class ShiftedClock:
    """Stands in for the `time` module inside service.batcher; `shift` moves its monotonic clock forward."""

    def __init__(self) -> None:
        self.shift = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.shift

    def perf_counter(self) -> float:
        return time.perf_counter()


async def test_item_found_expired_when_forming_a_batch_is_never_computed(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ShiftedClock()
    monkeypatch.setattr("service.batcher.time", clock)
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics) as batcher:
        first = await occupy_engine(batcher, engine)
        # The caller's own timer is an hour away; only the check at batch forming can catch this item.
        late = asyncio.create_task(batcher.submit(encoded(2, 7), deadline=clock.monotonic() + 3600))
        await wait_until(lambda: batcher.queued_items == 1, "the item is queued")
        clock.shift = 7200
        gate.set()
        await first
        with pytest.raises(DeadlineExceeded, match="while queued"):
            await late
    assert tags(engine.seen) == [0]
    assert failures(registry, "deadline") == 1


async def test_deadline_passing_during_compute_answers_at_the_deadline(
    gate: threading.Event, metrics: Metrics
) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics) as batcher:
        late = asyncio.create_task(batcher.submit(encoded(2, 5), deadline=time.monotonic() + 0.5))
        await engine_entered(engine)  # the item is being computed (behind the closed gate)
        with pytest.raises(DeadlineExceeded):
            await late
        gate.set()
        await batcher.submit(encoded(2, 6))  # the loop survived the discarded result
    assert tags(engine.seen) == [5, 6]


async def test_cancelled_request_is_dropped_before_compute(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry
) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics) as batcher:
        first = await occupy_engine(batcher, engine)
        gone = asyncio.create_task(batcher.submit_many([encoded(2, 7), encoded(3, 8)]))
        await wait_until(lambda: batcher.queued_items == 2, "the request is queued")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert batcher.queued_items == 0 and batcher.queued_tokens == 0
        gate.set()
        await first
        await batcher.submit(encoded(2, 9))
    assert tags(engine.seen) == [0, 9]
    assert failures(registry, "dropped") == 1
    assert sample(registry, "csrm_queue_size", lane="interactive") == 0


# -- engine failures --------------------------------------------------------------------------------------------


async def test_engine_exception_fails_only_its_batch(
    gate: threading.Event, metrics: Metrics, registry: CollectorRegistry
) -> None:
    engine = FakeEngine(gate=gate, fail_on_calls={1})
    async with running(engine, metrics) as batcher:
        first = await occupy_engine(batcher, engine)
        doomed = [asyncio.create_task(batcher.submit(encoded(2, tag))) for tag in (1, 2)]
        await wait_until(lambda: batcher.queued_items == 2, "two items are queued")
        gate.set()
        outcomes = await asyncio.gather(first, *doomed, return_exceptions=True)
        after = await batcher.submit(encoded(2, 3))

    assert isinstance(outcomes[0], ScoredItem)
    for outcome in outcomes[1:]:
        assert isinstance(outcome, InferenceFailed)
        assert isinstance(outcome.__cause__, FakeEngineError)
    assert outcomes[1] is not outcomes[2]  # each caller gets its own exception
    assert after.score.reward == hash_reward(encoded(2, 3))
    assert [len(batch) for batch in engine.batches] == [1, 2, 1]
    assert failures(registry, "inference") == 2


async def test_wrong_number_of_scores_fails_the_whole_batch(metrics: Metrics, registry: CollectorRegistry) -> None:
    engine = FakeEngine(short_on_calls={0})
    async with running(engine, metrics) as batcher:
        with pytest.raises(InferenceFailed, match="1 scores for a batch of 2"):
            await batcher.submit_many([encoded(2, 1), encoded(2, 2)])
        await batcher.submit(encoded(2, 3))
    assert [len(batch) for batch in engine.batches] == [2, 1]
    assert failures(registry, "inference") == 1
    assert sample(registry, "csrm_batch_size_count") == 1  # the failed batch is not recorded as scored


# -- lifecycle --------------------------------------------------------------------------------------------------


async def test_stop_without_drain_fails_everything_pending(gate: threading.Event, metrics: Metrics) -> None:
    engine = FakeEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatcherConfig(), metrics)
    await batcher.start()
    in_engine = await occupy_engine(batcher, engine)
    queued = asyncio.create_task(batcher.submit_many([encoded(2, 1), encoded(2, 2)]))
    await wait_until(lambda: batcher.queued_items == 2, "two items are queued")

    await batcher.stop(drain=False)

    outcomes = await asyncio.gather(in_engine, queued, return_exceptions=True)
    assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes)
    assert batcher.queued_items == 0 and not batcher.running
    with pytest.raises(ShuttingDown):
        await batcher.submit(encoded(2, 3))


async def test_stop_drains_the_queue(gate: threading.Event, metrics: Metrics) -> None:
    engine = FakeEngine(gate=gate)
    batcher = DynamicBatcher(engine, BatcherConfig(), metrics)
    await batcher.start()
    first = await occupy_engine(batcher, engine)
    queued = asyncio.create_task(batcher.submit_many([encoded(2, 1), encoded(2, 2)]))
    await wait_until(lambda: batcher.queued_items == 2, "two items are queued")

    stopping = asyncio.create_task(batcher.stop())
    await wait_until(lambda: not batcher.running, "the batcher stops accepting")
    with pytest.raises(ShuttingDown):
        await batcher.submit(encoded(2, 3))
    gate.set()
    await stopping

    assert isinstance(await first, ScoredItem)
    assert len(await queued) == 2


async def test_start_twice_is_refused(metrics: Metrics) -> None:
    async with running(FakeEngine(), metrics) as batcher:
        with pytest.raises(RuntimeError):
            await batcher.start()


async def test_unknown_lane_is_refused(metrics: Metrics) -> None:
    async with running(FakeEngine(), metrics) as batcher:
        with pytest.raises(ValueError, match="lane"):
            await batcher.submit(encoded(2), lane="urgent")  # type: ignore[arg-type]


async def test_empty_request_returns_nothing(metrics: Metrics) -> None:
    async with running(FakeEngine(), metrics) as batcher:
        assert await batcher.submit_many([]) == []


# -- tokenizer pool, warm-up, gauges ----------------------------------------------------------------------------


async def test_encode_runs_on_the_pool_in_order(metrics: Metrics) -> None:
    engine = FakeEngine()
    items = [
        ScoreInput(policy_text="be safe", messages=(Message("user", "q " * n), Message("assistant", "a")))
        for n in range(1, 6)
    ]
    async with running(engine, metrics, tokenizer_threads=2) as batcher:
        assert await batcher.encode(items) == [engine.encode(item) for item in items]
        assert await batcher.encode([]) == []


async def test_warm_up_scores_one_small_batch(metrics: Metrics) -> None:
    engine = FakeEngine()
    async with running(engine, metrics) as batcher:
        scores = await batcher.warm_up()
    assert len(scores) == 2 and [len(batch) for batch in engine.batches] == [2]


async def test_queue_gauges(gate: threading.Event, metrics: Metrics, registry: CollectorRegistry) -> None:
    engine = FakeEngine(gate=gate)
    async with running(engine, metrics) as batcher:
        first = await occupy_engine(batcher, engine)
        queued = asyncio.create_task(batcher.submit_many([encoded(3, 1), encoded(4, 2)], lane="bulk"))
        await wait_until(lambda: batcher.queued_items == 2, "two items are queued")
        assert sample(registry, "csrm_queue_size", lane="bulk") == 2
        assert sample(registry, "csrm_queue_size", lane="interactive") == 0
        assert sample(registry, "csrm_queue_tokens") == 7
        gate.set()
        await asyncio.gather(first, queued)
    assert sample(registry, "csrm_queue_size", lane="bulk") == 0
    assert sample(registry, "csrm_queue_tokens") == 0


@pytest.mark.parametrize(
    "field", ["max_batch_tokens", "max_batch_items", "max_queue_tokens", "max_queue_items", "tokenizer_threads"]
)
def test_config_rejects_non_positive_bounds(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BatcherConfig(**{field: 0})
