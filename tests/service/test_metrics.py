"""Metrics: every named series on a registry of its own, and the recording helpers."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.metrics import Metrics, RequestTimings

SERIES = [
    "csrm_request_duration_seconds",
    "csrm_request_tokenization_duration_seconds",
    "csrm_request_queue_duration_seconds",
    "csrm_request_inference_duration_seconds",
    "csrm_batch_size",
    "csrm_batch_tokens",
    "csrm_batch_padding_ratio",
    "csrm_queue_size",
    "csrm_queue_tokens",
    "csrm_request_failures_total",
    "csrm_verdicts_total",
    "csrm_items_total",
]
REASONS = ["validation", "unauthorized", "overloaded", "inference", "dropped", "store", "deadline"]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_series_is_exposed(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.record_verdict("general-safety", 1, "comply")
    text = generate_latest(registry).decode()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    declared = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    for name in SERIES:  # labelled series without a child yet are declared but have no sample
        assert name in samples or f"{name}_bucket" in samples or name in declared, name


def test_failure_reasons_and_lanes_start_at_zero(metrics: Metrics, registry: CollectorRegistry) -> None:
    for reason in REASONS:
        assert value(registry, "csrm_request_failures_total", reason=reason) == 0
    for lane in ("interactive", "bulk"):
        assert value(registry, "csrm_queue_size", lane=lane) == 0


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).record_failure("overloaded")
    Metrics(second)
    assert value(first, "csrm_request_failures_total", reason="overloaded") == 1
    assert value(second, "csrm_request_failures_total", reason="overloaded") == 0


def test_registering_twice_on_one_registry_fails(registry: CollectorRegistry) -> None:
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry)


def test_record_request_observes_each_stage_once(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.record_request("/v1/score", RequestTimings(total_s=0.5, tokenization_s=0.1, queue_s=0.2, inference_s=0.15))
    assert value(registry, "csrm_request_duration_seconds_count", endpoint="/v1/score") == 1
    assert value(registry, "csrm_request_duration_seconds_sum", endpoint="/v1/score") == 0.5
    for stage, seconds in (("tokenization", 0.1), ("queue", 0.2), ("inference", 0.15)):
        assert value(registry, f"csrm_request_{stage}_duration_seconds_count") == 1
        assert value(registry, f"csrm_request_{stage}_duration_seconds_sum") == seconds


def test_record_batch(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.record_batch(size=2, real_tokens=6, padded_tokens=8)
    assert value(registry, "csrm_batch_size_sum") == 2
    assert value(registry, "csrm_batch_tokens_sum") == 8
    assert value(registry, "csrm_batch_padding_ratio_sum") == 0.25  # (8 - 6) / 8
    assert value(registry, "csrm_items_total") == 2


def test_record_verdict_and_queue(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.record_verdict("kids", 3, "violate")
    metrics.set_queue({"interactive": 2, "bulk": 5}, tokens=70)
    assert value(registry, "csrm_verdicts_total", policy_id="kids", policy_version="3", verdict="violate") == 1
    assert value(registry, "csrm_queue_size", lane="bulk") == 5
    assert value(registry, "csrm_queue_tokens") == 70


def test_timing_headers_are_milliseconds() -> None:
    timings = RequestTimings(total_s=0.0425, tokenization_s=0.001, queue_s=0.0104, inference_s=0.03)
    assert timings.headers() == {
        "x-total-time": "42",
        "x-tokenization-time": "1",
        "x-queue-time": "10",
        "x-inference-time": "30",
    }
