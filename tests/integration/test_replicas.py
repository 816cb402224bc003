"""Two real `csrm serve` processes on two loopback ports sharing one PostgreSQL policy store.

The replicas reach PostgreSQL through an in-process TCP proxy (`tests.tcp_proxy`), so a database outage is
simulated by closing the proxy, without touching the shared server. Everything goes over HTTP: policies are
published and promoted with the admin API, scores come from `POST /v1/score`.

The tests of this module share one pair of servers (starting them costs seconds) and run in file order; the
outage test comes last and restores the proxy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.pgtools import require_postgres, store_url, temporary_schema
from tests.tcp_proxy import TcpProxy, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POLICY = "replica-test"
PROPAGATION_DEADLINE_S = 5.0  # the bound for a change on one replica to be served by the other
START_DEADLINE_S = 180.0


@dataclass
class Replica:
    """One `csrm serve` process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Cluster:
    """The replicas, the proxy in front of PostgreSQL, the admin key and the database coordinates."""

    replicas: list[Replica]
    proxy: TcpProxy
    admin_key: str
    server: str
    schema: str
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def a(self) -> Replica:
        return self.replicas[0]

    @property
    def b(self) -> Replica:
        return self.replicas[1]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def score(self, replica: Replica, **extra: Any) -> httpx.Response:
        body = {"policy": POLICY, "items": [{"prompt": "how do i bake a cake", "response": "mix flour and eggs"}]}
        return httpx.post(f"{replica.url}/v1/score", json={**body, **extra}, headers=self.headers(), timeout=30)

    def publish(self, replica: Replica, text: str) -> httpx.Response:
        return httpx.post(f"{replica.url}/v1/policies/{POLICY}/versions", json={"policy": {"spec": {"text": text}}},
                          headers=self.headers(), timeout=30)  # fmt: skip

    def promote(self, replica: Replica, version: int) -> httpx.Response:
        return httpx.put(f"{replica.url}/v1/policies/{POLICY}/aliases/stable", json={"version": version},
                         headers=self.headers(), timeout=30)  # fmt: skip

    def served_version(self, replica: Replica) -> int:
        response = self.score(replica)
        assert response.status_code == 200, response.text
        return int(response.json()["policy"]["version"])


def _csrm() -> list[str]:
    script = Path(sys.executable).with_name("csrm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


def _start(name: str, model: Path, env: dict[str, str], workdir: Path) -> Replica:
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*_csrm(), "serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(model)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
    return Replica(name, port, process, log)


def _wait_ready(replica: Replica, deadline: float) -> None:
    while True:
        assert replica.process.poll() is None, f"{replica.name} exited:\n{replica.logs()}"
        try:
            if httpx.get(f"{replica.url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{replica.name} not ready:\n{replica.logs()}"
        time.sleep(0.2)


def _stop(replica: Replica) -> None:
    if replica.process.poll() is None:
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()


def _create_admin_key(keys_file: Path, env: dict[str, str]) -> str:
    done = subprocess.run([*_csrm(), "keys", "--keys-file", str(keys_file), "create", "--role", "admin",
                           "--name", "ops"], env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster(tiny_encoder_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = require_postgres()
    workdir = tmp_path_factory.mktemp("replicas")
    parts = urlsplit(server)
    with temporary_schema(server) as schema, TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxied = parts._replace(netloc=f"{parts.username + '@' if parts.username else ''}127.0.0.1:{proxy.port}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CSRM_")},
            "CSRM_POLICY_STORE": store_url(proxied.geturl(), schema),
            "CSRM_STORE__SEED_LIBRARY": "false",
            "CSRM_KEYS_FILE": str(workdir / "keys.json"),
            "CSRM_DEFAULT_POLICY": POLICY,
            "CSRM_DEVICE": "cpu",
            "CSRM_LOG_LEVEL": "warning",
        }
        admin_key = _create_admin_key(workdir / "keys.json", env)
        replicas = [_start(name, tiny_encoder_checkpoint, env, workdir) for name in ("a", "b")]
        try:
            deadline = time.monotonic() + START_DEADLINE_S
            for replica in replicas:
                _wait_ready(replica, deadline)
            running = Cluster(replicas, proxy, admin_key, server, schema)
            created = httpx.post(f"{running.a.url}/v1/policies", headers=running.headers(), timeout=30,
                                 json={"policy": {"id": POLICY, "spec": {"text": "no weapons allowed"}}})
            assert created.status_code in (200, 201), created.text
            yield running
        finally:
            for replica in replicas:
                _stop(replica)


def _until(check: Callable[[], bool], deadline_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline_s, f"{what}: not within {deadline_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_both_replicas_serve_the_shared_policy(cluster: Cluster) -> None:
    assert cluster.served_version(cluster.a) == 1
    assert cluster.served_version(cluster.b) == 1


def test_publish_and_promotion_on_a_is_served_by_b(cluster: Cluster) -> None:
    cluster.served_version(cluster.b)  # B has the current head cached
    published = cluster.publish(cluster.a, "no weapons and no drugs allowed")
    assert published.status_code in (200, 201), published.text
    version = int(published.json()["document"]["version"])
    promoted = cluster.promote(cluster.a, version)
    assert promoted.status_code in (200, 204), promoted.text
    took = _until(lambda: cluster.served_version(cluster.b) == version, PROPAGATION_DEADLINE_S,
                  "promotion on A served by B")  # fmt: skip
    cluster.measured["propagation_s"] = took
    print(f"\npromotion on replica A served by replica B after {took * 1000:.0f} ms")
    assert cluster.served_version(cluster.a) == version


def test_concurrent_publishes_through_both_replicas(cluster: Cluster) -> None:
    before = httpx.get(f"{cluster.a.url}/v1/policies/{POLICY}/versions", headers=cluster.headers(), timeout=30)
    assert before.status_code == 200, before.text
    start = max(int(v["version"]) for v in _items(before.json()))

    async def publish_all(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=cluster.headers(), timeout=60) as client:
            return await asyncio.gather(*(
                client.post(f"{cluster.replicas[i % 2].url}/v1/policies/{POLICY}/versions",
                            json={"policy": {"spec": {"text": f"no weapons allowed {i}"}}}, )
                for i in range(n)
            ))  # fmt: skip

    responses = asyncio.run(publish_all(16))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    versions = sorted(int(r.json()["document"]["version"]) for r in responses)
    assert versions == list(range(start + 1, start + 17))

    audit = httpx.get(f"{cluster.b.url}/v1/policies/{POLICY}/audit", headers=cluster.headers(), timeout=30)
    assert audit.status_code == 200, audit.text
    published = [e["version"] for e in _items(audit.json()) if e["action"] == "publish"]
    assert sorted(published) == list(range(2, start + 17))
    query = f"SELECT count(*), count(DISTINCT version) FROM {cluster.schema}.policy_audit WHERE policy_id = %s " \
            "AND action = 'publish'"  # fmt: skip
    with psycopg.connect(cluster.server) as conn:
        rows = conn.execute(query, (POLICY,)).fetchone()
    assert rows == (start + 15, start + 15)


def test_database_outage_and_recovery(cluster: Cluster) -> None:
    assert cluster.publish(cluster.b, "published, not promoted").status_code == 201  # moves the change counter
    for replica in cluster.replicas:  # both caches hold the current head and text
        cluster.served_version(replica)
    cluster.proxy.down()
    time.sleep(1.5)  # past the registries' 1 s poll of the store's version token: they poll it during the outage
    try:
        for replica in cluster.replicas:
            response = cluster.score(replica)
            assert response.status_code == 200, response.text
            ready = httpx.get(f"{replica.url}/readyz", timeout=10)
            assert ready.status_code == 200  # degraded: still scoring from the registry's cache
            body = ready.json()
            assert body["status"] == "degraded"
            assert body["checks"]["store"] is False and body["checks"]["model_loaded"] is True
            assert "policy store" in body["detail"], body
        refused = cluster.publish(cluster.a, "written during the outage")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "STORE_UNAVAILABLE"
    finally:
        cluster.proxy.up()

    for replica in cluster.replicas:
        _until(_ready_check(replica), 30.0, f"{replica.name} ready again")
    published = cluster.publish(cluster.a, "no weapons allowed after the outage")
    assert published.status_code in (200, 201), published.text
    version = int(published.json()["document"]["version"])
    assert cluster.promote(cluster.a, version).status_code in (200, 204)
    _until(lambda: cluster.served_version(cluster.b) == version, PROPAGATION_DEADLINE_S, "promotion after recovery")


def _ready_check(replica: Replica) -> Callable[[], bool]:
    return lambda: httpx.get(f"{replica.url}/readyz", timeout=10).json().get("status") == "ready"


def _items(body: Any) -> list[dict[str, Any]]:
    """The list in a listing response (a bare list or the first list-valued field)."""
    if isinstance(body, list):
        return body
    return next(v for v in body.values() if isinstance(v, list))
