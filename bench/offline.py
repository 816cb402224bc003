"""The engine offline: the same items scored in a loop, no HTTP, at a sweep of batch sizes — the hardware limit.

Items are tokenized once (timed) and then scored in length-sorted batches of each size (timed, best of
``reps`` passes), so the figure is ``items / (tokenize + forward)`` with the least padding any batcher could
reach. The same pass in arrival order at the best size is reported too, to show what sorting buys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.scoring import CsrmModel
    from models.types import EncodedInput, ScoreInput

__all__ = ["OfflineResult", "offline_sweep", "padding_ratio"]


@dataclass
class OfflineResult:
    """Offline throughput of one workload.

    Attributes:
        workload: The workload name.
        items: Items scored per pass.
        mean_tokens: Mean real tokens per item.
        tokenize_s: Time to tokenize every item once.
        by_batch_size: items/s per batch size (length-sorted batches).
        best_batch_size: The batch size with the most items/s.
        unsorted_items_per_s: items/s at the best size in arrival order.
        padding_sorted: Padding ratio of the sorted batches at the best size; ``padding_unsorted`` likewise.
        batch_ms_p99: p99 of one forward's wall time at the best size (the latency floor of a full batch).
    """

    workload: str
    items: int
    mean_tokens: float
    tokenize_s: float
    by_batch_size: dict[int, float] = field(default_factory=dict)
    best_batch_size: int = 0
    unsorted_items_per_s: float = 0.0
    padding_sorted: float = 0.0
    padding_unsorted: float = 0.0
    batch_ms_p99: float = 0.0

    @property
    def items_per_s(self) -> float:
        """The best throughput of the sweep."""
        return self.by_batch_size.get(self.best_batch_size, 0.0)

    def summary(self) -> dict[str, Any]:
        """Rounded figures for the report."""
        return {
            "workload": self.workload,
            "items": self.items,
            "mean_tokens": round(self.mean_tokens, 1),
            "tokenize_s": round(self.tokenize_s, 3),
            "items_per_s": round(self.items_per_s, 2),
            "best_batch_size": self.best_batch_size,
            "by_batch_size": {str(k): round(v, 2) for k, v in self.by_batch_size.items()},
            "unsorted_items_per_s": round(self.unsorted_items_per_s, 2),
            "padding_ratio_sorted": round(self.padding_sorted, 4),
            "padding_ratio_unsorted": round(self.padding_unsorted, 4),
            "batch_ms_p99": round(self.batch_ms_p99, 1),
        }


def padding_ratio(batches: Sequence[Sequence[EncodedInput]]) -> float:
    """Padded share of all tokens: ``(padded - real) / padded`` summed over batches."""
    padded = sum(max(item.tokens for item in batch) * len(batch) for batch in batches if batch)
    real = sum(item.tokens for batch in batches for item in batch)
    return (padded - real) / padded if padded else 0.0


def _batches(encoded: Sequence[EncodedInput], size: int, *, sort: bool) -> list[list[EncodedInput]]:
    items = sorted(encoded, key=lambda e: e.tokens) if sort else list(encoded)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _timed_pass(model: CsrmModel, batches: Sequence[Sequence[EncodedInput]]) -> tuple[float, list[float]]:
    per_batch: list[float] = []
    for batch in batches:
        start = time.perf_counter()
        model.score_encoded(batch)
        per_batch.append(time.perf_counter() - start)
    return sum(per_batch), per_batch


def offline_sweep(
    model: CsrmModel,
    workload: str,
    inputs: Sequence[ScoreInput],
    batch_sizes: Sequence[int],
    *,
    reps: int = 2,
    max_seconds: float = 120.0,
) -> OfflineResult:
    """Score ``inputs`` at each batch size; bounded by ``reps`` passes per size and ``max_seconds`` in all."""
    from bench.loadgen import percentile  # noqa: PLC0415

    start = time.perf_counter()
    encoded = [model.encode(item) for item in inputs]
    tokenize_s = time.perf_counter() - start
    result = OfflineResult(
        workload, len(encoded), sum(e.tokens for e in encoded) / max(len(encoded), 1), tokenize_s
    )
    model.score_encoded(encoded[: min(batch_sizes)])  # warm-up
    deadline = time.perf_counter() + max_seconds
    per_batch_at: dict[int, list[float]] = {}
    for size in batch_sizes:
        best = float("inf")
        for _ in range(reps):
            if time.perf_counter() > deadline and best < float("inf"):
                break
            total, per_batch = _timed_pass(model, _batches(encoded, size, sort=True))
            if total < best:
                best, per_batch_at[size] = total, per_batch
        result.by_batch_size[size] = len(encoded) / (tokenize_s + best)
    result.best_batch_size = max(result.by_batch_size, key=lambda s: result.by_batch_size[s])
    size = result.best_batch_size
    unsorted_total, _ = _timed_pass(model, _batches(encoded, size, sort=False))
    result.unsorted_items_per_s = len(encoded) / (tokenize_s + unsorted_total)
    result.padding_sorted = padding_ratio(_batches(encoded, size, sort=True))
    result.padding_unsorted = padding_ratio(_batches(encoded, size, sort=False))
    result.batch_ms_p99 = percentile([t * 1000 for t in per_batch_at[size]], 99)
    return result
