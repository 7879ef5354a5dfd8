"""Which teams a user joins by its email domain (README.md, API surface: `domain_teams`): pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from uuid import UUID


def email_domain(user_name: str) -> str:
    """The lower-cased domain of a userName: what follows its first `@` (up to a second one), else ""."""
    parts = user_name.split("@")
    return parts[1].lower() if len(parts) > 1 else ""


def domain_memberships(
    users: Iterable[tuple[UUID, str]], domain_teams: Mapping[str, Sequence[str]]
) -> list[tuple[str, UUID]]:
    """(team id, user id) for every team each (user id, userName) joins: those its email domain is mapped
    to in the tenant's `domain_teams` (lower-case domains, as the admin API stores them)."""
    return [
        (team_id, user_id)
        for user_id, user_name in users
        for team_id in domain_teams.get(email_domain(user_name), ())
    ]
