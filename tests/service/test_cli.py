"""The `csrm` command line, and one test that runs the real server process and scores over loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.auth import ApiKeyStore, hash_key
from service.cli import build_parser, is_loopback, main

_SERVER_START_GIVE_UP_S = 180.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "keys", "train", "eval"):
        assert command in out


def test_serve_flags_parse() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000", "--model", "/m"])
    assert (args.host, args.port, args.model) == ("0.0.0.0", 9000, Path("/m"))


class TestKeys:
    def test_create_prints_the_key_once_and_stores_its_hash(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        keys_file = tmp_path / "keys.json"
        monkeypatch.setenv("CSRM_KEYS_FILE", str(keys_file))
        assert main(["keys", "create", "--role", "admin", "--name", "alice"]) == 0
        captured = capsys.readouterr()
        key = captured.out.strip()
        assert key.startswith("csrm_")
        assert key not in captured.err
        stored = json.loads(keys_file.read_text())["keys"]
        assert stored[0]["hash"] == hash_key(key) and stored[0]["role"] == "admin"
        assert key not in keys_file.read_text()
        assert main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "alice\tadmin" in listing and key not in listing

    def test_keys_file_flag_and_duplicate_names(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "k.json"
        assert main(["keys", "--keys-file", str(path), "create", "--role", "score", "--name", "b"]) == 0
        assert main(["keys", "--keys-file", str(path), "create", "--role", "score", "--name", "b"]) == 2
        assert "already exists" in capsys.readouterr().err

    def test_role_is_checked(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit):
            main(["keys", "--keys-file", str(tmp_path / "k.json"), "create", "--role", "root", "--name", "x"])


class TestServeRefusals:
    def test_non_loopback_without_a_key_refuses_to_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("CSRM_KEYS_FILE", str(tmp_path / "keys.json"))
        assert main(["serve", "--host", "0.0.0.0", "--model", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "refusing to listen on 0.0.0.0" in err
        assert "csrm keys create --role score --name" in err

    def test_invalid_settings_are_reported(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("CSRM_BATCHER__MAX_BATCH_ITEMS", "zero")
        assert main(["serve"]) == 2
        assert "invalid settings" in capsys.readouterr().err

    def test_non_loopback_with_a_key_gets_past_the_check(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        keys_file = tmp_path / "keys.json"
        ApiKeyStore(keys_file).create(role="score", name="x")
        monkeypatch.setenv("CSRM_KEYS_FILE", str(keys_file))
        started: dict[str, Any] = {}
        fake_uvicorn = types.SimpleNamespace(run=lambda app, **kwargs: started.update(kwargs))
        monkeypatch.setitem(sys.modules, "uvicorn", fake_uvicorn)
        assert main(["serve", "--host", "0.0.0.0", "--port", "9999", "--model", str(tmp_path)]) == 0
        assert started["host"] == "0.0.0.0" and started["port"] == 9999

    def test_missing_bundled_model_says_to_pass_one(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import models.checkpoint

        monkeypatch.setattr(models.checkpoint, "default_checkpoint_path", lambda: tmp_path / "no-default")
        assert main(["serve"]) == 2
        assert "--model PATH" in capsys.readouterr().err


class TestPassthrough:
    def test_train_and_eval_pass_their_arguments_through(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[str, list[str]]] = []
        fake = types.ModuleType("models.cli")
        fake.train_main = lambda argv: calls.append(("train", argv)) or 0  # type: ignore[attr-defined]
        fake.eval_main = lambda argv: calls.append(("eval", argv)) or 3  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "models.cli", fake)
        assert main(["train", "--data", "d", "--help"]) == 0
        assert main(["eval", "ckpt"]) == 3
        assert calls == [("train", ["--data", "d", "--help"]), ("eval", ["ckpt"])]

    def test_no_entry_point(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        monkeypatch.setitem(sys.modules, "models.cli", types.ModuleType("models.cli"))
        monkeypatch.setitem(sys.modules, "models.training", types.ModuleType("models.training"))
        assert main(["train"]) == 2
        assert "no entry point" in capsys.readouterr().err

    def test_the_real_entry_points_exist(self) -> None:
        module = pytest.importorskip("models.cli")
        assert callable(module.train_main) and callable(module.eval_main)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _csrm_command() -> list[str]:
    script = Path(sys.executable).with_name("csrm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


def test_real_server_scores_over_loopback(tiny_encoder_checkpoint: Path, tmp_path: Path) -> None:
    """`csrm serve --model <tiny checkpoint> --port <free port>` in a subprocess, scored over TCP."""
    from policies.registry import PolicyRegistry
    from policies.store.file import FilePolicyStore

    store_dir = tmp_path / "policies"

    async def seed() -> None:  # a policy short enough for the tiny checkpoint's 64-token policy budget
        store = FilePolicyStore(store_dir)
        await PolicyRegistry(store).create_policy({"id": "tiny-policy", "spec": {"text": "no weapons allowed"}},
                                                  actor="test")  # fmt: skip
        await store.close()

    import asyncio

    asyncio.run(seed())
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CSRM_")},
        "CSRM_POLICY_STORE": f"file:{store_dir}",
        "CSRM_STORE__SEED_LIBRARY": "false",
        "CSRM_KEYS_FILE": str(tmp_path / "keys.json"),
        "CSRM_DEFAULT_POLICY": "tiny-policy",
        "CSRM_DEVICE": "cpu",
    }
    command = [*_csrm_command(), "serve", "--model", str(tiny_encoder_checkpoint), "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + _SERVER_START_GIVE_UP_S
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < give_up, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/v1/score", json={"items": [{"prompt": "hello", "response": "hi there"}]}, timeout=30
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["policy"]["id"] == "tiny-policy"
        assert 0.0 <= body["results"][0]["p_comply"] <= 1.0
        assert "x-total-time" in response.headers
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says how it ended
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "server.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
