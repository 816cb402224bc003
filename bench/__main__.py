"""Entry point: ``python -m bench [--quick] [--checkpoint DIR] [--quantize MODE] ...`` (see ``bench.run``)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_CONTENDERS = ("service", "naive", "litserve")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Side-by-side: engine offline, our service, naive server, LitServe."
    )
    parser.add_argument("--quick", action="store_true", help="a few requests per contender (the smoke test's)")
    parser.add_argument("--checkpoint", help="checkpoint dir (default: models/default, else the MiniLM base)")
    parser.add_argument(
        "--quantize",
        default="default",
        help="speed path for every contender: default (the service's), none, int8-dynamic",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bench/gpu_check.sh)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of the closed loops")
    parser.add_argument("--seconds", type=float, default=None, help="time bound of each scenario (s)")
    parser.add_argument("--contenders", default=",".join(_CONTENDERS), help="comma-separated subset")
    parser.add_argument("--policy-text", default=None, help="policy text (default: bundled general-safety)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    return parser


def _resolve_quantize(requested: str) -> str:
    """``default`` -> the service's own default; warn when the service cannot take a mode."""
    from bench.model import service_quantize_mode  # noqa: PLC0415

    return service_quantize_mode(requested)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, write the JSON (and BENCHMARKS.md), print the ratios."""
    from bench.report import build_results, markdown_section, update_markdown  # noqa: PLC0415
    from bench.run import default_config, run_bench  # noqa: PLC0415

    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so that `finally` kills the servers we started
    contenders = tuple(c for c in args.contenders.split(",") if c)
    unknown = set(contenders) - set(_CONTENDERS)
    if unknown:
        print(f"unknown contenders: {sorted(unknown)}", file=sys.stderr)
        return 2
    config = default_config(
        quick=args.quick, checkpoint=args.checkpoint, quantize=_resolve_quantize(args.quantize),
        clients=args.clients, seconds=args.seconds or (4.0 if args.quick else 15.0), contenders=contenders,
        policy_text=args.policy_text, device=args.device,
    )  # fmt: skip
    raw = run_bench(config)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results = build_results(raw, config, command.strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if not args.no_markdown:
        update_markdown(args.markdown, markdown_section(results))
    r = results["ratios"]
    print(
        f"b/a {r['service_vs_offline']:.2f}  b/c {r['service_vs_naive']:.2f}  b/d {r['service_vs_litserve']:.2f}  "
        f"p99 ms: service {results['service_p99_ms']:.0f}, naive {results['naive_p99_ms']:.0f}, "
        f"litserve {results['litserve_p99_ms']:.0f}; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
