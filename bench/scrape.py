"""Read the service's own batching figures from its Prometheus ``/metrics`` endpoint.

A run takes one snapshot before and one after; the difference gives the batches of that run alone: mean
batch size, mean padded tokens per batch, mean padding ratio (``(padded - real) / padded`` per batch), items
scored and requests rejected as overloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["BatchFigures", "MetricsSnapshot", "batch_figures", "scrape"]

MetricsSnapshot = dict[str, float]
"""Sample name (with its labels, e.g. ``csrm_request_failures_total{reason=overloaded}``) -> value."""

_WANTED = (
    "csrm_batch_size_sum", "csrm_batch_size_count", "csrm_batch_tokens_sum", "csrm_batch_padding_ratio_sum",
    "csrm_batch_padding_ratio_count", "csrm_items_total", "csrm_request_failures_total",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchFigures:
    """The service's batching during one run."""

    batches: int
    mean_batch_size: float
    mean_batch_tokens: float
    mean_padding_ratio: float
    items_scored: int
    overloaded: int

    def summary(self) -> dict[str, Any]:
        """Rounded figures for the report."""
        return {
            "batches": self.batches,
            "mean_batch_size": round(self.mean_batch_size, 2),
            "mean_batch_tokens": round(self.mean_batch_tokens, 1),
            "mean_padding_ratio": round(self.mean_padding_ratio, 4),
            "items_scored": self.items_scored,
            "overloaded": self.overloaded,
        }


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> MetricsSnapshot:
    """The wanted samples of the endpoint's current exposition; ``{}`` when it is absent or not Prometheus."""
    try:
        response = await client.get(path)
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:
        return {}
    return parse(response.text)


def parse(text: str) -> MetricsSnapshot:
    """The wanted samples of a Prometheus text exposition."""
    snapshot: MetricsSnapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                snapshot[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return snapshot


def batch_figures(before: MetricsSnapshot, after: MetricsSnapshot) -> BatchFigures | None:
    """The batching between two snapshots; ``None`` when the server exports no batch metrics."""
    if "csrm_batch_size_count" not in after:
        return None

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("csrm_batch_size_count")
    ratio_count = delta("csrm_batch_padding_ratio_count")
    return BatchFigures(
        batches=int(batches),
        mean_batch_size=delta("csrm_batch_size_sum") / batches if batches else 0.0,
        mean_batch_tokens=delta("csrm_batch_tokens_sum") / batches if batches else 0.0,
        mean_padding_ratio=delta("csrm_batch_padding_ratio_sum") / ratio_count if ratio_count else 0.0,
        items_scored=int(delta("csrm_items_total")),
        overloaded=int(delta("csrm_request_failures_total{reason=overloaded}")),
    )
