"""Fresh planner statistics while organizations import their users.

PostgreSQL plans a tenant's queries from the statistics of its last ANALYZE of `users`. An organization
whose users arrived since then is unknown to them: the planner thinks it holds one row, and a filter
lookup (`userName eq`, which IdPs send before every write) may read every user of the organization
through an index that leads with `tenant_id` alone (README.md, Performance, Where the cost goes; lookups
by id are safe whatever the statistics: store/by_key.py). Autovacuum analyzes after 2 % of the table
changed (migration 0027) but looks only once a minute and not at all while it vacuums a big table. So a
worker that has applied `ANALYZE_AFTER_CREATES` new users since it last analyzed `users` analyzes it, at
most once every `ANALYZE_EVERY_SECONDS`, only the columns those plans turn on (store/users.py:ANALYZE_USERS):
about 0.2 s of PostgreSQL at 300,000 users (a sample of 30,000 rows at any size) against minutes of lookups
that scan.

It gives up rather than waits: a table autovacuum is working on, or a role that does not own it (the
least-privileged role of `migrate --app-role` gets a warning from PostgreSQL and nothing is done).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import asyncpg

from scimsvc.store import users

log = logging.getLogger(__name__)

ANALYZE_AFTER_CREATES = 2_000
ANALYZE_EVERY_SECONDS = 60.0


@dataclass
class UsersStatistics:
    """One worker process's count of users created since it last analyzed `users`."""

    created: int = 0
    analyzed_at: float = -math.inf  # time.monotonic() of the last ANALYZE this process ran

    async def after_drain(self, pool: asyncpg.Pool, created: int) -> None:
        """Count the users a drain created; analyze `users` when enough were, and not too often."""
        self.created += created
        now = time.monotonic()
        if self.created < ANALYZE_AFTER_CREATES or now - self.analyzed_at < ANALYZE_EVERY_SECONDS:
            return
        self.created, self.analyzed_at = 0, now
        try:
            await users.analyze_users(pool)
        except Exception as exc:  # noqa: BLE001 - statistics are an optimization; autovacuum comes anyway
            log.info("ANALYZE users skipped (autovacuum will do it): %r", exc)
