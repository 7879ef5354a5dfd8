"""The container files: compose.yaml as Docker Compose resolves it, and the Dockerfile's shape.

No Docker engine runs here; Debian's `docker-compose` (1.29) validates and resolves compose.yaml without
one. Its output is YAML, read by the interpreter that runs docker-compose (which has PyYAML by need).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")

needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose is not installed (Debian package docker-compose; .ci/run installs it as root)",
)


def _interpreter_of(script: str) -> list[str]:
    first = Path(script).read_bytes().split(b"\n", 1)[0].decode()
    return first[2:].split() if first.startswith("#!") else []


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml after `docker-compose config`: validated, merged, interpolated with defaults."""
    assert COMPOSE is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIMSVC_", "POSTGRES_"))}
    done = subprocess.run(
        [COMPOSE, "-f", "compose.yaml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    to_json = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    interpreter = _interpreter_of(COMPOSE) or ["python3"]
    converted = subprocess.run(
        [*interpreter, "-c", to_json], input=done.stdout, capture_output=True, text=True, timeout=60
    )
    assert converted.returncode == 0, converted.stderr
    return dict(json.loads(converted.stdout))


def _check(service: dict[str, Any]) -> str:
    return " ".join(service["healthcheck"]["test"])


@needs_compose
def test_compose_runs_the_whole_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "migrate", "web", "worker", "proxy"}


@needs_compose
def test_two_web_and_two_worker_replicas_behind_one_published_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["proxy"]
    assert len(published["proxy"]) == 1
    assert str(published["proxy"][0]["target"]) == "8080"
    mounts = services["proxy"]["volumes"]
    assert any(m.endswith("deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro") for m in mounts), mounts
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_proxy_round_robins_over_every_web_replica_and_follows_dns_changes() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", conf, re.M), "Docker's DNS"
    assert re.search(r"^\s*server web:8080 resolve\b", conf, re.M), "re-resolved, so every replica is used"
    assert re.search(r"^\s*zone \w+ ", conf, re.M), "`resolve` needs a shared-memory zone"
    assert "least_conn" not in conf and "ip_hash" not in conf and "hash " not in conf  # plain round robin
    assert re.search(r"proxy_pass http://scimsvc_web;", conf)


@needs_compose
def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in _check(services["postgres"])
    assert "ping" in _check(services["redis"])
    assert "/ops/ready" in _check(services["web"])
    assert "/ops/health" in _check(services["proxy"])
    worker = services["worker"]
    port = worker["environment"]["SCIMSVC_WORKER_METRICS_PORT"]
    assert port not in ("", "0")
    assert f"127.0.0.1:{port}/metrics" in _check(worker)
    # The image's check is for the web role; the one-shot migration has none.
    assert services["migrate"]["healthcheck"]["test"] == ["NONE"]


@needs_compose
def test_postgres_and_redis_keep_their_folders_in_named_volumes(compose: dict[str, Any]) -> None:
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        mounts = compose["services"][name]["volumes"]
        volume = next(m.split(":")[0] for m in mounts if m.split(":")[1] == target)
        assert volume in compose["volumes"], (name, mounts)


@needs_compose
def test_migrate_runs_once_and_web_and_worker_wait_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["scimsvc", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate.get("deploy", {}).get("replicas", 1) == 1
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert {services[n]["image"] for n in ("migrate", "web", "worker")} == {"scimsvc:local"}


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, "the Dockerfile starts with FROM"
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def test_image_is_built_in_stages_and_runs_the_installed_wheel_as_a_regular_user() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert re.fullmatch(r"\S+ AS builder", builder[0][1], re.I)
    assert any(i == "RUN" and "pip wheel" in a for i, a in builder)
    assert any(i == "COPY" and a.startswith("--from=builder") for i, a in runtime)
    installs = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert installs and all(".whl" in a for a in installs), "the runtime installs the wheel, not the source"
    assert not any(i == "COPY" and not a.startswith("--from=") for i, a in runtime), "no source in the image"
    assert any("available_migrations" in a for i, a in runtime if i == "RUN"), "migrations ship in the wheel"
    users = [a for i, a in runtime if i == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    checks = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert len(checks) == 1 and "/ops/health" in checks[0] and "127.0.0.1:8080" in checks[0]


def test_docker_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".local", "tests"} <= ignored
