"""Side-by-side benchmarks of csrm-serve (not tests).

`python -m bench` measures, on the same model and the same inputs, in one run:

(a) the engine offline at its best batch size (the limit on this hardware),
(b) our service (`csrm serve` in a subprocess on a loopback port),
(c) a naive FastAPI server that scores each request alone in its handler (OpenRLHF `serve_rm`'s pattern),
(d) LitServe serving the same engine function with its own batching,

and writes `bench/results/latest.json` and the table in `BENCHMARKS.md`. `python -m bench.speed_paths` compares
the CPU speed paths (fp32, bf16, int8 dynamic quantisation, ONNX Runtime) for throughput and agreement with fp32.
Importing any module here does nothing: no model loads, no servers start.
"""

from __future__ import annotations

__all__: list[str] = []
