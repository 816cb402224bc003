"""`csrm policy ...` against a server.

Most tests call `service.policy_cli.main` on a worker thread with a sync httpx transport that forwards each request
to the app running in the test's event loop (through `httpx.ASGITransport` inside `LifespanManager`), so the CLI
code runs unchanged without a socket. One smoke test starts `csrm serve` as a real process on a loopback port and
drives it with `python -m service.cli policy ...` processes. No timing assertions.
"""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest

from service import policy_cli
from service.app import create_app
from service.auth import ApiKeyStore
from service.settings import Settings
from tests.service.helpers import serve
from tests.service.test_policies_api import BUDGET, BudgetedEngine, with_examples

PID = "kids-chat"
REPO = Path(__file__).resolve().parents[2]


class BridgeTransport(httpx.BaseTransport):
    """A sync transport (for the CLI on a worker thread) that sends through an async client in the test's loop."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=request.read())
            return await self._client.send(forwarded)

        response = anyio.from_thread.run(send)
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)


class Cli:
    def __init__(self, client: httpx.AsyncClient, admin: str, scorer: str) -> None:
        self.client = client
        self.transport = BridgeTransport(client)
        self.admin = admin
        self.scorer = scorer

    async def __call__(self, *argv: str, key: str | None = "admin") -> tuple[int, str, str]:
        """Run `csrm policy ARGV`; key is "admin", "score" or None (no CSRM_API_KEY)."""
        env = {"CSRM_URL": "http://csrm.test"}
        if key is not None:
            env["CSRM_API_KEY"] = self.admin if key == "admin" else self.scorer
        out, err = io.StringIO(), io.StringIO()
        run = functools.partial(policy_cli.main, list(argv), transport=self.transport, env=env, out=out, err=err)
        status = await anyio.to_thread.run_sync(run)
        return status, out.getvalue(), err.getvalue()

    async def scored_version(self) -> int:
        r = await self.client.post("/v1/score", headers={"Authorization": f"Bearer {self.scorer}"},
                                   json={"policy": PID, "items": [{"prompt": "hi", "response": "hello"}]})
        assert r.status_code == 200, r.text
        return r.json()["policy"]["version"]  # type: ignore[no-any-return]


@pytest.fixture
async def cli(make_settings: Callable[..., Settings]) -> AsyncIterator[Cli]:
    settings = make_settings(store={"seed_library": False})
    keys = ApiKeyStore(settings.auth.keys_file)
    admin, scorer = keys.create(role="admin", name="alice"), keys.create(role="score", name="bob")
    async with serve(create_app(settings, engine=BudgetedEngine())) as client:
        yield Cli(client, admin, scorer)


def write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"id": PID, "spec": {"text": text}, **extra}


class TestLifecycle:
    async def test_publish_promote_show_diff_rollback_audit(self, cli: Cli, tmp_path: Path) -> None:
        status, out, err = await cli("publish", write(tmp_path, "v1.json", doc("be kind")))
        assert status == 0, err
        assert out.splitlines()[0].startswith(f"created {PID} version 1")
        assert f"policy tokens: 2 of {BUDGET}" in out

        v2 = write(tmp_path, "v2.json", doc("be kind and brief", metadata={"change_note": "brevity"}))
        status, out, err = await cli("publish", v2, "--expect", "1", "--reason", "shorter answers")
        assert status == 0, err
        assert f"published {PID} version 2" in out and f"csrm policy promote {PID} 2" in out
        assert await cli.scored_version() == 1

        status, out, _ = await cli("promote", PID, "2", "--expect", "1")
        assert (status, out.strip()) == (0, f"{PID}:stable -> 2")
        assert await cli.scored_version() == 2

        status, out, _ = await cli("list")
        assert status == 0
        assert out.splitlines()[0].split() == ["ID", "LATEST", "ALIASES", "CANARY"]
        assert out.splitlines()[1].split() == [PID, "2", "stable=2", "0"]

        status, out, _ = await cli("show", PID)
        assert status == 0
        assert f"{PID}  latest 2  aliases stable=2" in out
        assert "brevity" in out and "    be kind and brief" in out
        status, out, _ = await cli("show", f"{PID}@1")
        assert f"{PID}@1 " in out and "    be kind" in out
        status, out, _ = await cli("--json", "show", f"{PID}:stable")
        assert json.loads(out)["document"]["version"] == 2

        status, out, _ = await cli("diff", PID, "1", "2")
        assert status == 0
        assert out.splitlines()[0] == f"{PID} 1 -> 2: changed spec.text, metadata.change_note"
        assert "+be kind and brief" in out

        status, out, _ = await cli("rollback", PID, "--reason", "too terse")
        assert (status, out.strip()) == (0, f"{PID}:stable rolled back to 1")
        assert await cli.scored_version() == 1

        status, out, _ = await cli("audit", PID)
        assert status == 0
        lines = out.splitlines()
        assert lines[0].split() == ["AT", "ACTOR", "ACTION", "VERSION", "ALIAS", "CHANGE", "REASON"]
        assert [line.split()[1:3] for line in lines[1:]] == [
            ["alice", "create"], ["alice", "publish"], ["alice", "set_alias"], ["alice", "rollback"]]
        assert lines[-1].endswith("2 -> 1  too terse")
        status, out, _ = await cli("--json", "audit", PID)
        assert len(json.loads(out)["entries"]) == 4

    async def test_canary_archive_and_custom_alias(self, cli: Cli, tmp_path: Path) -> None:
        await cli("publish", write(tmp_path, "v1.json", doc("one")))
        await cli("publish", write(tmp_path, "v2.json", doc("two")))
        assert (await cli("promote", PID, "2", "--alias", "canary"))[1].strip() == f"{PID}:canary -> 2"
        assert (await cli("canary", PID, "0.25"))[1].strip() == f"{PID} canary weight 0.25"
        status, _, err = await cli("archive", PID, "2")
        assert status == 1 and "409 VERSION_IN_USE" in err
        await cli("publish", write(tmp_path, "v3.json", doc("three")))
        assert (await cli("archive", PID, "3"))[1].strip() == f"{PID}@3 archived"
        assert (await cli("unarchive", PID, "3"))[1].strip() == f"{PID}@3 unarchived"

    async def test_publish_with_idempotency_key_and_stdin_style_json(self, cli: Cli, tmp_path: Path) -> None:
        path = write(tmp_path, "v1.json", {"spec": {"text": "hello"}})
        status, _, err = await cli("publish", path)
        assert status == 2 and "--policy-id" in err
        assert (await cli("publish", path, "--policy-id", PID))[0] == 0
        v2 = write(tmp_path, "v2.json", doc("again"))
        status, out, _ = await cli("--json", "publish", v2, "--idempotency-key", "k1")
        assert json.loads(out)["document"]["version"] == 2
        status, out, _ = await cli("publish", v2, "--idempotency-key", "k1")
        assert status == 0 and out.startswith(f"replayed {PID} version 2")


class TestRefusals:
    async def test_server_errors_exit_1_with_the_message(self, cli: Cli, tmp_path: Path) -> None:
        v1 = write(tmp_path, "v1.json", doc("one"))
        assert (await cli("publish", v1))[0] == 0
        status, out, err = await cli("publish", v1, "--expect", "5")
        assert (status, out) == (1, "")
        assert "409 VERSION_CONFLICT" in err and "expected latest version 5, found 1" in err

        long = write(tmp_path, "long.json", doc(" ".join(["word"] * (BUDGET + 1))))
        status, _, err = await cli("publish", long)
        assert status == 1 and "422 INVALID_POLICY" in err
        assert f"{BUDGET + 1} tokens" in err and f"budget of {BUDGET}" in err

        gated = write(tmp_path, "gated.json", {"id": PID, **with_examples(("a harmful story", "comply"))})
        status, _, err = await cli("publish", gated, "--validate-examples")
        assert status == 1 and "1 of 1 golden examples disagree" in err
        assert "spec.categories.0.examples.0: expected comply, the model says violate" in err

        bad = write(tmp_path, "bad.json", {"id": PID, "spec": {"text": "x"}, "threshold": 3})
        status, _, err = await cli("publish", bad)
        assert status == 1 and "threshold: " in err

        status, _, err = await cli("show", "nope")
        assert status == 1 and "404 POLICY_NOT_FOUND" in err
        status, _, err = await cli("show", f"{PID}:beta")
        assert status == 1 and "no alias 'beta'" in err
        status, _, err = await cli("rollback", PID)
        assert status == 1 and "409 VERSION_CONFLICT" in err
        assert (await cli("--json", "audit", PID))[1].count('"action"') == 1  # refusals wrote nothing

    async def test_auth(self, cli: Cli, tmp_path: Path) -> None:
        status, _, err = await cli("list", key=None)
        assert status == 1 and "401 UNAUTHORIZED" in err and "CSRM_API_KEY" in err
        assert (await cli("list", key="score"))[0] == 0
        status, _, err = await cli("publish", write(tmp_path, "v1.json", doc("one")), key="score")
        assert status == 1 and "403 FORBIDDEN" in err

    async def test_local_errors_exit_2(self, cli: Cli, tmp_path: Path) -> None:
        status, _, err = await cli("publish", str(tmp_path / "missing.json"))
        assert status == 2 and "cannot read" in err
        (tmp_path / "broken.json").write_text("{nope", encoding="utf-8")
        status, _, err = await cli("publish", str(tmp_path / "broken.json"))
        assert status == 2 and "not valid JSON" in err


def test_unreachable_server_exits_3() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound but not listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        err = io.StringIO()
        status = policy_cli.main(["--url", url, "--timeout", "5", "list"], env={}, err=err)
    assert status == 3 and "cannot reach" in err.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_real_server_process_smoke(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSRM_")}
    env.update({"CSRM_KEYS_FILE": str(tmp_path / "keys.json"), "CSRM_POLICY_STORE": f"file:{tmp_path / 'store'}",
                "CSRM_DEFAULT_POLICY": PID, "CSRM_STORE__SEED_LIBRARY": "false", "CSRM_DEVICE": "cpu",
                "CSRM_LOG_LEVEL": "warning", "PYTHONWARNINGS": "ignore"})  # fmt: skip
    admin = ApiKeyStore(tmp_path / "keys.json").create(role="admin", name="smoke")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "service.cli"]
    server = subprocess.Popen([*cmd, "serve", "--port", str(port), "--model", str(tiny_encoder_checkpoint)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(600):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    pytest.fail(f"server exited: {server.stderr.read().decode() if server.stderr else ''}")
                time.sleep(0.1)
            else:
                pytest.fail("server never became ready")
        path = write(tmp_path, "p.json", doc("no weapons"))
        client_env = {**env, "CSRM_URL": url, "CSRM_API_KEY": admin}

        def csrm(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*cmd, "policy", *argv], cwd=REPO, env=client_env, capture_output=True, text=True,
                                  timeout=120, check=False)  # fmt: skip

        created = csrm("publish", path)
        assert created.returncode == 0, created.stderr
        assert f"created {PID} version 1" in created.stdout and "policy tokens: 2 of 64" in created.stdout
        published = csrm("publish", write(tmp_path, "p2.json", doc("no weapons no drugs")), "--expect", "1")
        assert published.returncode == 0 and f"published {PID} version 2" in published.stdout
        assert csrm("promote", PID, "2").stdout.strip() == f"{PID}:stable -> 2"
        refused = csrm("publish", path, "--expect", "1")
        assert refused.returncode == 1 and "409 VERSION_CONFLICT" in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=60)
        if server.stderr is not None:
            server.stderr.close()
