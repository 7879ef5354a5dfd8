"""Configuration from the environment, in one frozen dataclass with defaults that work on this machine."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# `serve --processes` / SCIMSVC_WEB_PROCESSES at most.
MAX_WEB_PROCESSES = 256


class SettingsError(ValueError):
    """A setting whose value cannot be used; the message names the variable and what it expects."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(raw: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 127.0.0.1` → networks; raises ValueError naming a bad entry."""
    networks = []
    for part in raw.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {part.strip()!r}") from None
    return tuple(networks)


def env_value(name: str) -> str:
    """`name` as set, or the content of the file `name`_FILE names, trailing newline dropped ("" if neither).

    Every variable read here may come from a file (Docker and Kubernetes secrets mount them), so a secret
    need not sit in the environment (README.md, Docker Compose). Both set is an error: which one wins
    would be a guess.
    """
    path = os.environ.get(f"{name}_FILE", "")
    if not path:
        return os.environ.get(name, "")
    if os.environ.get(name):
        raise SettingsError(f"{name} and {name}_FILE are both set: set one of them")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        problem = f"names a file that cannot be read: {path} ({reason.lower()})"
        raise SettingsError(f"{name}_FILE {problem}") from None
    return text.removesuffix("\n").removesuffix("\r")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """`name` as a whole number from `minimum` to `maximum`, or `default` when unset or empty."""
    raw = env_value(name).strip()
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


def env_bool(name: str, default: bool) -> bool:
    """`name` as a switch (1/0, true/false, yes/no, on/off), or `default` when unset or empty."""
    raw = env_value(name).strip().lower()
    if not raw:
        return default
    if raw not in FALSE_WORDS + TRUE_WORDS:
        raise SettingsError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {raw!r}")
    return raw in TRUE_WORDS


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """`name` as one of `choices` (any case), or `default` when unset or empty."""
    raw = (env_value(name).strip() or default).lower()
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def env_str(name: str, default: str) -> str:
    """`name` as it is, or `default` when unset or empty."""
    return env_value(name) or default


# The URL schemes each client accepts: asyncpg; redis-py and arq; browsers and IdPs; worker/notices.py.
POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")
HTTP_SCHEMES = ("http", "https")
SMTP_SCHEMES = ("smtp", "smtps")


def _shown(url: str) -> str:
    """`url` as an error message may show it: no user, password or query (which may hold a password)."""
    head, at, tail = url.partition("?")[0].rpartition("@")
    if not at:
        return url.partition("?")[0] + ("?..." if "?" in url else "")
    scheme = head.partition("://")[0] if "://" in head else ""
    return (f"{scheme}://" if scheme.isalnum() else "") + "...@" + tail + ("?..." if "?" in url else "")


def _port(host: str) -> str | None:
    """The port of one `host[:port]` or `[v6]:port` of a URL's netloc, as written."""
    after = host.rpartition("]")[2] if host.startswith("[") else host
    return after.rpartition(":")[2] if ":" in after else None


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """What is wrong with `url` for a client of `schemes`, or None (what each client would refuse later)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [ of an IPv6 address
        return f"must be a URL ({str(exc).lower()})"
    if parts.scheme.lower() not in schemes or not url[len(parts.scheme) :].startswith("://"):
        return (
            "must be a URL starting with "
            + ", ".join(f"{s}://" for s in schemes[:-1])
            + f" or {schemes[-1]}://"
        )
    scheme = parts.scheme.lower()
    hosts = parts.netloc.rpartition("@")[2]
    if scheme in HTTP_SCHEMES + SMTP_SCHEMES and not parts.hostname:
        return "must be a URL with a host"
    if scheme == "unix" and not parts.path:
        return "must name a socket path (unix:///path/to/redis.sock)"
    ports = [_port(host) for host in hosts.split(",")]  # PostgreSQL URLs may name several hosts
    ports += parse_qs(parts.query).get("port", []) if scheme in POSTGRES_SCHEMES else []
    for port in ports:
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"must have ports from 1 to 65535 (not {port!r})"
    if scheme in ("redis", "rediss"):  # arq reads ?db= first, else the path (redis-py skips a bad one)
        databases = parse_qs(parts.query).get("db") or ([parts.path[1:]] if parts.path else [])
        if not all(d.isdigit() for d in databases):
            return "must end in a database number (redis://host:6379/0)"
    return None


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    """`name` as a URL of one of `schemes`, or `default` when unset or empty (an empty default: no URL)."""
    url = env_value(name).strip() or default
    problem = _url_problem(url, schemes) if url else None
    if problem:
        raise SettingsError(f"{name} {problem}, got {_shown(url)!r}")
    return url


def env_networks(name: str) -> str:
    """`name` as comma-separated IP addresses or networks (CIDR), checked as client_address reads them."""
    raw = env_value(name)
    try:
        parse_networks(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be IP addresses or networks separated by commas: {exc}") from None
    return raw


def env_email(name: str, default: str) -> str:
    """`name` as an email address (`name@domain` or `Name <name@domain>`), or `default` when unset."""
    raw = env_value(name).strip() or default
    local, at, domain = parseaddr(raw)[1].rpartition("@")
    if not (local and at and domain):
        raise SettingsError(
            f"{name} must be an email address (name@domain or Name <name@domain>), got {raw!r}"
        )
    return raw


def _at_most(low_name: str, low: int, high_name: str, high: int) -> None:
    """The rule of a pair of bounds: the lower one must not be above the upper one."""
    if low > high:
        raise SettingsError(f"{low_name} must not be above {high_name} ({high}), got '{low}'")


def _cluster_url(url: str, cluster: bool) -> None:
    """The rules of SCIMSVC_LIMITER_REDIS_CLUSTER: a URL of its own, naming a node over TCP, database 0."""
    if not cluster:
        return
    if not url:
        raise SettingsError(
            "SCIMSVC_LIMITER_REDIS_CLUSTER=on needs SCIMSVC_LIMITER_REDIS_URL, a node of the cluster "
            "(SCIMSVC_REDIS_URL is the queue's, a single Redis)"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() == "unix":
        raise SettingsError(
            "SCIMSVC_LIMITER_REDIS_URL must start with redis:// or rediss:// when "
            f"SCIMSVC_LIMITER_REDIS_CLUSTER is on (a cluster is reached over TCP), got {_shown(url)!r}"
        )
    databases = parse_qs(parts.query).get("db") or [parts.path[1:]]  # digits: _url_problem checked them
    if any(int(d or 0) != 0 for d in databases):
        raise SettingsError(
            "SCIMSVC_LIMITER_REDIS_URL must use database 0 when SCIMSVC_LIMITER_REDIS_CLUSTER is on "
            f"(a Redis Cluster has no other), got {_shown(url)!r}"
        )


@dataclass(frozen=True)
class Settings:
    """Everything the web front end, the worker and the CLI read from the environment."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/scimsvc"
    # A transaction pooler (PgBouncer) in front of PostgreSQL: "transaction" turns off what it cannot carry
    # (prepared-statement cache, session settings); LISTEN and migrations use `direct_url`.
    database_pooler: str = "none"
    database_direct_url: str = ""  # PostgreSQL without the pooler; empty: database_url
    # `migrate --app-role`: the application role's password, sent as a SCRAM verifier (store/app_role.py).
    app_role_password: str = dataclasses.field(default="", repr=False)  # empty: a role keeps its own
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The hot per-request keys (rate-limit buckets and leases, failed-auth counters, page cursors) may live
    # on a Redis of their own, which may be a Redis Cluster; the arq queue stays on `redis_url`.
    limiter_redis_url: str = ""  # empty: redis_url
    limiter_redis_cluster: bool = False
    admin_key: str = ""  # empty: the admin API answers 403 until SCIMSVC_ADMIN_KEY is set
    public_url: str = "http://127.0.0.1:8080"  # base for meta.location
    # Organization admins (README.md, For organization admins): a portal session's lifetime, and how long
    # a portal link may wait to be opened unless its maker says otherwise.
    portal_session_hours: int = 8
    portal_link_minutes: int = 15
    queue_name: str = "scimsvc:queue"
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_wait_seconds: int = 5  # web: the longest a request waits for PostgreSQL (a connection, a statement)
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
    retention_provisioning_log_days: int = 30  # the provisioning log's rows
    retention_events_days: int = 30  # events, with their webhook deliveries and attempts
    retention_batch_size: int = 1000  # rows per delete statement (each its own short transaction)
    group_max_body_bytes: int = 16_777_216  # POST/PUT /Groups: a 50,000-member push is about 3 MB
    group_patch_max_bytes: int = 800_000
    group_patch_max_member_ops: int = 8000
    bulk_max_operations: int = 1000  # POST /Bulk: operations per request (maxOperations)
    bulk_max_payload_bytes: int = 1_048_576  # POST /Bulk: body size (maxPayloadSize, at most max_body_bytes)
    rate_limit_enabled: bool = True  # per-tenant credit budgets on SCIM routes (README.md, Rate limits)
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
    token_last_used_seconds: int = 60  # web: when SCIM tokens were last used is written this often
    access_log: bool = True  # web: one JSON line per request on the `scimsvc.access` logger
    # What happened (README.md, What happened): the provisioning log, events and webhooks.
    provisioning_log: bool = True  # web: every SCIM request of a tenant in its provisioning log
    events: bool = True  # every applied change becomes an event (and a webhook delivery where one is wanted)
    # Each webhook endpoint's `whsec_` secret is derived from this key; empty: no endpoint can be created.
    webhook_signing_key: str = dataclasses.field(default="", repr=False)
    webhook_allowed_networks: str = ""  # private or loopback networks webhooks may reach (else refused)
    webhook_allow_http: bool = False  # development: plain http:// to loopback addresses
    webhook_timeout_seconds: int = 10  # to connect, and to read the answer
    webhook_retry_hours: int = 72  # a delivery is retried (backoff with jitter) this long, then failed
    webhook_disable_after_hours: int = 120  # an endpoint failing this long without a success is disabled
    webhook_secret_overlap_hours: int = 24  # after a rotation the previous secret also signs this long
    # Reading a request (scimsvc/web/read_deadlines.py): past these, the web front end closes the connection.
    header_read_seconds: int = 10  # request line and headers, from a connection's or request's first byte
    body_read_seconds: int = 30  # a request body, from its complete headers: 16 MiB at about 4.5 Mbit/s
    keepalive_seconds: int = 15  # an idle kept-alive connection, from its last answer
    # web: a second listener of the same process for the operator's paths (admin API, console, /metrics,
    # /ops/queue, API docs), which the main listener then answers 404 (README.md, Docker Compose); 0: off.
    internal_port: int = 0
    # serve and up: processes on the one port (SO_REUSEPORT), each with its own pools
    # (scimsvc/web/process_group.py).
    web_processes: int = 1

    @property
    def direct_url(self) -> str:
        """PostgreSQL reached without a transaction pooler: LISTEN, migrations, session-level locks."""
        return self.database_direct_url or self.database_url

    def check_session_url(self) -> None:
        """For what holds a session (the front end's LISTEN, migrate's lock): behind a transaction pooler,
        `direct_url` must not fall back to the pooler's URL, where LISTEN hears nothing and a session lock
        can stay held on a pooled connection. The worker holds no session and does not ask."""
        if self.database_pooler == "transaction" and not self.database_direct_url:
            raise SettingsError(
                "SCIMSVC_DATABASE_POOLER=transaction needs SCIMSVC_DATABASE_DIRECT_URL: PostgreSQL without "
                "the pooler, for the token cache's LISTEN and migrate's lock"
            )

    @property
    def limiter_url(self) -> str:
        """The Redis of the per-request keys (rate limits, failed-auth counters, page cursors)."""
        return self.limiter_redis_url or self.redis_url

    @property
    def bulk_payload_limit(self) -> int:
        """The largest /Bulk body accepted: a bulk body is read under the app-wide limit too."""
        return min(self.bulk_max_payload_bytes, self.max_body_bytes)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read `SCIMSVC_*` variables; keyword overrides win (tests and the CLI use them).

        Raises SettingsError, naming the variable and what it expects, for any value that cannot be
        used: each rule is here, so a bad value stops a command at once instead of failing later.
        """
        values: dict[str, object] = {
            "database_url": env_url("SCIMSVC_DATABASE_URL", cls.database_url, schemes=POSTGRES_SCHEMES),
            "database_pooler": env_choice(
                "SCIMSVC_DATABASE_POOLER", ("none", "transaction"), cls.database_pooler
            ),
            "database_direct_url": env_url("SCIMSVC_DATABASE_DIRECT_URL", "", schemes=POSTGRES_SCHEMES),
            "app_role_password": env_str("SCIMSVC_APP_ROLE_PASSWORD", cls.app_role_password),
            "redis_url": env_url("SCIMSVC_REDIS_URL", cls.redis_url, schemes=REDIS_SCHEMES),
            "limiter_redis_url": env_url("SCIMSVC_LIMITER_REDIS_URL", "", schemes=REDIS_SCHEMES),
            "limiter_redis_cluster": env_bool("SCIMSVC_LIMITER_REDIS_CLUSTER", cls.limiter_redis_cluster),
            "admin_key": env_value("SCIMSVC_ADMIN_KEY"),
            "public_url": env_url("SCIMSVC_PUBLIC_URL", cls.public_url, schemes=HTTP_SCHEMES).rstrip("/"),
            "portal_session_hours": env_int(
                "SCIMSVC_PORTAL_SESSION_HOURS", cls.portal_session_hours, minimum=1, maximum=720
            ),
            "portal_link_minutes": env_int(
                "SCIMSVC_PORTAL_LINK_MINUTES", cls.portal_link_minutes, minimum=1, maximum=10080
            ),
            "queue_name": env_str("SCIMSVC_QUEUE_NAME", cls.queue_name),
            # asyncpg opens min connections at start and at most max; 0 at start is allowed, 0 at most not.
            "db_pool_min": env_int("SCIMSVC_DB_POOL_MIN", cls.db_pool_min),
            "db_pool_max": env_int("SCIMSVC_DB_POOL_MAX", cls.db_pool_max, minimum=1),
            "db_wait_seconds": env_int(
                "SCIMSVC_DB_WAIT_SECONDS", cls.db_wait_seconds, minimum=1, maximum=600
            ),
            # aiohttp reads a client_max_size of 0 as no limit at all.
            "max_body_bytes": env_int("SCIMSVC_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
            "sweep_after_seconds": env_int("SCIMSVC_SWEEP_AFTER_SECONDS", cls.sweep_after_seconds),
            "worker_max_jobs": env_int("SCIMSVC_WORKER_MAX_JOBS", cls.worker_max_jobs, minimum=1),
            "worker_shutdown_seconds": env_int(
                "SCIMSVC_WORKER_SHUTDOWN_SECONDS", cls.worker_shutdown_seconds
            ),
            "smtp_url": env_url("SCIMSVC_SMTP_URL", cls.smtp_url, schemes=SMTP_SCHEMES),
            "smtp_from": env_email("SCIMSVC_SMTP_FROM", cls.smtp_from),
            "retention_outbox_days": env_int("SCIMSVC_RETENTION_OUTBOX_DAYS", cls.retention_outbox_days),
            "retention_notices_days": env_int("SCIMSVC_RETENTION_NOTICES_DAYS", cls.retention_notices_days),
            "retention_audit_days": env_int("SCIMSVC_RETENTION_AUDIT_DAYS", cls.retention_audit_days),
            "retention_provisioning_log_days": env_int(
                "SCIMSVC_RETENTION_PROVISIONING_LOG_DAYS", cls.retention_provisioning_log_days
            ),
            "retention_events_days": env_int("SCIMSVC_RETENTION_EVENTS_DAYS", cls.retention_events_days),
            "retention_batch_size": env_int(
                "SCIMSVC_RETENTION_BATCH_SIZE", cls.retention_batch_size, minimum=1
            ),
            # Limits of 0 would refuse every group body, member change or bulk request: not a setting.
            "group_max_body_bytes": env_int(
                "SCIMSVC_GROUP_MAX_BODY_BYTES", cls.group_max_body_bytes, minimum=1
            ),
            "group_patch_max_bytes": env_int(
                "SCIMSVC_GROUP_PATCH_MAX_BYTES", cls.group_patch_max_bytes, minimum=1
            ),
            "group_patch_max_member_ops": env_int(
                "SCIMSVC_GROUP_PATCH_MAX_MEMBER_OPS", cls.group_patch_max_member_ops, minimum=1
            ),
            "bulk_max_operations": env_int("SCIMSVC_BULK_MAX_OPERATIONS", cls.bulk_max_operations, minimum=1),
            "bulk_max_payload_bytes": env_int(
                "SCIMSVC_BULK_MAX_PAYLOAD_BYTES", cls.bulk_max_payload_bytes, minimum=1
            ),
            "rate_limit_enabled": env_bool("SCIMSVC_RATE_LIMIT_ENABLED", cls.rate_limit_enabled),
            # A budget of 0 answers 429 to every request (SCIMSVC_RATE_LIMIT_ENABLED=off turns limits off).
            "rate_limit_credits": env_int(
                "SCIMSVC_RATE_LIMIT_CREDITS_PER_30S", cls.rate_limit_credits, minimum=1
            ),
            "rate_limit_on_redis_error": env_choice(
                "SCIMSVC_RATE_LIMIT_ON_REDIS_ERROR", ("open", "closed"), cls.rate_limit_on_redis_error
            ),
            "rate_limit_prefix": env_str("SCIMSVC_RATE_LIMIT_PREFIX", cls.rate_limit_prefix),
            "rate_limit_lease_ms": env_int("SCIMSVC_RATE_LIMIT_LEASE_MS", cls.rate_limit_lease_ms),
            # 0 would answer the first wrong credential of every address with 429, which IdPs retry.
            "auth_failures_per_minute": env_int(
                "SCIMSVC_AUTH_FAILURES_PER_MINUTE", cls.auth_failures_per_minute, minimum=1
            ),
            "trusted_proxies": env_networks("SCIMSVC_TRUSTED_PROXIES"),
            # 0 would call every change degraded or stalled the moment it is written.
            "queue_degraded_after_seconds": env_int(
                "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS", cls.queue_degraded_after_seconds, minimum=1
            ),
            "queue_stalled_after_seconds": env_int(
                "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS", cls.queue_stalled_after_seconds, minimum=1
            ),
            "worker_heartbeat_stale_seconds": env_int(
                "SCIMSVC_WORKER_HEARTBEAT_STALE_SECONDS", cls.worker_heartbeat_stale_seconds, minimum=1
            ),
            "worker_metrics_port": env_int(
                "SCIMSVC_WORKER_METRICS_PORT", cls.worker_metrics_port, maximum=65535
            ),
            "token_cache_seconds": env_int("SCIMSVC_TOKEN_CACHE_SECONDS", cls.token_cache_seconds),
            "token_last_used_seconds": env_int(
                "SCIMSVC_TOKEN_LAST_USED_SECONDS", cls.token_last_used_seconds, minimum=1, maximum=3600
            ),
            "access_log": env_bool("SCIMSVC_ACCESS_LOG", cls.access_log),
            "provisioning_log": env_bool("SCIMSVC_PROVISIONING_LOG", cls.provisioning_log),
            "events": env_bool("SCIMSVC_EVENTS", cls.events),
            "webhook_signing_key": env_value("SCIMSVC_WEBHOOK_SIGNING_KEY"),
            "webhook_allowed_networks": env_networks("SCIMSVC_WEBHOOK_ALLOWED_NETWORKS"),
            "webhook_allow_http": env_bool("SCIMSVC_WEBHOOK_ALLOW_HTTP", cls.webhook_allow_http),
            # 0 would give up on every delivery before its first byte.
            "webhook_timeout_seconds": env_int(
                "SCIMSVC_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds, minimum=1, maximum=120
            ),
            "webhook_retry_hours": env_int(
                "SCIMSVC_WEBHOOK_RETRY_HOURS", cls.webhook_retry_hours, minimum=1, maximum=720
            ),
            "webhook_disable_after_hours": env_int(
                "SCIMSVC_WEBHOOK_DISABLE_AFTER_HOURS", cls.webhook_disable_after_hours, minimum=1
            ),
            "webhook_secret_overlap_hours": env_int(
                "SCIMSVC_WEBHOOK_SECRET_OVERLAP_HOURS", cls.webhook_secret_overlap_hours, maximum=720
            ),
            # 0 would close every connection before its first request could arrive.
            "header_read_seconds": env_int("SCIMSVC_HEADER_READ_SECONDS", cls.header_read_seconds, minimum=1),
            "body_read_seconds": env_int("SCIMSVC_BODY_READ_SECONDS", cls.body_read_seconds, minimum=1),
            "keepalive_seconds": env_int("SCIMSVC_KEEPALIVE_SECONDS", cls.keepalive_seconds, minimum=1),
            "internal_port": env_int("SCIMSVC_INTERNAL_PORT", cls.internal_port, maximum=65535),
            "web_processes": env_int(
                "SCIMSVC_WEB_PROCESSES", cls.web_processes, minimum=1, maximum=MAX_WEB_PROCESSES
            ),
        }
        read = cls(**values)  # type: ignore[arg-type]
        _at_most("SCIMSVC_DB_POOL_MIN", read.db_pool_min, "SCIMSVC_DB_POOL_MAX", read.db_pool_max)
        _at_most(
            "SCIMSVC_QUEUE_DEGRADED_AFTER_SECONDS",
            read.queue_degraded_after_seconds,
            "SCIMSVC_QUEUE_STALLED_AFTER_SECONDS",
            read.queue_stalled_after_seconds,
        )
        _cluster_url(read.limiter_redis_url, read.limiter_redis_cluster)
        return dataclasses.replace(read, **overrides) if overrides else read  # type: ignore[arg-type]
