"""Prometheus metrics, registered on a `CollectorRegistry` passed in (no process-global state).

Series (names after TEI, see STYLE.md section 11):

- ``csrm_request_duration_seconds{endpoint}``: whole request, histogram.
- ``csrm_request_{tokenization,queue,inference}_duration_seconds``: per-stage request time, histograms.
- ``csrm_batch_size``, ``csrm_batch_tokens``: items per engine batch, and its *padded* tokens
  (longest item x items), histograms.
- ``csrm_batch_padding_ratio``: the padding share of a batch, ``(padded - real) / padded`` in ``[0, 1)``;
  0 means no padding at all.
- ``csrm_queue_size{lane}``, ``csrm_queue_tokens``: items queued per lane, real tokens queued (all lanes), gauges.
- ``csrm_request_failures_total{reason}``: failed requests by reason (`FailureReason`), counter.
- ``csrm_verdicts_total{policy_id,policy_version,verdict}``: scored items by verdict, counter.
- ``csrm_items_total``: items the engine scored, counter.

Who records what: the batcher records the batch and queue series, items, and the failures ``overloaded``,
``deadline``, ``dropped`` and ``inference`` (one per request). The HTTP layer records request timings
(`Metrics.record_request`), verdicts, and the failures ``validation``, ``unauthorized`` and ``store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FailureReason", "Metrics", "RequestTimings"]

FailureReason = Literal["validation", "unauthorized", "overloaded", "inference", "dropped", "store", "deadline"]

_LANES = ("interactive", "bulk")
_DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_SIZE_BUCKETS = tuple(float(2**k) for k in range(11))  # 1 .. 1024 items
_TOKEN_BUCKETS = tuple(float(2**k) for k in range(5, 19))  # 32 .. 262144 tokens
_RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class RequestTimings:
    """Where one request spent its time, in seconds.

    For a request with several items, `queue_s` and `inference_s` are those of its slowest item
    (see `DynamicBatcher.submit_many`).
    """

    total_s: float
    tokenization_s: float = 0.0
    queue_s: float = 0.0
    inference_s: float = 0.0

    def headers(self) -> dict[str, str]:
        """The timing response headers, in whole milliseconds (``x-total-time``, ``x-queue-time``, ...)."""
        return {
            "x-total-time": _ms(self.total_s),
            "x-tokenization-time": _ms(self.tokenization_s),
            "x-queue-time": _ms(self.queue_s),
            "x-inference-time": _ms(self.inference_s),
        }


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


class Metrics:
    """Every service metric, registered on `registry`.

    Args:
        registry: Where to register; `create_app` passes a fresh one, so every app (and test) starts at zero.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.request_duration = Histogram(
            "csrm_request_duration_seconds", "Request latency, end to end.", ["endpoint"],
            registry=registry, buckets=_DURATION_BUCKETS,
        )  # fmt: skip
        self.tokenization_duration = self._duration("tokenization", "Time spent tokenizing a request's items.")
        self.queue_duration = self._duration("queue", "Time a request's items waited in the batcher queue.")
        self.inference_duration = self._duration("inference", "Time the engine spent on a request's batch.")
        self.batch_size = Histogram(
            "csrm_batch_size", "Items per engine batch.", registry=registry, buckets=_SIZE_BUCKETS
        )
        self.batch_tokens = Histogram(
            "csrm_batch_tokens", "Padded tokens per engine batch (longest item x items).",
            registry=registry, buckets=_TOKEN_BUCKETS,
        )  # fmt: skip
        self.batch_padding_ratio = Histogram(
            "csrm_batch_padding_ratio", "Padding share of an engine batch: (padded - real) / padded.",
            registry=registry, buckets=_RATIO_BUCKETS,
        )  # fmt: skip
        self.queue_size = Gauge("csrm_queue_size", "Items queued, per lane.", ["lane"], registry=registry)
        self.queue_tokens = Gauge("csrm_queue_tokens", "Real tokens queued, all lanes.", registry=registry)
        self.failures = Counter(
            "csrm_request_failures", "Failed requests by reason.", ["reason"], registry=registry
        )
        self.verdicts = Counter(
            "csrm_verdicts", "Scored items by policy version and verdict.",
            ["policy_id", "policy_version", "verdict"], registry=registry,
        )  # fmt: skip
        self.items = Counter("csrm_items", "Items scored by the engine.", registry=registry)
        for lane in _LANES:
            self.queue_size.labels(lane=lane)
        for reason in get_args(FailureReason):
            self.failures.labels(reason=reason)

    def _duration(self, stage: str, doc: str) -> Histogram:
        return Histogram(
            f"csrm_request_{stage}_duration_seconds", doc, registry=self.registry, buckets=_DURATION_BUCKETS
        )

    def record_request(self, endpoint: str, timings: RequestTimings) -> None:
        """Record every per-stage timing of one finished request, once (TEI's ``record_metrics``)."""
        self.request_duration.labels(endpoint=endpoint).observe(timings.total_s)
        self.tokenization_duration.observe(timings.tokenization_s)
        self.queue_duration.observe(timings.queue_s)
        self.inference_duration.observe(timings.inference_s)

    def record_failure(self, reason: FailureReason) -> None:
        """Count one failed request."""
        self.failures.labels(reason=reason).inc()

    def record_verdict(self, policy_id: str, policy_version: int | str, verdict: str) -> None:
        """Count one scored item's verdict under a policy version (``""`` for inline policy text)."""
        self.verdicts.labels(policy_id=policy_id, policy_version=str(policy_version), verdict=verdict).inc()

    def record_batch(self, size: int, real_tokens: int, padded_tokens: int) -> None:
        """Record one engine batch: items, padded tokens and padding share; counts the items as scored."""
        self.batch_size.observe(size)
        self.batch_tokens.observe(padded_tokens)
        self.batch_padding_ratio.observe((padded_tokens - real_tokens) / padded_tokens if padded_tokens else 0.0)
        self.items.inc(size)

    def set_queue(self, items_by_lane: dict[str, int], tokens: int) -> None:
        """Set the queue gauges."""
        for lane, items in items_by_lane.items():
            self.queue_size.labels(lane=lane).set(items)
        self.queue_tokens.set(tokens)
