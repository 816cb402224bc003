"""`FilePolicyStore` specifics: layout, crash leftovers, durability under SIGKILL, several processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from policies.errors import StoreUnavailable
from policies.schema import PolicyDocument
from policies.store.base import open_store
from policies.store.file import FilePolicyStore, atomic_write
from policies.store.memory import InMemoryPolicyStore
from tests.policies.helpers import doc, entry

REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from policies.registry import PolicyRegistry
    from policies.store.file import FilePolicyStore

    async def main(root, worker, count):
        registry = PolicyRegistry(FilePolicyStore(root), cache_ttl=0)
        for i in range(count):
            body = {"spec": {"text": f"worker {worker} publish {i} " + "x" * (i % 7) * 300}}
            stored = await registry.publish("crash", body, actor=f"w{worker}")
            print(f"ACK {stored.version} {stored.checksum}", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def _start_child(root: Path, tmp_path: Path, worker: str, count: int) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), str(root), worker, str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def _acks(stdout: str) -> dict[int, str]:
    acks = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ACK":  # a line cut by the kill is not an acknowledgement
            acks[int(parts[1])] = parts[2]
    return acks


async def _create(root: Path, policy_id: str) -> None:
    store = FilePolicyStore(root)
    await store.add_version(doc(policy_id), entry(policy_id=policy_id), set_aliases=("stable",))


class TestLayout:
    async def test_persists_across_instances(self, tmp_path: Path) -> None:
        first = FilePolicyStore(tmp_path)
        stored = await first.add_version(doc(), entry(), set_aliases=("stable",), idempotency_key="k")
        await first.set_canary_weight("demo", 0.3, entry("set_canary_weight"))
        second = FilePolicyStore(tmp_path)
        assert await second.get_version("demo", 1) == stored
        head = await second.get_head("demo")
        assert head is not None and head.canary_weight == 0.3 and dict(head.aliases) == {"stable": 1}
        assert await second.add_version(doc(), entry(), idempotency_key="k") == stored
        assert (tmp_path / "policies" / "demo" / "versions" / "000001.json").is_file()
        json.loads((tmp_path / "policies" / "demo" / "state.json").read_text())

    async def test_ignores_leftover_temp_files_and_orphans(self, tmp_path: Path) -> None:
        store = FilePolicyStore(tmp_path)
        await store.add_version(doc(), entry())
        versions = tmp_path / "policies" / "demo" / "versions"
        (versions / ".tmp-000002.json.dead").write_text('{"partial')
        (tmp_path / "policies" / "demo" / ".tmp-state.json.dead").write_text("{")
        orphan = doc(text="never committed").model_copy(update={"version": 2, "parent_version": 1})
        atomic_write(versions / "000002.json", orphan.model_dump_json().encode())
        reopened = FilePolicyStore(tmp_path)
        assert [d.version for d in await reopened.list_versions("demo")] == [1]
        assert await reopened.get_version("demo", 2) is None
        assert await reopened.list_policies() == ["demo"]
        stored = await reopened.add_version(doc(text="committed"), entry())
        assert stored.version == 2 and (await reopened.get_version("demo", 2)) == stored

    async def test_corrupt_state_is_store_unavailable(self, tmp_path: Path) -> None:
        store = FilePolicyStore(tmp_path)
        await store.add_version(doc(), entry())
        (tmp_path / "policies" / "demo" / "state.json").write_text("{not json")
        with pytest.raises(StoreUnavailable):
            await store.get_head("demo")

    async def test_tampered_document_is_store_unavailable(self, tmp_path: Path) -> None:
        store = FilePolicyStore(tmp_path)
        await store.add_version(doc(), entry())
        path = tmp_path / "policies" / "demo" / "versions" / "000001.json"
        path.write_text(path.read_text().replace("Be helpful", "Be harmful"))
        with pytest.raises(StoreUnavailable):
            await store.get_version("demo", 1)

    async def test_io_failure_is_store_unavailable(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(StoreUnavailable):
            await FilePolicyStore(blocker).add_version(doc(), entry())


class TestOpenStore:
    def test_schemes(self, tmp_path: Path) -> None:
        assert isinstance(open_store("memory:"), InMemoryPolicyStore)
        plain = open_store(f"file:{tmp_path}")
        url = open_store(f"file://{tmp_path}")
        assert isinstance(plain, FilePolicyStore) and isinstance(url, FilePolicyStore)
        assert plain.root == url.root == tmp_path

    @pytest.mark.parametrize("url", ["file:", "file://", "ftp://x", "", "sqlite:///x"])
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ValueError):
            open_store(url)


@pytest.mark.slow
class TestCrashSafety:
    async def test_sigkill_during_publishes_loses_no_acknowledged_version(self, tmp_path: Path) -> None:
        root = tmp_path / "store"
        await _create(root, "crash")
        rng = random.Random(1234)
        acked: dict[int, str] = {}
        for _ in range(6):
            child = _start_child(root, tmp_path, "0", 10_000)
            assert child.stdout is not None
            first = child.stdout.readline()  # wait until it is publishing, then kill it at a random point
            time.sleep(rng.uniform(0.0, 0.4))
            child.send_signal(signal.SIGKILL)
            out, err = child.communicate()
            assert child.returncode == -signal.SIGKILL, err
            acked.update(_acks(first + out))
            await self._check(root, acked)
        assert len(acked) >= 6, acked

    @staticmethod
    async def _check(root: Path, acked: dict[int, str]) -> None:
        store = FilePolicyStore(root)
        docs = {d.version: d for d in await store.list_versions("crash")}
        head = await store.get_head("crash")
        assert head is not None and sorted(docs) == list(range(1, head.latest_version + 1))
        for version, checksum in acked.items():
            assert docs[version].checksum == checksum
        for path in (root / "policies" / "crash" / "versions").glob("[0-9]*.json"):
            PolicyDocument.model_validate_json(path.read_bytes())  # whole documents only, orphans included
        assert len(await store.list_audit("crash")) == head.latest_version

    async def test_two_processes_publish_distinct_consecutive_versions(self, tmp_path: Path) -> None:
        root = tmp_path / "store"
        await _create(root, "crash")
        children = [_start_child(root, tmp_path, str(w), 40) for w in range(2)]
        outputs = [c.communicate(timeout=120) for c in children]
        assert [c.returncode for c in children] == [0, 0], [err for _, err in outputs]
        versions = [v for out, _ in outputs for v in _acks(out)]
        assert sorted(versions) == list(range(2, 82))
        store = FilePolicyStore(root)
        docs = await store.list_versions("crash")
        assert [d.parent_version for d in docs] == [None, *range(1, 81)]
        assert {e.actor for e in await store.list_audit("crash")} == {"tester", "w0", "w1"}
