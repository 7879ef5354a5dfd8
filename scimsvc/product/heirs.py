"""Who inherits a board when its owner is hard-deleted (README.md, API surface: DELETE .../users/{uid}).

Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Via = Literal["team_member", "admin", "none"]


@dataclass(frozen=True)
class Heir:
    """The board's next owner (None: the board stays ownerless) and why it is that user."""

    user_id: UUID | None
    via: Via


def heir_of(*, team_member: UUID | None, admin: UUID | None) -> Heir:
    """The longest-standing other active member of the board's team, else the tenant's longest-standing
    active admin (primary role `admin`, as `scimsvc.product.users.role` reads it), else nobody.

    `team_member` and `admin` are those longest-standing candidates (None: there is none).
    """
    if team_member is not None:
        return Heir(team_member, "team_member")
    if admin is not None:
        return Heir(admin, "admin")
    return Heir(None, "none")
