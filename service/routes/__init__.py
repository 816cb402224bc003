"""HTTP routers, one module per route group; each exposes a `build_*_router()` function that `service.app` mounts."""

from __future__ import annotations

__all__: list[str] = []
