"""The results of one run: ``bench/results/latest.json`` and the generated section of ``BENCHMARKS.md``.

The headline keys (``offline_items_per_s``, ``service_items_per_s``, ``naive_items_per_s``,
``litserve_items_per_s`` and ``*_p99_ms``) are taken on the headline scenario (chat turns, N concurrent
clients); every scenario's full figures sit under ``contenders``. ``BENCHMARKS.md`` keeps its hand-written
text; only the part between the ``bench:results`` markers is replaced.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.run import BenchConfig

__all__ = ["START", "END", "build_results", "hardware", "markdown_section", "update_markdown"]

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
_NAMES = {"service": "our service", "naive": "naive (serve_rm pattern)", "litserve": "LitServe"}


def hardware() -> dict[str, Any]:
    """CPU model, cores, memory, torch and Python versions of this machine."""
    import os  # noqa: PLC0415

    import torch  # noqa: PLC0415

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def build_results(raw: dict[str, Any], config: BenchConfig, command: str) -> dict[str, Any]:
    """The JSON document: headline keys, ratios, hardware, settings, then everything measured."""
    from bench.run import HEADLINE  # noqa: PLC0415

    offline = raw["offline"].get("chat") or next(iter(raw["offline"].values()))
    out: dict[str, Any] = {
        "offline_items_per_s": offline["items_per_s"],
        "offline_batch_ms_p99": offline["batch_ms_p99"],
    }
    for name in ("service", "naive", "litserve"):
        headline = raw["contenders"].get(name, {}).get("scenarios", {}).get(HEADLINE, {})
        out[f"{name}_items_per_s"] = headline.get("items_per_s", 0.0)
        out[f"{name}_p99_ms"] = headline.get("p99_ms", 0.0)
    out["ratios"] = {
        "service_vs_offline": _ratio(out["service_items_per_s"], out["offline_items_per_s"]),
        "service_vs_naive": _ratio(out["service_items_per_s"], out["naive_items_per_s"]),
        "service_vs_litserve": _ratio(out["service_items_per_s"], out["litserve_items_per_s"]),
    }
    out["headline_scenario"] = HEADLINE
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out["command"] = command
    out["git_commit"] = _git_commit()
    out["hardware"] = hardware()
    settings = asdict(config)
    settings["scenarios"] = [asdict(s) for s in config.scenarios]
    out["settings"] = settings
    out.update({k: v for k, v in raw.items() if k not in out})
    return out


def _row(label: str, scenario: dict[str, Any] | None) -> str:
    if not scenario:
        return f"| {label} | – | – | – | – | – |"
    batches = scenario.get("server_batches") or {}
    batch = f"{batches['mean_batch_size']:.1f} / {batches['mean_padding_ratio']:.3f}" if batches else "–"
    return (
        f"| {label} | {scenario['items_per_s']:.1f} | {scenario['p50_ms']:.0f} | {scenario['p99_ms']:.0f} | "
        f"{scenario['rejected']} / {scenario['errors']} | {batch} |"
    )


def markdown_section(results: dict[str, Any]) -> str:
    """The generated part of BENCHMARKS.md: headline ratios, one table per scenario, hardware, command."""
    r = results["ratios"]
    lines = [
        START,
        f"Run of {results['date']} (commit `{results['git_commit']}`), command: `{results['command']}`.",
        "",
        f"Hardware: {results['hardware']['cpu']}, {results['hardware']['cores']} cores, torch "
        f"{results['hardware']['torch']} ({results['hardware']['torch_threads']} threads), CUDA "
        f"{'yes' if results['hardware']['cuda'] else 'no'}. Model: `{results['checkpoint']}`, speed path "
        f"`{results['settings']['quantize']}`. Load average before/after: {results['load_before']} / "
        f"{results['load_after']}. Wall time {results['wall_s']} s.",
        "",
        "| headline (chat turns, closed loop) | items/s | p99 ms | ratio |",
        "|---|---|---|---|",
        f"| (a) engine offline, best batch | {results['offline_items_per_s']:.1f} | "
        f"{results['offline_batch_ms_p99']:.0f} (one batch) | |",
        f"| (b) our service | {results['service_items_per_s']:.1f} | {results['service_p99_ms']:.0f} | "
        f"b/a = {r['service_vs_offline']:.2f} |",
        f"| (c) naive server | {results['naive_items_per_s']:.1f} | {results['naive_p99_ms']:.0f} | "
        f"b/c = {r['service_vs_naive']:.2f} |",
        f"| (d) LitServe | {results['litserve_items_per_s']:.1f} | {results['litserve_p99_ms']:.0f} | "
        f"b/d = {r['service_vs_litserve']:.2f} |",
        "",
        "Offline (engine alone, length-sorted batches, tokenization included):",
        "",
        "| workload | items | mean tokens | best batch | items/s | by batch size | unsorted items/s "
        "| padding sorted / unsorted |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, o in results["offline"].items():
        sweep = ", ".join(f"{k}: {v:.1f}" for k, v in o["by_batch_size"].items())
        lines.append(
            f"| {name} | {o['items']} | {o['mean_tokens']:.0f} | {o['best_batch_size']} | {o['items_per_s']:.1f} | "
            f"{sweep} | {o['unsorted_items_per_s']:.1f} | {o['padding_ratio_sorted']:.3f} / "
            f"{o['padding_ratio_unsorted']:.3f} |"
        )
    for scenario in results["settings"]["scenarios"]:
        lines += _scenario_table(results, scenario)
    lines.append(END)
    return "\n".join(lines)


def _scenario_table(results: dict[str, Any], scenario: dict[str, Any]) -> list[str]:
    name = scenario["name"]
    how = (
        f"{scenario['clients']} concurrent clients (closed loop)"
        if scenario["clients"]
        else f"open loop at {scenario['rate_factor']:.0%} of the offline rate"
    )
    lines = [
        "",
        f"Scenario `{name}`: workload `{scenario['workload']}`, {how}, at most {scenario['max_requests']} "
        f"requests / {scenario['max_seconds']:.0f} s.",
        "",
        "| contender | items/s | p50 ms | p99 ms | 429s / errors | service batch size / padding |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in _NAMES.items():
        lines.append(_row(label, results["contenders"].get(key, {}).get("scenarios", {}).get(name)))
    return lines


def update_markdown(path: Path, section: str) -> None:
    """Replace the generated section of ``path`` (append it when the markers are missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
