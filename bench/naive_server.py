"""The naive baseline: a FastAPI server that scores each request alone, inside its handler.

This is the pattern of OpenRLHF's ``serve_rm`` (an ``async def`` route that calls the reward model directly):
no batching across requests, no queue, the forward pass blocks the event loop while it runs. It accepts the
``POST /v1/score`` body the bench sends (``policy_text`` + ``items`` of ``{prompt, response}``) and answers with
the same per-item fields as the service, so the contenders do the same work per item.

    python -m bench.naive_server --checkpoint DIR --port 8101 [--quantize none|int8-dynamic]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

if TYPE_CHECKING:
    from models.scoring import CsrmModel

__all__ = ["create_naive_app", "main", "score_body"]

MAX_ITEMS_PER_FORWARD = 64
"""Long requests are scored in chunks of this many items (serve_rm's ``batch_size``)."""


def score_body(model: CsrmModel, body: dict[str, Any]) -> dict[str, Any]:
    """Score one request body with ``model``: tokenize, forward in chunks, one result per item."""
    from bench.workloads import Pair, to_score_input  # noqa: PLC0415

    policy = body["policy_text"]
    encoded = [model.encode(to_score_input(Pair(i["prompt"], i["response"]), policy)) for i in body["items"]]
    results = []
    for start in range(0, len(encoded), MAX_ITEMS_PER_FORWARD):
        for score in model.score_encoded(encoded[start : start + MAX_ITEMS_PER_FORWARD]):
            verdict = "comply" if score.p_comply >= 0.5 else "violate"
            results.append(
                {"reward": score.reward, "p_comply": score.p_comply, "verdict": verdict,
                 "tokens": score.tokens, "truncated": score.truncated}
            )  # fmt: skip
    return {"results": results, "model": {"id": model.model_id, "checksum": model.checksum}}


def create_naive_app(model: CsrmModel) -> FastAPI:
    """The naive app: ``POST /v1/score`` scores in the handler; ``GET /healthz`` for readiness."""
    app = FastAPI()

    @app.post("/v1/score")
    async def score(request: Request) -> dict[str, Any]:
        return score_body(model, await request.json())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.naive_server", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--quantize", default="none")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, warm it up and serve until killed."""
    import uvicorn  # noqa: PLC0415

    from bench.model import load_bench_model  # noqa: PLC0415

    args = _parser().parse_args(argv)
    model = load_bench_model(args.checkpoint, quantize=args.quantize, device=args.device)
    score_body(model, {"policy_text": "Be safe.", "items": [{"prompt": "Hi", "response": "Hello!"}] * 2})
    uvicorn.run(create_naive_app(model), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
