"""Configuration from the environment, in one frozen dataclass with defaults that work on this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass


class SettingsError(ValueError):
    """A setting whose value cannot be used; the message names the variable and what it expects."""


def _env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise SettingsError(f"{name} must be {bounds}, got {raw!r}")
    return value


FALSE_WORDS = ("0", "false", "no", "off")
TRUE_WORDS = ("1", "true", "yes", "on")


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in FALSE_WORDS + TRUE_WORDS:
        raise SettingsError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {raw!r}")
    return raw in TRUE_WORDS


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (os.environ.get(name, "").strip() or default).lower()
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the web front end, the worker and the CLI read from the environment."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/scimsvc"
    redis_url: str = "redis://127.0.0.1:6379/0"
    admin_key: str = ""  # empty: the admin API answers 403 until SCIMSVC_ADMIN_KEY is set
    public_url: str = "http://127.0.0.1:8080"  # base for meta.location
    queue_name: str = "scimsvc:queue"
    db_pool_min: int = 2
    db_pool_max: int = 10
    max_body_bytes: int = 1_048_576
    default_page_size: int = 100
    max_page_size: int = 1000
    sweep_after_seconds: int = 10  # outbox rows older than this and unapplied are re-enqueued
    enqueue_timeout_seconds: float = 1.0
    worker_max_jobs: int = 20
    worker_shutdown_seconds: int = 25  # on SIGTERM/SIGINT, running jobs get this long to finish
    smtp_url: str = ""  # smtp://[user:password@]host[:port] or smtps://...; empty: notices are not sent
    smtp_from: str = "scimsvc@localhost"
    notice_max_attempts: int = 8
    # Retention (worker/retention.py): finished rows are deleted this many days old; 0 keeps them forever.
    retention_outbox_days: int = 7  # applied outbox rows, counted from when they were applied
    retention_notices_days: int = 30  # sent, not sent or failed notices, with their delivery attempts
    retention_audit_days: int = 400  # audit log rows
    retention_batch_size: int = 1000  # rows per delete statement (each its own short transaction)
    group_max_body_bytes: int = 16_777_216  # POST/PUT /Groups: a 50,000-member push is about 3 MB
    group_patch_max_bytes: int = 800_000
    group_patch_max_member_ops: int = 8000
    bulk_max_operations: int = 1000  # POST /Bulk: operations per request (maxOperations)
    bulk_max_payload_bytes: int = 1_048_576  # POST /Bulk: body size (maxPayloadSize, at most max_body_bytes)
    rate_limit_enabled: bool = True  # per-tenant credit budgets on SCIM routes (DESIGN §6)
    rate_limit_credits: int = 400_000  # default per 30 s: 25+ requests/s of any user route, even DELETE
    rate_limit_on_redis_error: str = "open"  # open: admit (logged); closed: 503 with Retry-After
    rate_limit_prefix: str = "scimsvc:rl"  # Redis key prefix of the buckets
    rate_limit_lease_ms: int = 1000  # credits leased to a process for a tenant live this long; 0: off
    auth_failures_per_minute: int = 30  # wrong SCIM tokens / admin keys per client address
    trusted_proxies: str = ""  # CIDRs of reverse proxies whose X-Forwarded-For names the client
    queue_degraded_after_seconds: int = 60  # /ops/queue: oldest unapplied change older than this
    queue_stalled_after_seconds: int = 300
    worker_heartbeat_stale_seconds: int = 30  # a worker beats every 10 s
    worker_metrics_port: int = 0  # a worker serves Prometheus /metrics here; 0: off
    token_cache_seconds: int = 5  # web: valid SCIM tokens cached this long, emptied on any change; 0: off
    access_log: bool = True  # web: one JSON line per request on the `scimsvc.access` logger

    @property
    def bulk_payload_limit(self) -> int:
        """The largest /Bulk body accepted: a bulk body is read under the app-wide limit too."""
        return min(self.bulk_max_payload_bytes, self.max_body_bytes)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read `SCIMSVC_*` variables; keyword overrides win (tests and the CLI use them)."""
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("SCIMSVC_DATABASE_URL") or cls.database_url,
            "redis_url": env.get("SCIMSVC_REDIS_URL") or cls.redis_url,
            "admin_key": env.get("SCIMSVC_ADMIN_KEY", ""),
            "public_url": (env.get("SCIMSVC_PUBLIC_URL") or cls.public_url).rstrip("/"),
            "queue_name": env.get("SCIMSVC_QUEUE_NAME") or cls.queue_name,
            "db_pool_min": _env_int("SCIMSVC_DB_POOL_MIN", cls.db_pool_min),
            "db_pool_max": _env_int("SCIMSVC_DB_POOL_MAX", cls.db_pool_max),
            "max_body_bytes": _env_int("SCIMSVC_MAX_BODY_BYTES", cls.max_body_bytes),
            "sweep_after_seconds": _env_int("SCIMSVC_SWEEP_AFTER_SECONDS", cls.sweep_after_seconds),
            "worker_max_jobs": _env_int("SCIMSVC_WORKER_MAX_JOBS", cls.worker_max_jobs),
            "worker_shutdown_seconds": _env_int(
                "SCIMSVC_WORKER_SHUTDOWN_SECONDS", cls.worker_shutdown_seconds
            ),
            "smtp_url": env.get("SCIMSVC_SMTP_URL", ""),
            "smtp_from": env.get("SCIMSVC_SMTP_FROM") or cls.smtp_from,
            "retention_outbox_days": _env_int("SCIMSVC_RETENTION_OUTBOX_DAYS", cls.retention_outbox_days),
            "retention_notices_days": _env_int("SCIMSVC_RETENTION_NOTICES_DAYS", cls.retention_notices_days),
            "retention_audit_days": _env_int("SCIMSVC_RETENTION_AUDIT_DAYS", cls.retention_audit_days),
            "retention_batch_size": _env_int("SCIMSVC_RETENTION_BATCH_SIZE", cls.retention_batch_size),
            "group_max_body_bytes": _env_int("SCIMSVC_GROUP_MAX_BODY_BYTES", cls.group_max_body_bytes),
            "group_patch_max_bytes": _env_int("SCIMSVC_GROUP_PATCH_MAX_BYTES", cls.group_patch_max_bytes),
            "group_patch_max_member_ops": _env_int(
                "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS", cls.group_patch_max_member_ops
            ),
            "bulk_max_operations": _env_int("SCIMSVC_BULK_MAX_OPERATIONS", cls.bulk_max_operations),
            "bulk_max_payload_bytes": _env_int("SCIMSVC_BULK_MAX_PAYLOAD_BYTES", cls.bulk_max_payload_bytes),
            "rate_limit_enabled": _env_bool("SCIMSVC_RATE_LIMIT_ENABLED", cls.rate_limit_enabled),
            "rate_limit_credits": _env_int("SCIMSVC_RATE_LIMIT_CREDITS_PER_30S", cls.rate_limit_credits),
            "rate_limit_on_redis_error": _env_choice(
                "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR", ("open", "closed"), cls.rate_limit_on_redis_error
            ),
            "rate_limit_prefix": env.get("SCIMSVC_RATE_LIMIT_PREFIX") or cls.rate_limit_prefix,
            "rate_limit_lease_ms": _env_int("SCIMSVC_RATE_LIMIT_LEASE_MS", cls.rate_limit_lease_ms),
            "auth_failures_per_minute": _env_int(
                "SCIMSVC_AUTH_FAILURES_PER_MINUTE", cls.auth_failures_per_minute
            ),
            "trusted_proxies": env.get("SCIMSVC_TRUSTED_PROXIES", ""),
            "queue_degraded_after_seconds": _env_int(
                "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS", cls.queue_degraded_after_seconds
            ),
            "queue_stalled_after_seconds": _env_int(
                "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS", cls.queue_stalled_after_seconds
            ),
            "worker_heartbeat_stale_seconds": _env_int(
                "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS", cls.worker_heartbeat_stale_seconds
            ),
            "worker_metrics_port": _env_int("SCIMSVC_WORKER_METRICS_PORT", cls.worker_metrics_port),
            "token_cache_seconds": _env_int("SCIMSVC_TOKEN_CACHE_SECONDS", cls.token_cache_seconds),
            "access_log": _env_bool("SCIMSVC_ACCESS_LOG", cls.access_log),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
