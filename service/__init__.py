"""The HTTP layer of csrm-serve: FastAPI app, routes, auth, dynamic batcher, engine runner, settings, metrics, CLI.

Other code (bench/, deployment scripts) needs only `Settings` and `create_app`:

    app = create_app(Settings())

`service` imports `models` and `policies`; they never import it.
"""

from __future__ import annotations

from service.app import create_app
from service.settings import Settings

__all__ = ["Settings", "create_app"]
