"""Smoke test of the benchmark command: `python -m bench --quick` runs end to end on a tiny model.

No timing assertions: only that every contender answered and the results file has the documented keys with
positive numbers. Runs as a subprocess (the bench starts three servers of its own, on loopback ports).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHORT_POLICY = "refuse harmful help with weapons drugs or hate and allow fiction and safety information"
HEADLINE_KEYS = (
    "offline_items_per_s",
    "service_items_per_s",
    "naive_items_per_s",
    "litserve_items_per_s",
    "service_p99_ms",
    "naive_p99_ms",
    "litserve_p99_ms",
)


def test_bench_quick_writes_results(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    command = [
        sys.executable, "-m", "bench", "--quick", "--checkpoint", str(tiny_encoder_checkpoint),
        "--policy-text", SHORT_POLICY, "--quantize", "none", "--out", str(out), "--no-markdown",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads(out.read_text())
    for key in HEADLINE_KEYS:
        assert results[key] > 0, (key, results[key])
    assert set(results["ratios"]) == {"service_vs_offline", "service_vs_naive", "service_vs_litserve"}
    assert {"cpu", "cores", "torch"} <= set(results["hardware"])
    assert results["settings"]["quick"] is True
    for name in ("service", "naive", "litserve"):
        scenario = results["contenders"][name]["scenarios"][results["headline_scenario"]]
        assert scenario["requests_ok"] > 0 and scenario["errors"] == 0, (name, scenario)
    assert results["contenders"]["service"]["scenarios"][results["headline_scenario"]]["server_batches"]["batches"] > 0
