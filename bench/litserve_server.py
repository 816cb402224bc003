"""LitServe serving the same engine function with its own batching (``max_batch_size``, ``batch_timeout``).

One inference worker on CPU; LitServe gathers up to ``max_batch_size`` *requests* (waiting at most
``batch_timeout`` seconds), and ``predict`` scores all their items with the same ``CsrmModel.score_encoded``
the service uses, in forward passes of at most 64 items, sorted by length as our batcher does. The route and
body are those of the service (``POST /v1/score``), so the bench sends every contender the same requests.

    python -m bench.litserve_server --checkpoint DIR --port 8102 [--max-batch-size 32] [--batch-timeout 0.005]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import litserve as ls

if TYPE_CHECKING:
    from models.types import EncodedInput, ItemScore

__all__ = ["CsrmLitAPI", "build_api", "main", "score_requests"]

MAX_ITEMS_PER_FORWARD = 64


def score_requests(model: Any, requests: Sequence[Sequence[EncodedInput]]) -> list[list[ItemScore]]:
    """Score the items of several requests together: length-sorted forwards of at most 64 items."""
    flat = [(r, i) for r, items in enumerate(requests) for i in range(len(items))]
    flat.sort(key=lambda ri: requests[ri[0]][ri[1]].tokens)
    out: list[list[Any]] = [[None] * len(items) for items in requests]
    for start in range(0, len(flat), MAX_ITEMS_PER_FORWARD):
        chunk = flat[start : start + MAX_ITEMS_PER_FORWARD]
        scores = model.score_encoded([requests[r][i] for r, i in chunk])
        for (r, i), score in zip(chunk, scores, strict=True):
            out[r][i] = score
    return out


class CsrmLitAPI(ls.LitAPI):  # type: ignore[misc]
    """Scores the bench's ``/v1/score`` bodies with the checkpoint (module level: LitServe pickles it)."""

    def __init__(self, checkpoint: str, quantize: str, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint = checkpoint
        self.quantize = quantize
        self.bench_device = device

    def setup(self, device: str) -> None:
        from bench.model import load_bench_model  # noqa: PLC0415

        self.model = load_bench_model(self.checkpoint, quantize=self.quantize, device=self.bench_device)
        self.model.score([_to_input({"prompt": "Hi", "response": "Hello!"}, "Be safe.")] * 2)  # warm-up

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # LitServe reads this annotation
        """The request body (a dict) -> its encoded items."""
        policy = request["policy_text"]
        return [self.model.encode(_to_input(item, policy)) for item in request["items"]]

    def predict(self, batch: list[list[EncodedInput]]) -> list[list[ItemScore]]:
        return score_requests(self.model, batch)

    def unbatch(self, output: list[list[ItemScore]]) -> list[list[ItemScore]]:
        return output

    def encode_response(self, output: list[ItemScore]) -> dict[str, Any]:
        return {"results": [_result(score) for score in output], "model": {"id": self.model.model_id}}


def build_api(
    checkpoint: str, quantize: str, *, max_batch_size: int, batch_timeout: float, device: str = "cpu"
) -> CsrmLitAPI:
    """The LitAPI for the checkpoint, with LitServe's batching knobs."""
    return CsrmLitAPI(
        checkpoint, quantize, device, max_batch_size=max_batch_size, batch_timeout=batch_timeout,
        api_path="/v1/score",
    )  # fmt: skip


def _to_input(item: dict[str, str], policy: str) -> Any:
    from bench.workloads import Pair, to_score_input  # noqa: PLC0415

    return to_score_input(Pair(item["prompt"], item["response"]), policy)


def _result(score: ItemScore) -> dict[str, Any]:
    verdict = "comply" if score.p_comply >= 0.5 else "violate"
    return {"reward": score.reward, "p_comply": score.p_comply, "verdict": verdict,
            "tokens": score.tokens, "truncated": score.truncated}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.litserve_server", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--quantize", default="none")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bfloat16)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="requests per batch")
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="seconds to wait for a batch to fill")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start LitServe (one CPU worker, one API server) and serve until killed."""
    args = _parser().parse_args(argv)
    api = build_api(
        args.checkpoint, args.quantize, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout,
        device=args.device,
    )  # fmt: skip
    accelerator = "cpu" if args.device == "cpu" else "cuda"
    server = ls.LitServer(api, accelerator=accelerator, devices=1, workers_per_device=1, timeout=120)
    server.run(
        host=args.host, port=args.port, num_api_servers=1, log_level="warning", generate_client_file=False
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
