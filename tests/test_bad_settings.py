"""A setting that cannot be used stops a command at once: one line naming the variable, exit status 2
(3 for `scimsvc queue`), never a traceback; and every command's --help lists what it reads, with
Settings' own defaults."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from scimsvc.settings import Settings
from tests.conftest import free_port

DEADLINE = 120  # seconds; only bounds a hang
ROOT = Path(__file__).resolve().parent.parent


def _env(**values: str) -> dict[str, str]:
    """No SCIMSVC_* setting of the developer's; PostgreSQL and Redis on ports where nothing listens.

    A command that did not check a setting before using the stores would fail there instead (exit 1,
    a connection error), so only the check itself can give the line and the status asserted.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMSVC_")}
    closed = {
        "SCIMSVC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/scimsvc",
        "SCIMSVC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SCIMSVC_PORT": str(free_port()),
    }
    return env | closed | values


def scimsvc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m scimsvc ARGS` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "scimsvc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=ROOT,
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The only line the command wrote on stderr, which must be an error line and no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("scimsvc: error: "), out.stderr
    return lines[0]


TENANT = str(uuid.uuid4())

BAD_SETTINGS = [
    # (command, variable, value, what the line says)
    (
        "serve",
        "SCIMSVC_PORTAL_SESSION_HOURS",
        "0",
        "SCIMSVC_PORTAL_SESSION_HOURS must be from 1 to 720, got '0'",
    ),
    (
        "portal-link " + TENANT,
        "SCIMSVC_PORTAL_LINK_MINUTES",
        "20000",
        "SCIMSVC_PORTAL_LINK_MINUTES must be from 1 to 10080, got '20000'",
    ),
    (
        "serve",
        "SCIMSVC_TOKEN_LAST_USED_SECONDS",
        "0",
        "SCIMSVC_TOKEN_LAST_USED_SECONDS must be from 1 to 3600, got '0'",
    ),
    ("serve", "SCIMSVC_DB_POOL_MAX", "0", "SCIMSVC_DB_POOL_MAX must be 1 or more, got '0'"),
    ("serve", "SCIMSVC_DB_WAIT_SECONDS", "0", "SCIMSVC_DB_WAIT_SECONDS must be from 1 to 600, got '0'"),
    (
        "serve",
        "SCIMSVC_DB_POOL_MIN",
        "20",
        "SCIMSVC_DB_POOL_MIN must not be above SCIMSVC_DB_POOL_MAX (10), got '20'",
    ),
    (
        "serve",
        "SCIMSVC_TRUSTED_PROXIES",
        "garbage",
        "SCIMSVC_TRUSTED_PROXIES must be IP addresses or networks separated by commas: "
        "not an IP address or network: 'garbage'",
    ),
    (
        "migrate",
        "SCIMSVC_DATABASE_URL",
        "notaurl",
        "SCIMSVC_DATABASE_URL must be a URL starting with postgresql:// or postgres://, got 'notaurl'",
    ),
    (
        "token create " + TENANT,
        "SCIMSVC_DATABASE_URL",
        "mysql://127.0.0.1:3306/scimsvc",
        "SCIMSVC_DATABASE_URL must be a URL starting with postgresql:// or postgres://",
    ),
    (
        "migrate",
        "SCIMSVC_DATABASE_URL",
        "postgresql://127.0.0.1:99999/scimsvc",
        "SCIMSVC_DATABASE_URL must have ports from 1 to 65535 (not '99999')",
    ),
    (  # what asyncpg itself refuses among the URL's parameters
        "migrate",
        "SCIMSVC_DATABASE_URL",
        "postgresql://127.0.0.1:5432/scimsvc?sslmode=sometimes",
        "SCIMSVC_DATABASE_URL cannot be used: `sslmode` parameter must be one of",
    ),
    (
        "worker",
        "SCIMSVC_REDIS_URL",
        "http://127.0.0.1:6379/0",
        "SCIMSVC_REDIS_URL must be a URL starting with redis://, rediss:// or unix://",
    ),
    (
        "serve",
        "SCIMSVC_REDIS_URL",
        "redis://127.0.0.1:6379/zero",
        "SCIMSVC_REDIS_URL must end in a database number",
    ),
    (
        "tenant create Acme",
        "SCIMSVC_PUBLIC_URL",
        "scim.example.com",
        "SCIMSVC_PUBLIC_URL must be a URL starting with http:// or https://, got 'scim.example.com'",
    ),
    ("serve", "SCIMSVC_PUBLIC_URL", "https://", "SCIMSVC_PUBLIC_URL must be a URL with a host"),
    ("serve", "SCIMSVC_PORT", "65536", "SCIMSVC_PORT must be from 0 to 65535, got '65536'"),
    ("worker", "SCIMSVC_WORKER_METRICS_PORT", "70000", "SCIMSVC_WORKER_METRICS_PORT must be from 0 to 65535"),
    ("worker", "SCIMSVC_WORKER_MAX_JOBS", "0", "SCIMSVC_WORKER_MAX_JOBS must be 1 or more, got '0'"),
    (
        "worker",
        "SCIMSVC_SMTP_URL",
        "mail.example.com:25",
        "SCIMSVC_SMTP_URL must be a URL starting with smtp:// or smtps://",
    ),
    ("worker", "SCIMSVC_SMTP_FROM", "scimsvc", "SCIMSVC_SMTP_FROM must be an email address"),
    ("worker", "SCIMSVC_RETENTION_BATCH_SIZE", "0", "SCIMSVC_RETENTION_BATCH_SIZE must be 1 or more"),
    ("serve", "SCIMSVC_MAX_BODY_BYTES", "0", "SCIMSVC_MAX_BODY_BYTES must be 1 or more"),
    ("serve", "SCIMSVC_HEADER_READ_SECONDS", "0", "SCIMSVC_HEADER_READ_SECONDS must be 1 or more, got '0'"),
    ("serve", "SCIMSVC_BODY_READ_SECONDS", "30s", "SCIMSVC_BODY_READ_SECONDS must be a whole number"),
    ("up", "SCIMSVC_KEEPALIVE_SECONDS", "-5", "SCIMSVC_KEEPALIVE_SECONDS must be 1 or more, got '-5'"),
    (
        "serve",
        "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S",
        "0",
        "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S must be 1 or more",
    ),
    (
        "serve",
        "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS",
        "600",
        "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS must not be above SCIMSVC_QUEUE_STALLED_AFTER_SECONDS (300)",
    ),
    ("up", "SCIMSVC_DB_POOL_MAX", "zero", "SCIMSVC_DB_POOL_MAX must be a whole number, got 'zero'"),
    ("serve", "SCIMSVC_INTERNAL_PORT", "65536", "SCIMSVC_INTERNAL_PORT must be from 0 to 65535, got '65536'"),
    ("serve", "SCIMSVC_WEB_PROCESSES", "0", "SCIMSVC_WEB_PROCESSES must be from 1 to 256, got '0'"),
    (
        "serve",
        "SCIMSVC_LIMITER_REDIS_CLUSTER",
        "on",
        "SCIMSVC_LIMITER_REDIS_CLUSTER=on needs SCIMSVC_LIMITER_REDIS_URL, a node of the cluster",
    ),
    (
        "serve",
        "SCIMSVC_DATABASE_POOLER",
        "transaction",
        "SCIMSVC_DATABASE_POOLER=transaction needs SCIMSVC_DATABASE_DIRECT_URL: PostgreSQL without",
    ),
    (
        "migrate",
        "SCIMSVC_DATABASE_POOLER",
        "transaction",
        "SCIMSVC_DATABASE_POOLER=transaction needs SCIMSVC_DATABASE_DIRECT_URL: PostgreSQL without",
    ),
]


@pytest.mark.parametrize(("command", "variable", "value", "expected"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exits_2(command, variable, value, expected):
    out = scimsvc(*command.split(), env=_env(**{variable: value}))
    line = one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert expected in line


def test_a_bad_url_is_shown_without_its_password_or_query():
    url = "postgresql://scimsvc:hunter2@127.0.0.1:99999/scimsvc?password=hunter3"
    out = scimsvc("migrate", env=_env(SCIMSVC_DATABASE_URL=url))
    line = one_error_line(out)
    assert out.returncode == 2
    assert line == (
        "scimsvc: error: SCIMSVC_DATABASE_URL must have ports from 1 to 65535 (not '99999'), "
        "got 'postgresql://...@127.0.0.1:99999/scimsvc?...'"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCIMSVC_DB_POOL_MAX", "0"),
        ("SCIMSVC_DATABASE_URL", "notaurl"),
        ("SCIMSVC_REDIS_URL", "http://127.0.0.1:6379/0"),
        ("SCIMSVC_QUEUE_STALLED_AFTER_SECONDS", "30"),  # below the degraded threshold (60)
    ],
)
def test_queue_exits_3_for_a_bad_setting_not_2_which_means_stalled(variable, value):
    out = scimsvc("queue", env=_env(**{variable: value}))
    line = one_error_line(out)
    assert out.returncode == 3, out.stderr
    assert variable in line


def test_the_internal_port_must_differ_from_the_port_served():
    out = scimsvc("serve", "--port", "8099", env=_env(SCIMSVC_INTERNAL_PORT="8099"))
    line = one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert "SCIMSVC_INTERNAL_PORT must differ from the port served (--port/SCIMSVC_PORT), got '8099'" in line


def test_an_internal_port_in_use_is_named_as_such():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = scimsvc("serve", env=_env(SCIMSVC_INTERNAL_PORT=str(port)))
    line = one_error_line(out)
    assert out.returncode == 1, out.stderr
    assert line == (
        f"scimsvc: error: cannot listen on 127.0.0.1:{port} (SCIMSVC_INTERNAL_PORT): address already in use"
    )


# --- NAME_FILE: a setting read from a file (Docker secrets) -------------------------------------------


def test_a_setting_from_a_file_is_checked_like_the_variable_its_last_newline_dropped(tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text("notaurl\n")
    out = scimsvc("migrate", env=_env(SCIMSVC_DATABASE_URL="", SCIMSVC_DATABASE_URL_FILE=str(secret)))
    line = one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert line.endswith(
        "SCIMSVC_DATABASE_URL must be a URL starting with postgresql:// or postgres://, got 'notaurl'"
    )


def test_every_secret_may_come_from_a_file(tmp_path, monkeypatch):
    secrets = {
        "SCIMSVC_DATABASE_URL": ("database_url", "postgresql://app:pw@db.example:6432/scimsvc"),
        "SCIMSVC_DATABASE_DIRECT_URL": ("database_direct_url", "postgresql://app:pw@db.example:5432/scimsvc"),
        "SCIMSVC_ADMIN_KEY": ("admin_key", "  an admin key with spaces  "),
        "SCIMSVC_SMTP_URL": ("smtp_url", "smtps://mailer:pw@mail.example:465"),
        "SCIMSVC_APP_ROLE_PASSWORD": ("app_role_password", "role password"),
    }
    for variable in FIELDS:
        monkeypatch.delenv(variable, raising=False)
    for i, (variable, (_, value)) in enumerate(secrets.items()):
        path = tmp_path / variable
        path.write_text(value + ("\r\n" if i % 2 else "\n"))  # the one newline an editor or `echo` adds
        monkeypatch.setenv(f"{variable}_FILE", str(path))
    settings = Settings.from_env()
    assert {v: getattr(settings, field) for v, (field, _) in secrets.items()} == {
        v: value for v, (_, value) in secrets.items()
    }


@pytest.mark.parametrize("command", ["serve", "worker", "migrate", "token create " + TENANT])
def test_a_variable_and_its_file_both_set_is_one_line_naming_both(tmp_path, command):
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://postgres@127.0.0.1:5432/scimsvc\n")
    env = _env(SCIMSVC_DATABASE_URL_FILE=str(secret))  # SCIMSVC_DATABASE_URL is set too
    out = scimsvc(*command.split(), env=env)
    line = one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert line == (
        "scimsvc: error: SCIMSVC_DATABASE_URL and SCIMSVC_DATABASE_URL_FILE are both set: set one of them"
    )


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("serve", "SCIMSVC_ADMIN_KEY"),
        ("worker", "SCIMSVC_SMTP_URL"),
        ("migrate", "SCIMSVC_DATABASE_DIRECT_URL"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_naming_the_variable_and_the_path(tmp_path, command, variable):
    missing = tmp_path / "no-such-secret"
    out = scimsvc(command, env=_env(**{f"{variable}_FILE": str(missing)}))
    line = one_error_line(out)
    assert out.returncode == 2, out.stderr
    assert line == (
        f"scimsvc: error: {variable}_FILE names a file that cannot be read: {missing} "
        "(no such file or directory)"
    )


def test_an_unknown_host_to_listen_on_is_named_as_such_not_as_postgresql():
    port = free_port()
    out = scimsvc("serve", env=_env(SCIMSVC_HOST="nohost.invalid", SCIMSVC_PORT=str(port)))
    line = one_error_line(out)
    assert out.returncode == 1
    assert line.startswith(
        f"scimsvc: error: cannot listen on nohost.invalid:{port} (--host/--port, SCIMSVC_HOST/SCIMSVC_PORT): "
        "unknown host"
    )


# --- what --help lists ---------------------------------------------------------------------------

DATABASE = {"SCIMSVC_DATABASE_URL", "SCIMSVC_DATABASE_URL_FILE"}
DIRECT = {"SCIMSVC_DATABASE_DIRECT_URL", "SCIMSVC_DATABASE_DIRECT_URL_FILE"}
STORES = (
    DATABASE
    | DIRECT
    | {
        "SCIMSVC_DATABASE_POOLER",
        "SCIMSVC_REDIS_URL",
        "SCIMSVC_QUEUE_NAME",
    }
)
LOGS = {"SCIMSVC_LOG_LEVEL", "SCIMSVC_LOG_FORMAT"}
QUEUE_HEALTH = {
    "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS",
    "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS",
    "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS",
}
WEB = {
    "SCIMSVC_LIMITER_REDIS_URL",
    "SCIMSVC_LIMITER_REDIS_CLUSTER",
    "SCIMSVC_HOST",
    "SCIMSVC_PORT",
    "SCIMSVC_INTERNAL_PORT",
    "SCIMSVC_WEB_PROCESSES",
    "SCIMSVC_PUBLIC_URL",
    "SCIMSVC_ADMIN_KEY",
    "SCIMSVC_ADMIN_KEY_FILE",
    "SCIMSVC_PORTAL_SESSION_HOURS",
    "SCIMSVC_PORTAL_LINK_MINUTES",
    "SCIMSVC_DB_POOL_MIN",
    "SCIMSVC_DB_POOL_MAX",
    "SCIMSVC_DB_WAIT_SECONDS",
    "SCIMSVC_MAX_BODY_BYTES",
    "SCIMSVC_GROUP_MAX_BODY_BYTES",
    "SCIMSVC_GROUP_PATCH_MAX_BYTES",
    "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS",
    "SCIMSVC_BULK_MAX_OPERATIONS",
    "SCIMSVC_BULK_MAX_PAYLOAD_BYTES",
    "SCIMSVC_RATE_LIMIT_ENABLED",
    "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S",
    "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR",
    "SCIMSVC_RATE_LIMIT_PREFIX",
    "SCIMSVC_RATE_LIMIT_LEASE_MS",
    "SCIMSVC_AUTH_FAILURES_PER_MINUTE",
    "SCIMSVC_TRUSTED_PROXIES",
    "SCIMSVC_TOKEN_CACHE_SECONDS",
    "SCIMSVC_TOKEN_LAST_USED_SECONDS",
    "SCIMSVC_ACCESS_LOG",
    "SCIMSVC_PROVISIONING_LOG",
    "SCIMSVC_HEADER_READ_SECONDS",
    "SCIMSVC_BODY_READ_SECONDS",
    "SCIMSVC_KEEPALIVE_SECONDS",
}
WORKER = {
    "SCIMSVC_WORKER_MAX_JOBS",
    "SCIMSVC_WORKER_SHUTDOWN_SECONDS",
    "SCIMSVC_SWEEP_AFTER_SECONDS",
    "SCIMSVC_SMTP_URL",
    "SCIMSVC_SMTP_URL_FILE",
    "SCIMSVC_SMTP_FROM",
    "SCIMSVC_RETENTION_OUTBOX_DAYS",
    "SCIMSVC_RETENTION_NOTICES_DAYS",
    "SCIMSVC_RETENTION_AUDIT_DAYS",
    "SCIMSVC_RETENTION_PROVISIONING_LOG_DAYS",
    "SCIMSVC_RETENTION_EVENTS_DAYS",
    "SCIMSVC_RETENTION_BATCH_SIZE",
    "SCIMSVC_WORKER_METRICS_PORT",
}
WEBHOOKS = {
    "SCIMSVC_EVENTS",
    "SCIMSVC_WEBHOOK_SIGNING_KEY",
    "SCIMSVC_WEBHOOK_SIGNING_KEY_FILE",
    "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS",
    "SCIMSVC_WEBHOOK_ALLOW_HTTP",
    "SCIMSVC_WEBHOOK_TIMEOUT_SECONDS",
    "SCIMSVC_WEBHOOK_RETRY_HOURS",
    "SCIMSVC_WEBHOOK_DISABLE_AFTER_HOURS",
    "SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS",
}
EMBEDDED = {"SCIMSVC_DATA_DIR", "SCIMSVC_EMBEDDED_POSTGRES_PORT", "SCIMSVC_EMBEDDED_REDIS_PORT"}
READS = {
    "migrate": DATABASE
    | DIRECT
    | {"SCIMSVC_DATABASE_POOLER", "SCIMSVC_APP_ROLE_PASSWORD", "SCIMSVC_APP_ROLE_PASSWORD_FILE"}
    | LOGS,
    "serve": STORES | WEB | QUEUE_HEALTH | WEBHOOKS | LOGS,
    "worker": STORES | WORKER | WEBHOOKS | LOGS,
    "up": STORES | WEB | QUEUE_HEALTH | WORKER | WEBHOOKS | EMBEDDED | LOGS,
    "tenant create": DATABASE
    | {"SCIMSVC_PUBLIC_URL", "SCIMSVC_REDIS_URL", "SCIMSVC_QUEUE_NAME", "SCIMSVC_EVENTS"},
    "token create": DATABASE | {"SCIMSVC_REDIS_URL", "SCIMSVC_QUEUE_NAME", "SCIMSVC_EVENTS"},
    "token revoke": DATABASE | {"SCIMSVC_REDIS_URL", "SCIMSVC_QUEUE_NAME", "SCIMSVC_EVENTS"},
    "portal-link": DATABASE
    | {
        "SCIMSVC_PUBLIC_URL",
        "SCIMSVC_PORTAL_LINK_MINUTES",
        "SCIMSVC_REDIS_URL",
        "SCIMSVC_QUEUE_NAME",
        "SCIMSVC_EVENTS",
    },
    "queue": STORES | QUEUE_HEALTH,
}

# The Settings field behind each variable (as Settings.from_env reads them).
FIELDS = {
    "SCIMSVC_DATABASE_URL": "database_url",
    "SCIMSVC_DATABASE_POOLER": "database_pooler",
    "SCIMSVC_DATABASE_DIRECT_URL": "database_direct_url",
    "SCIMSVC_APP_ROLE_PASSWORD": "app_role_password",
    "SCIMSVC_REDIS_URL": "redis_url",
    "SCIMSVC_LIMITER_REDIS_URL": "limiter_redis_url",
    "SCIMSVC_LIMITER_REDIS_CLUSTER": "limiter_redis_cluster",
    "SCIMSVC_QUEUE_NAME": "queue_name",
    "SCIMSVC_PUBLIC_URL": "public_url",
    "SCIMSVC_ADMIN_KEY": "admin_key",
    "SCIMSVC_PORTAL_SESSION_HOURS": "portal_session_hours",
    "SCIMSVC_PORTAL_LINK_MINUTES": "portal_link_minutes",
    "SCIMSVC_DB_POOL_MIN": "db_pool_min",
    "SCIMSVC_DB_POOL_MAX": "db_pool_max",
    "SCIMSVC_DB_WAIT_SECONDS": "db_wait_seconds",
    "SCIMSVC_MAX_BODY_BYTES": "max_body_bytes",
    "SCIMSVC_GROUP_MAX_BODY_BYTES": "group_max_body_bytes",
    "SCIMSVC_GROUP_PATCH_MAX_BYTES": "group_patch_max_bytes",
    "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS": "group_patch_max_member_ops",
    "SCIMSVC_BULK_MAX_OPERATIONS": "bulk_max_operations",
    "SCIMSVC_BULK_MAX_PAYLOAD_BYTES": "bulk_max_payload_bytes",
    "SCIMSVC_RATE_LIMIT_ENABLED": "rate_limit_enabled",
    "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S": "rate_limit_credits",
    "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR": "rate_limit_on_redis_error",
    "SCIMSVC_RATE_LIMIT_PREFIX": "rate_limit_prefix",
    "SCIMSVC_RATE_LIMIT_LEASE_MS": "rate_limit_lease_ms",
    "SCIMSVC_AUTH_FAILURES_PER_MINUTE": "auth_failures_per_minute",
    "SCIMSVC_TRUSTED_PROXIES": "trusted_proxies",
    "SCIMSVC_TOKEN_CACHE_SECONDS": "token_cache_seconds",
    "SCIMSVC_TOKEN_LAST_USED_SECONDS": "token_last_used_seconds",
    "SCIMSVC_ACCESS_LOG": "access_log",
    "SCIMSVC_PROVISIONING_LOG": "provisioning_log",
    "SCIMSVC_EVENTS": "events",
    "SCIMSVC_WEBHOOK_SIGNING_KEY": "webhook_signing_key",
    "SCIMSVC_WEBHOOK_ALLOWED_NETWORKS": "webhook_allowed_networks",
    "SCIMSVC_WEBHOOK_ALLOW_HTTP": "webhook_allow_http",
    "SCIMSVC_WEBHOOK_TIMEOUT_SECONDS": "webhook_timeout_seconds",
    "SCIMSVC_WEBHOOK_RETRY_HOURS": "webhook_retry_hours",
    "SCIMSVC_WEBHOOK_DISABLE_AFTER_HOURS": "webhook_disable_after_hours",
    "SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS": "webhook_secret_overlap_hours",
    "SCIMSVC_HEADER_READ_SECONDS": "header_read_seconds",
    "SCIMSVC_BODY_READ_SECONDS": "body_read_seconds",
    "SCIMSVC_KEEPALIVE_SECONDS": "keepalive_seconds",
    "SCIMSVC_INTERNAL_PORT": "internal_port",
    "SCIMSVC_WEB_PROCESSES": "web_processes",
    "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS": "queue_degraded_after_seconds",
    "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS": "queue_stalled_after_seconds",
    "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS": "worker_heartbeat_stale_seconds",
    "SCIMSVC_WORKER_MAX_JOBS": "worker_max_jobs",
    "SCIMSVC_WORKER_SHUTDOWN_SECONDS": "worker_shutdown_seconds",
    "SCIMSVC_SWEEP_AFTER_SECONDS": "sweep_after_seconds",
    "SCIMSVC_SMTP_URL": "smtp_url",
    "SCIMSVC_SMTP_FROM": "smtp_from",
    "SCIMSVC_RETENTION_OUTBOX_DAYS": "retention_outbox_days",
    "SCIMSVC_RETENTION_NOTICES_DAYS": "retention_notices_days",
    "SCIMSVC_RETENTION_AUDIT_DAYS": "retention_audit_days",
    "SCIMSVC_RETENTION_PROVISIONING_LOG_DAYS": "retention_provisioning_log_days",
    "SCIMSVC_RETENTION_EVENTS_DAYS": "retention_events_days",
    "SCIMSVC_RETENTION_BATCH_SIZE": "retention_batch_size",
    "SCIMSVC_WORKER_METRICS_PORT": "worker_metrics_port",
}


@pytest.fixture(scope="module")
def listed() -> dict[str, dict[str, str]]:
    """command -> {variable: its text} from the `environment:` part of `scimsvc COMMAND --help`."""
    found: dict[str, dict[str, str]] = {}
    for command in READS:
        out = scimsvc(*command.split(), "--help", env=_env())
        assert out.returncode == 0, out.stderr
        section = out.stdout.partition("\nenvironment:\n")[2].partition("\n\n")[0]
        entries: dict[str, str] = {}
        for line in section.splitlines():
            if re.match(r"  SCIMSVC_", line):
                name, _, text = line.strip().partition(" ")
                entries[name] = text.strip()
            else:  # the text goes on, indented
                entries[name] += " " + line.strip()
        found[command] = entries
    return found


@pytest.mark.parametrize("command", list(READS))
def test_help_lists_every_variable_the_command_reads(listed, command):
    assert set(listed[command]) == READS[command]


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "empty" if value == "" else str(value)


def test_help_shows_the_defaults_of_settings(listed):
    defaults = Settings()
    checked = 0
    for command, entries in listed.items():
        for name, text in entries.items():
            if name not in FIELDS or (name == "SCIMSVC_PUBLIC_URL" and command in ("serve", "up")):
                continue
            assert text.endswith(f"(default {_shown(getattr(defaults, FIELDS[name]))})"), (
                command,
                name,
                text,
            )
            checked += 1
    assert checked >= len(FIELDS)
    # serve and up: without SCIMSVC_PUBLIC_URL, the address served is the public one.
    assert listed["serve"]["SCIMSVC_PUBLIC_URL"].endswith("(default http://HOST:PORT served)")
    assert listed["serve"]["SCIMSVC_PORT"].endswith("(default 8080)")


def test_every_setting_read_is_listed_under_up_and_described_in_the_readme(listed):
    source = (ROOT / "scimsvc" / "settings.py").read_text()
    read = set(re.findall(r'"(SCIMSVC_[A-Z0-9_]+)"', source))
    assert set(FIELDS) == read  # this test's map covers every variable Settings.from_env reads
    only_migrate = {"SCIMSVC_APP_ROLE_PASSWORD"}  # `up` migrates without --app-role
    assert read - only_migrate <= set(listed["up"])
    assert only_migrate <= set(listed["migrate"])
    readme = (ROOT / "README.md").read_text()
    assert {name for name in set(listed["up"]) | read if f"`{name}`" not in readme} == set()
