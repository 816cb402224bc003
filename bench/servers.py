"""Start a contender server in its own process group on a loopback port, wait until it answers, kill it.

Every server is started with ``start_new_session=True`` so that stopping it kills the whole group (LitServe
spawns an inference worker and an API server process that would otherwise outlive their parent). Waiting is
bounded; a server that does not come up in time is killed and its log tail is raised.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["ServerSpec", "argv_text", "free_port", "python_argv", "running_server"]

_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one contender.

    Attributes:
        name: ``service``, ``naive`` or ``litserve``.
        argv: The command (``{port}`` is replaced by the chosen port).
        ready_path: GET path that answers 200 once the model is loaded and warm.
        env: Extra environment variables.
    """

    name: str
    argv: tuple[str, ...]
    ready_path: str
    env: tuple[tuple[str, str], ...] = ()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_argv(module: str, *args: str) -> tuple[str, ...]:
    """``python -m module args`` with this interpreter."""
    return (sys.executable, "-m", module, *args)


@contextlib.contextmanager
def running_server(spec: ServerSpec, log_dir: Path, *, start_timeout_s: float = 180.0) -> Iterator[str]:
    """Run ``spec`` on a free loopback port; yield its base URL; kill its process group on exit.

    Raises:
        RuntimeError: The server exited or did not become ready within ``start_timeout_s``.
    """
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in spec.argv]
    log_path = log_dir / f"{spec.name}.log"
    env = {**os.environ, **dict(spec.env)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(process, base_url + spec.ready_path, start_timeout_s, log_path)
            yield base_url
        finally:
            _kill_group(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(_POLL_S)
    raise RuntimeError(f"server not ready at {url} after {timeout_s:.0f}s:\n{_tail(log_path)}")


def _kill_group(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left (e.g. LitServe's workers)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def argv_text(argv: Sequence[str]) -> str:
    """A command line for the report (interpreter shortened to ``python``)."""
    return " ".join("python" if part == sys.executable else part for part in argv)
