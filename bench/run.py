"""`python -m bench`: the four contenders, one run, same model and same inputs.

Steps: build the workloads; measure the engine offline at a sweep of batch sizes (the limit); then for each
server — our service (``csrm serve``), the naive server, LitServe — start it on a loopback port, run every
scenario against it (closed loop for chat, long and bulk; open loop for chat at a fixed rate), scrape the
service's batching figures from ``/metrics``, and kill it. Ratios b/a, b/c, b/d are taken on the headline
scenario (chat turns, 32 concurrent clients). Every loop is bounded in requests and in seconds.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import LoadResult, closed_loop, open_loop, warm_up
from bench.model import load_bench_model, resolve_checkpoint
from bench.offline import OfflineResult, offline_sweep
from bench.scrape import batch_figures, scrape
from bench.servers import ServerSpec, argv_text, python_argv, running_server
from bench.workloads import Workload, build_workload

__all__ = ["HEADLINE", "BenchConfig", "Scenario", "run_bench"]

HEADLINE = "chat-closed"
"""The scenario the headline ratios are taken on."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load pattern: a workload, closed (``clients``) or open (``rate_factor`` x offline items/s)."""

    name: str
    workload: str
    clients: int = 0
    rate_factor: float = 0.0
    max_requests: int = 1000
    max_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything one run depends on (recorded in the results)."""

    quick: bool
    checkpoint: str | None
    quantize: str
    device: str
    clients: int
    seconds: float
    contenders: tuple[str, ...]
    policy_text: str | None
    litserve_max_batch_size: int
    litserve_batch_timeout_s: float
    batch_sizes: tuple[int, ...]
    distinct: dict[str, int]
    scenarios: tuple[Scenario, ...]


def default_config(
    *, quick: bool, checkpoint: str | None, quantize: str, clients: int, seconds: float, contenders: tuple[str, ...],
    policy_text: str | None = None, device: str = "cpu",
) -> BenchConfig:  # fmt: skip
    """The full run (about 8 minutes on 2 cores) or the quick one (the smoke test's)."""
    if quick:
        scenarios = (Scenario(HEADLINE, "chat", clients=min(clients, 4), max_requests=16, max_seconds=seconds),)
        distinct, batch_sizes = {"chat": 16}, (2, 4)
    else:
        scenarios = (
            Scenario(HEADLINE, "chat", clients=clients, max_requests=2000, max_seconds=seconds),
            Scenario("long-closed", "long", clients=clients, max_requests=600, max_seconds=seconds),
            Scenario("bulk-closed", "bulk", clients=2, max_requests=64, max_seconds=seconds),
            Scenario("chat-open", "chat", rate_factor=0.6, max_requests=2000, max_seconds=seconds * 0.75),
        )
        distinct, batch_sizes = {"chat": 128, "long": 48, "bulk": 2}, (1, 8, 16, 32, 64)
    return BenchConfig(
        quick, checkpoint, quantize, device, clients, seconds, contenders, policy_text, 32, 0.005, batch_sizes,
        distinct, scenarios,
    )  # fmt: skip


def _server_specs(checkpoint: Path, config: BenchConfig, scratch: Path) -> dict[str, ServerSpec]:
    service_env = (
        ("CSRM_QUANTIZE", config.quantize), ("CSRM_POLICY_STORE", "memory:"), ("CSRM_LOG_LEVEL", "warning"),
        ("CSRM_DEVICE", config.device), ("CSRM_KEYS_FILE", str(scratch / "no-keys.json")),
        ("TOKENIZERS_PARALLELISM", "false"),
    )  # fmt: skip
    ck, quantize, device = str(checkpoint), config.quantize, config.device
    return {
        "service": ServerSpec(
            "service",
            python_argv("service.cli", "serve", "--host", "127.0.0.1", "--port", "{port}", "--model", ck),
            "/readyz",
            service_env,
        ),
        "naive": ServerSpec(
            "naive",
            python_argv(
                "bench.naive_server", "--checkpoint", ck, "--port", "{port}", "--quantize", quantize,
                "--device", device,
            ),  # fmt: skip
            "/healthz",
        ),
        "litserve": ServerSpec(
            "litserve",
            python_argv(
                "bench.litserve_server", "--checkpoint", ck, "--port", "{port}", "--quantize", quantize,
                "--device", device, "--max-batch-size", str(config.litserve_max_batch_size),
                "--batch-timeout", str(config.litserve_batch_timeout_s),
            ),  # fmt: skip
            "/health",
        ),
    }


def _offline(checkpoint: Path, config: BenchConfig, workloads: dict[str, Workload]) -> dict[str, OfflineResult]:
    model = load_bench_model(checkpoint, quantize=config.quantize, device=config.device)
    results = {
        name: offline_sweep(
            model, name, w.inputs(), config.batch_sizes, reps=1 if config.quick else 2, max_seconds=30.0
        )
        for name, w in workloads.items()
    }
    del model
    gc.collect()
    return results


async def _run_scenario(
    base_url: str, scenario: Scenario, workload: Workload, offline: OfflineResult
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=max(scenario.clients, 64), max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0, limits=limits) as client:
        await warm_up(client, "/v1/score", workload)
        before = await scrape(client)
        result: LoadResult
        max_requests = _request_budget(scenario, workload, offline)
        if scenario.clients:
            result = await closed_loop(
                client, "/v1/score", workload, concurrency=scenario.clients,
                max_requests=max_requests, max_seconds=scenario.max_seconds,
            )  # fmt: skip
        else:
            rate = max(offline.items_per_s * scenario.rate_factor / workload.items_per_request, 0.5)
            result = await open_loop(
                client, "/v1/score", workload, rate=rate,
                max_requests=max_requests, max_seconds=scenario.max_seconds,
            )  # fmt: skip
        after = await scrape(client)
    summary = result.summary()
    figures = batch_figures(before, after)
    if figures is not None:
        summary["server_batches"] = figures.summary()
    return summary


def _request_budget(scenario: Scenario, workload: Workload, offline: OfflineResult) -> int:
    """Requests to issue: what the offline rate scores in ``max_seconds`` (plus one round of clients), capped
    by ``max_requests``, so that a slow or contended machine does not stretch a scenario far past its bound."""
    at_offline_rate = offline.items_per_s * scenario.max_seconds / workload.items_per_request
    return max(1, min(scenario.max_requests, math.ceil(at_offline_rate) + scenario.clients))


def _run_contender(
    spec: ServerSpec, config: BenchConfig, workloads: dict[str, Workload], offline: dict[str, OfflineResult],
    log_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    scenarios: dict[str, Any] = {}
    with running_server(spec, log_dir) as base_url:
        ready_s = time.perf_counter() - started
        for scenario in config.scenarios:
            workload = workloads[scenario.workload]
            scenarios[scenario.name] = asyncio.run(
                _run_scenario(base_url, scenario, workload, offline[scenario.workload])
            )
            print(f"  {spec.name:9s} {scenario.name:12s} {_line(scenarios[scenario.name])}", flush=True)
    return {"command": argv_text(spec.argv), "ready_s": round(ready_s, 1), "scenarios": scenarios}


def _line(summary: dict[str, Any]) -> str:
    text = (
        f"{summary['items_per_s']:8.1f} items/s  p50 {summary['p50_ms']:7.0f} ms  p99 {summary['p99_ms']:7.0f} ms"
        f"  ok {summary['requests_ok']}  429 {summary['rejected']}  err {summary['errors']}"
    )
    batches = summary.get("server_batches")
    if batches:
        text += f"  batch {batches['mean_batch_size']:.1f}  pad {batches['mean_padding_ratio']:.3f}"
    return text


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run everything the config asks for and return the raw results (see ``bench.report`` for the JSON)."""
    started = time.time()
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="csrm-bench-") as scratch:
        checkpoint = resolve_checkpoint(config.checkpoint, Path(scratch))
        names = sorted({s.workload for s in config.scenarios})
        workloads = {
            n: build_workload(n, config.distinct[n], policy_text=config.policy_text)  # type: ignore[arg-type]
            for n in names
        }
        print(f"checkpoint {checkpoint}; quantize {config.quantize}; load {load_before}", flush=True)
        offline = _offline(checkpoint, config, workloads)
        for name, result in offline.items():
            rate, size = result.items_per_s, result.best_batch_size
            print(f"  offline   {name:12s} {rate:8.1f} items/s at batch {size}", flush=True)
        specs = _server_specs(checkpoint, config, Path(scratch))
        contenders = {
            name: _run_contender(specs[name], config, workloads, offline, Path(scratch)) for name in config.contenders
        }
    return {
        "checkpoint": str(checkpoint) if config.checkpoint else f"{checkpoint.name} (bench-made)",
        "workloads": {n: {"source": w.source, "items_per_request": w.items_per_request, "distinct_requests":
                          len(w.requests)} for n, w in workloads.items()},  # fmt: skip
        "offline": {n: r.summary() for n, r in offline.items()},
        "contenders": contenders,
        "wall_s": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": _load(),
    }
