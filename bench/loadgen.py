"""Async HTTP load generator: closed loop (N concurrent clients) and open loop (a target request rate).

Every run is bounded twice, by a request count and by wall time, and talks to one base URL (loopback in the
bench). Latency is measured per request from send to the full response; throughput counts the items of
successful (200) requests over the time from the first send to the last completion. A 429 counts as a
rejection (the client waits the Retry-After, capped at 0.2 s, before it sends again); any other status or a
transport error counts as an error.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench.workloads import Workload

__all__ = ["LoadResult", "closed_loop", "open_loop", "percentile", "warm_up"]

_MAX_BACKOFF_S = 0.2
_REQUEST_TIMEOUT_S = 120.0


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LoadResult:
    """What one load run measured.

    Attributes:
        mode: ``closed`` or ``open``.
        workload: The workload name.
        concurrency: Clients in a closed loop (0 for open loop).
        target_rate: Requests per second asked for in an open loop (0 for closed loop).
        requests_ok: Requests answered 200.
        items_ok: Items in those requests.
        rejected: Requests answered 429.
        errors: Other failures (status or transport).
        duration_s: From the first send to the last completion.
        latencies_ms: Latency of each successful request.
    """

    mode: str
    workload: str
    concurrency: int = 0
    target_rate: float = 0.0
    requests_ok: int = 0
    items_ok: int = 0
    rejected: int = 0
    errors: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def items_per_s(self) -> float:
        """Items of successful requests per second."""
        return self.items_ok / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures for the report: counts, items/s, p50/p95/p99 in ms (no raw latencies)."""
        data = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        data["items_per_s"] = round(self.items_per_s, 2)
        for q in (50, 95, 99):
            data[f"p{q}_ms"] = round(percentile(self.latencies_ms, q), 1)
        data["duration_s"] = round(self.duration_s, 2)
        return data


class _Sender:
    """Sends workload requests and records the outcome into one LoadResult."""

    def __init__(self, client: httpx.AsyncClient, path: str, workload: Workload, result: LoadResult) -> None:
        self._client = client
        self._path = path
        self._workload = workload
        self._result = result
        self.last_done = 0.0

    async def send(self, index: int) -> float:
        """Send request ``index``; return the seconds to wait before the next one (Retry-After on 429)."""
        body = self._workload.body(index)
        start = time.perf_counter()
        try:
            response = await self._client.post(self._path, json=body)
        except httpx.HTTPError:
            self._result.errors += 1
            return _MAX_BACKOFF_S
        self.last_done = time.perf_counter()
        if response.status_code == 200:
            self._result.requests_ok += 1
            self._result.items_ok += len(body["items"])
            self._result.latencies_ms.append((self.last_done - start) * 1000.0)
            return 0.0
        if response.status_code == 429:
            self._result.rejected += 1
            return min(_retry_after(response), _MAX_BACKOFF_S)
        self._result.errors += 1
        return _MAX_BACKOFF_S


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


async def warm_up(client: httpx.AsyncClient, path: str, workload: Workload, *, requests: int = 2) -> None:
    """Send a few requests of the workload, untimed, so that lazy set-up happens before a timed run."""
    for index in range(requests):
        await client.post(path, json=workload.body(index))


async def closed_loop(
    client: httpx.AsyncClient,
    path: str,
    workload: Workload,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Run ``concurrency`` clients, each sending its next request as soon as the previous one is answered.

    Stops issuing requests after ``max_requests`` in total or ``max_seconds``, whichever comes first, and waits
    for those in flight.
    """
    result = LoadResult(mode="closed", workload=workload.name, concurrency=concurrency)
    sender = _Sender(client, path, workload, result)
    issued = 0
    start = time.perf_counter()
    deadline = start + max_seconds

    async def client_loop() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            index, issued = issued, issued + 1
            pause = await sender.send(index)
            if pause:
                await asyncio.sleep(pause)

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.duration_s = max(sender.last_done - start, 1e-9)
    return result


async def open_loop(
    client: httpx.AsyncClient,
    path: str,
    workload: Workload,
    *,
    rate: float,
    max_requests: int,
    max_seconds: float,
    max_in_flight: int = 512,
    seed: int = 0,
) -> LoadResult:
    """Send requests at ``rate`` per second (Poisson arrivals), whatever the server's speed.

    Stops after ``max_requests`` or ``max_seconds``. An arrival that finds ``max_in_flight`` requests still
    outstanding is not sent and counts as an error (the server fell too far behind), so memory stays bounded.
    """
    result = LoadResult(mode="open", workload=workload.name, target_rate=rate)
    sender = _Sender(client, path, workload, result)
    rng = random.Random(seed)
    tasks: set[asyncio.Task[float]] = set()
    start = time.perf_counter()
    next_at = start
    for index in range(max_requests):
        next_at += rng.expovariate(rate)
        if next_at - start > max_seconds:
            break
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        if len(tasks) >= max_in_flight:
            result.errors += 1
            continue
        task = asyncio.create_task(sender.send(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=_REQUEST_TIMEOUT_S)
    result.duration_s = max(sender.last_done - start, 1e-9)
    return result
